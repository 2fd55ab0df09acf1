"""Reports: the statuses of UserSecrets and grants that differ from what they say, and Events.

`status_writes` is pure: it decides which statuses to write and which Event each one posts;
`Reporter` writes them. A status is a report, so it never delays a copy.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from usersecrets import API_VERSION
from usersecrets.api.resources import Condition
from usersecrets.controller.cache import Ref, Tracked
from usersecrets.kube import paths
from usersecrets.kube.async_client import AsyncKubeApi
from usersecrets.kube.client import MERGE_PATCH, ApiError
from usersecrets.rules import conditions, status
from usersecrets.rules.desired import Desired

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusWrite:
    plural: str
    ref: Ref
    tracked: Tracked
    status: dict[str, Any]
    #: The new Ready condition when an Event should tell of it (see `changed`).
    changed: Condition | None


def changed(current: Mapping[str, Any], new: Mapping[str, Any]) -> Condition | None:
    """The new Ready condition if an Event should tell of it: a problem, or a change of what
    the object said before. A secret that simply works from the start is told by its status
    alone (an Event each would add a third write per secret to every burst).

    Decided before writing, since the watch may bring our own write back into the cache before
    the write call returns."""
    before = conditions.find(current.get("conditions"))
    after = conditions.find(new["conditions"])
    if after is None:
        return None
    if before is None:
        return None if after.status == "True" else after
    return None if (before.status, before.reason) == (after.status, after.reason) else after


def _within(refused: Mapping[str, str], namespaces: Collection[str]) -> dict[str, str]:
    return {ns: said for ns, said in refused.items() if ns in namespaces}


def status_writes(
    want: Desired,
    usersecrets: Mapping[Ref, Tracked],
    grants: Mapping[Ref, Tracked],
    *,
    collisions: list[str],
    refused: Mapping[str, str],
    no_owner_hint: str,
    now: datetime.datetime,
) -> list[StatusWrite]:
    """The statuses that differ from what the objects say, each with the Event it should post.
    `collisions`: namespaces where a Secret of someone else's holds the copy's name;
    `refused`: namespace -> why its copy could not be written."""
    writes: list[StatusWrite] = []

    def add(plural: str, ref: Ref, tracked: Tracked, build: Callable[..., dict[str, Any]]) -> None:
        current = tracked.status  # parsed once
        new = build(generation=tracked.generation, current=current, now=now)
        if not status.same(current, new):
            writes.append(StatusWrite(plural, ref, tracked, new, changed(current, new)))

    for ref, facts in want.secrets.items():
        if (tracked := usersecrets.get(ref)) is not None:
            build = functools.partial(
                status.secret_status,
                facts,
                value_from=tracked.value_from,
                collisions=collisions if facts.namespaces else [],
                failures=_within(refused, facts.namespaces),
                no_owner_hint=no_owner_hint,
            )
            add("usersecrets", ref, tracked, build)
    for ref, grant_facts in want.grants.items():
        if (tracked := grants.get(ref)) is not None:
            build = functools.partial(
                status.grant_status,
                grant_facts,
                failures=_within(refused, grant_facts.namespaces),
                no_owner_hint=no_owner_hint,
            )
            add("secretgrants", ref, tracked, build)
    return writes


class Reporter:
    """Writes statuses through the status subresource, and the Events they call for."""

    def __init__(self, api: AsyncKubeApi) -> None:
        self.api = api

    async def write(self, writes: list[StatusWrite]) -> None:
        for write in writes:
            namespace, name = write.ref
            try:
                await self.api.call(
                    "PATCH",
                    f"{paths.custom(write.plural, namespace)}/{name}/status",
                    body={"status": write.status},
                    content_type=MERGE_PATCH,
                )
            except ApiError as error:
                if error.status == 404:  # deleted meanwhile: nothing to report on
                    continue
                raise
            if write.changed is not None:
                await self._event(write.plural, write.ref, write.tracked.uid, write.changed)

    async def _event(self, plural: str, ref: Ref, uid: str, ready: Condition) -> None:
        """Tells the user what changed, on the object, as `kubectl describe` shows it."""
        kind = "UserSecret" if plural == "usersecrets" else "SecretGrant"
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{ref[1]}."},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": kind,
                "name": ref[1],
                "namespace": ref[0],
                "uid": uid,
            },
            "reason": ready.reason,
            "message": ready.message,
            "type": "Normal" if ready.status == "True" else "Warning",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "usersecrets"},
        }
        try:
            await self.api.call("POST", paths.events_in(ref[0]), body=event)
        except ApiError as error:  # an Event is best effort; the status already says it
            logger.warning("could not post an Event on %s/%s: %s", ref[0], ref[1], error.reason)
