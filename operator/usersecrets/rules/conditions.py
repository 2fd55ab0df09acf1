"""Status conditions as the Kubernetes API conventions define them.

`kubectl wait --for=condition=Ready`, Argo CD and people all read `lastTransitionTime` as "since
when is it like this", so it moves only when the status does; a rewrite with the same status
keeps it, which also makes a repeated reconciliation produce an identical (no-op) patch.

Messages are built by callers from names (keys, namespaces, users), never from values: these
helpers cannot tell a secret from a name, so they do not take values at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from usersecrets.api.resources import (
    CONDITION_REASON_PATTERN,
    MAX_CONDITION_MESSAGE_LENGTH,
    Condition,
    ConditionStatus,
)

READY = "Ready"

_REASON = re.compile(CONDITION_REASON_PATTERN)
_ELLIPSIS = "..."


def _status(value: bool | ConditionStatus) -> ConditionStatus:
    if value is True:
        return "True"
    if value is False:
        return "False"
    return value


def _timestamp(now: datetime) -> datetime:
    """Whole seconds in UTC, as metav1.Time is serialized; a naive `now` is taken as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0)


def condition(
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime,
) -> Condition:
    """A condition as of `now`; `merge` keeps an older transition time if the status is the same.

    A reason that is not CamelCase is a programming error (the API server would refuse the
    status), so it raises instead of being repaired.
    """
    if not _REASON.fullmatch(reason):
        raise ValueError(f"condition reason must be CamelCase: {reason!r}")
    if len(message) > MAX_CONDITION_MESSAGE_LENGTH:
        message = message[: MAX_CONDITION_MESSAGE_LENGTH - len(_ELLIPSIS)] + _ELLIPSIS
    return Condition(
        type=type_,
        status=_status(status),
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=_timestamp(now),
    )


def ready(
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime,
) -> Condition:
    return condition(READY, status, reason, message, observed_generation, now)


def _parse(entry: Condition | Mapping[str, Any]) -> Condition | None:
    if isinstance(entry, Condition):
        return entry
    try:
        return Condition.model_validate(entry)
    except ValidationError:
        return None


def merge(
    existing: Iterable[Condition | Mapping[str, Any]] | None, new: Condition
) -> list[dict[str, Any]]:
    """`existing` (a status's conditions, as read) with `new` in place of its type's entry.

    Returns JSON-ready dicts for a status patch. Conditions of other types are kept as they
    were, in their order; an unreadable entry of `new`'s type counts as absent.
    """
    out: list[dict[str, Any]] = []
    replaced = False
    for entry in existing or ():
        entry_type = entry.type if isinstance(entry, Condition) else entry.get("type")
        if entry_type != new.type:
            out.append(entry.to_json() if isinstance(entry, Condition) else dict(entry))
            continue
        if replaced:
            continue  # a duplicate of the same type: the list is a map keyed by type
        replaced = True
        old = _parse(entry)
        merged = new
        if old is not None and old.status == new.status:
            merged = new.model_copy(update={"last_transition_time": old.last_transition_time})
        out.append(merged.to_json())
    if not replaced:
        out.append(new.to_json())
    return out


def find(
    conditions: Iterable[Condition | Mapping[str, Any]] | None, type_: str = READY
) -> Condition | None:
    """The readable condition of that type, if any."""
    for entry in conditions or ():
        parsed = _parse(entry)
        if parsed is not None and parsed.type == type_:
            return parsed
    return None
