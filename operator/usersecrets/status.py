"""The status subresources of UserSecrets and SecretGrants, built from `desired` facts.

Pure, so that every message a user reads in `kubectl get`/`describe` is unit-tested, and so
that a status equal to the current one is recognised and never rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from usersecrets import conditions
from usersecrets.desired import GrantFacts, GrantState, SecretFacts, SecretState
from usersecrets.resources import SecretKeySelector

NAME_COLLISION = "NameCollision"
_LISTED = 10


def _names(namespaces: Sequence[str]) -> str:
    shown = ", ".join(namespaces[:_LISTED])
    more = len(namespaces) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def secret_status(
    facts: SecretFacts,
    *,
    generation: int | None,
    value_from: SecretKeySelector | None,
    collisions: Sequence[str],
    no_owner_hint: str,
    current: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """`collisions`: namespaces where a Secret we do not manage holds the copy's name."""
    materialized = [ns for ns in facts.namespaces if ns not in collisions]
    if facts.state is SecretState.MATERIALIZED and collisions:
        ok, reason = False, NAME_COLLISION
        message = (
            f"A Secret not managed by usersecrets already has this secret's copy name in "
            f"{_plural(len(collisions), 'namespace')} ({_names(collisions)}); it was left alone. "
            f"Usable in {_plural(len(materialized), 'namespace')}."
        )
    elif facts.state is SecretState.MATERIALIZED:
        ok, reason = True, facts.state.value
        message = f"Usable in {_plural(len(materialized), 'namespace')}: {_names(materialized)}"
    elif facts.state is SecretState.SOURCE_MISSING:
        ok, reason = False, facts.state.value
        source = f"'{value_from.name}' with key '{value_from.key}'" if value_from else "source"
        message = f"The valueFrom Secret {source} does not exist in this namespace"
    elif facts.state is SecretState.CONFLICT:
        ok, reason = False, facts.state.value
        message = (
            f"An older UserSecret in namespace '{facts.conflict_with}' already defines "
            f"{facts.uri}; this one is ignored until that one is deleted"
        )
    else:
        ok, reason = False, facts.state.value
        message = f"Namespace '{facts.namespace}' belongs to no user ({no_owner_hint})"
    ready = conditions.ready(ok, reason, message, generation, now)
    return {
        "uri": facts.uri,
        "observedGeneration": generation,
        "conditions": conditions.merge((current or {}).get("conditions"), ready),
        "namespaces": materialized,
        "copies": len(materialized),
    }


def grant_status(
    facts: GrantFacts,
    *,
    generation: int | None,
    no_owner_hint: str,
    current: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    if facts.state is GrantState.GRANTED and facts.namespaces:
        ok, message = (
            True,
            (
                f"User '{facts.user}' can use {facts.uri} in "
                f"{_plural(len(facts.namespaces), 'namespace')}: {_names(facts.namespaces)}"
            ),
        )
    elif facts.state is GrantState.GRANTED:
        ok, message = (
            True,
            (f"User '{facts.user}' has no namespace yet; each one they get will have {facts.uri}"),
        )
    elif facts.state is GrantState.SECRET_NOT_FOUND:
        ok, message = False, f"No UserSecret '{facts.secret_name}' in this namespace"
    elif facts.state is GrantState.SECRET_NOT_READY:
        ok, message = False, f"UserSecret '{facts.secret_name}' has no value yet (see its status)"
    else:
        ok, message = False, f"Namespace '{facts.namespace}' belongs to no user ({no_owner_hint})"
    ready = conditions.ready(ok, facts.state.value, message, generation, now)
    return {
        "uri": facts.uri,
        "observedGeneration": generation,
        "conditions": conditions.merge((current or {}).get("conditions"), ready),
        "namespaces": list(facts.namespaces),
    }


def same(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change nothing a reader can see."""
    current = current or {}
    return all(current.get(field) == value for field, value in new.items())
