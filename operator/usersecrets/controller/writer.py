"""Writes copies: what a plan says to create, update and delete, and what came of each write;
and, with shards, the slot label that sends a UserSecret to its owner's shard.

Touches no cache: the reconciler hands it a plan and the versions it knows, and records the
`Outcome`. Only Secrets carrying our managed-by label are ever written over or deleted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from usersecrets.kube import paths
from usersecrets.kube.async_client import AsyncKubeApi
from usersecrets.kube.client import MERGE_PATCH, ApiError
from usersecrets.rules import naming, sharding, status
from usersecrets.rules.desired import ActualSecret, DesiredCopy, Plan

logger = logging.getLogger(__name__)

Ref = tuple[str, str]  # (namespace, name)

#: What the apiserver answers a write it will refuse again: bad input, a quota, a policy.
REFUSALS = frozenset({400, 403, 422})


@dataclass
class Outcome:
    """What applying a plan did; the event loop records it in the cache."""

    written: list[tuple[DesiredCopy, str]] = field(default_factory=list)
    deleted: list[Ref] = field(default_factory=list)
    collisions: list[Ref] = field(default_factory=list)
    #: Copies the apiserver refused, and what it said, fit for a status.
    refused: list[tuple[Ref, str]] = field(default_factory=list)
    #: Every write that failed, refusals included: the pair is retried.
    errors: list[ApiError] = field(default_factory=list)

    @contextlib.contextmanager
    def trying(self, ref: Ref, value: bytes | None = None) -> Iterator[None]:
        """A failed write is noted and the plan goes on: one namespace refusing its copy (a
        quota, a policy) must not keep the others from theirs. A refusal of a copy of `value`
        is told in the statuses, scrubbed of it (a policy may quote what it refused);
        anything else (a conflict, throttling, the apiserver failing, a refused delete) is
        retried quietly, since it says nothing the user can act on."""
        try:
            yield
        except ApiError as error:
            self.errors.append(error)
            if value is not None and error.status in REFUSALS:
                said = status.write_failure(error.status, error.reason, error.body, [value])
                self.refused.append((ref, said))


def namespace_terminating(error: ApiError) -> bool:
    """The API server's refusal to create anything in a namespace being deleted."""
    if error.status != 403:
        return False
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (TypeError, ValueError):
        return False
    return any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or [])


def secret_body(copy: DesiredCopy) -> dict[str, Any]:
    return {
        "metadata": {
            "name": copy.name,
            "labels": dict(copy.labels),
            "annotations": dict(copy.annotations),
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in copy.data.items()},
    }


class Writer:
    """Applies plans with `api`; with `dry_run`, every write is a server-side dry run."""

    def __init__(self, api: AsyncKubeApi, dry_run: bool = False) -> None:
        self.api = api
        self.query = {"dryRun": "All"} if dry_run else {}

    async def apply(self, plan: Plan, versions: Mapping[Ref, str]) -> Outcome:
        """Every write of `plan` is tried; `versions` are those of the copies as we know them."""
        outcome = Outcome()
        for copy in plan.creates:
            with outcome.trying((copy.namespace, copy.name), copy.value):
                await self._create(copy, outcome)
        for copy in plan.updates:
            with outcome.trying((copy.namespace, copy.name), copy.value):
                await self._update(copy, versions.get((copy.namespace, copy.name)), outcome)
        for stale in plan.deletes:  # not a place the secret is meant to be: nothing to tell
            with outcome.trying((stale.namespace, stale.name)):
                await self._delete(stale, versions.get((stale.namespace, stale.name)), outcome)
        return outcome

    async def _create(self, copy: DesiredCopy, outcome: Outcome) -> None:
        """Creates the copy, unless a Secret we do not manage has its name: then, a collision."""
        try:
            created = await self.api.json(
                "POST", paths.secrets_in(copy.namespace), body=secret_body(copy), query=self.query
            )
        except ApiError as error:
            if namespace_terminating(error):
                # Nothing can be created there any more, and the namespace is going away: it
                # must not hold up this secret's other namespaces, nor its status.
                logger.debug("not creating %s/%s: namespace terminating", copy.namespace, copy.name)
                return
            if error.status != 409:
                raise
            await self._rewrite(copy, outcome)
            return
        outcome.written.append((copy, created["metadata"]["resourceVersion"]))

    async def _update(
        self, copy: DesiredCopy, version: str | None, outcome: Outcome, retry: bool = True
    ) -> None:
        body = secret_body(copy)
        body["metadata"]["resourceVersion"] = version  # optimistic: a conflict retries
        try:
            updated = await self.api.json(
                "PATCH",
                f"{paths.secrets_in(copy.namespace)}/{copy.name}",
                body=body,
                content_type=MERGE_PATCH,
                query=self.query,
            )
        except ApiError as error:
            if error.status != 409 or not retry:
                raise
            # Changed since the version we hold (our cache can lag behind the watch, e.g. when
            # someone edits the copy while we write it): write on top of what is there now.
            await self._rewrite(copy, outcome)
            return
        outcome.written.append((copy, updated["metadata"]["resourceVersion"]))

    async def _rewrite(self, copy: DesiredCopy, outcome: Outcome) -> None:
        """Writes `copy` over the Secret of that name as it is now, unless we do not manage it:
        then it is a collision, left alone."""
        path = f"{paths.secrets_in(copy.namespace)}/{copy.name}"
        existing = (await self.api.json("GET", path))["metadata"]
        if (existing.get("labels") or {}).get(naming.MANAGED_BY_LABEL) != naming.MANAGED_BY:
            outcome.collisions.append((copy.namespace, copy.name))
            return
        await self._update(copy, existing["resourceVersion"], outcome, retry=False)

    async def _delete(self, stale: ActualSecret, version: str | None, outcome: Outcome) -> None:
        """Deletes a copy. One with finalizers (its owner's namespace's user may put them there
        to keep it) is first emptied and freed of them: a DELETE would otherwise only mark it,
        and a copy on its way out is no share, value and all."""
        path = f"{paths.secrets_in(stale.namespace)}/{stale.name}"
        try:
            if stale.finalizers or stale.deleting:
                meta: dict[str, Any] = {"finalizers": None}
                if version:
                    meta["resourceVersion"] = version
                emptied = {"metadata": meta, "data": None}
                emptied_now = await self.api.json(
                    "PATCH", path, body=emptied, content_type=MERGE_PATCH, query=self.query
                )
                version = emptied_now["metadata"].get("resourceVersion")
            options = {"preconditions": {"resourceVersion": version}} if version else {}
            await self.api.call("DELETE", path, body=options, query=self.query)
        except ApiError as error:
            if error.status != 404:
                raise
        outcome.deleted.append((stale.namespace, stale.name))

    async def move(self, usersecrets: Iterable[Ref], copies: Iterable[Ref], owner: str) -> None:
        """Labels UserSecrets and copies with their owner's slot: they leave this shard's
        watches (the apiserver tells them as deleted) for the owner's shard's. For UserSecrets
        whose namespace changed hands, and for either kind whose label someone edited."""
        found = [(f"{paths.custom('usersecrets', ns)}/{name}", owner) for ns, name in usersecrets]
        found += [(f"{paths.secrets_in(ns)}/{name}", owner) for ns, name in copies]
        await self.label(found)

    async def label(self, found: Iterable[tuple[str, str]]) -> int:
        """Labels each object (its path) with its owner's slot; how many, the gone ones not
        counted."""
        done = 0
        for path, owner in found:
            body = {"metadata": {"labels": sharding.slot_label(owner)}}
            try:
                await self.api.json(
                    "PATCH", path, body=body, content_type=MERGE_PATCH, query=self.query
                )
            except ApiError as error:
                if error.status != 404:
                    raise
                continue
            done += 1
        return done
