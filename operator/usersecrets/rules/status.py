"""The status subresources of UserSecrets and SecretGrants, built from `desired` facts.

Pure, so that every message a user reads in `kubectl get`/`describe` is unit-tested, and so
that a status equal to the current one is recognised and never rewritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from usersecrets.api.resources import SecretKeySelector
from usersecrets.rules import conditions
from usersecrets.rules.desired import GrantFacts, GrantState, SecretFacts, SecretState
from usersecrets.rules.scrub import scrub

NAME_COLLISION = "NameCollision"
COPY_FAILED = "CopyFailed"
NOT_ACCEPTED = "NotAccepted"
_LISTED = 10
_QUOTED = 200  # characters of the apiserver's message kept in a status
_TOLD = (
    re.compile(r"exceeded quota: [^\n]*"),
    re.compile(r'admission webhook "[^"\n]*" denied the request'),
    re.compile(r"ValidatingAdmissionPolicy '[^'\n]*' with binding '[^'\n]*' denied request"),
)


def _names(namespaces: Sequence[str]) -> str:
    shown = ", ".join(namespaces[:_LISTED])
    more = len(namespaces) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def past_limit(limit: tuple[str, int] | None, user: str) -> str:
    """Which limit a secret or grant is past, and what that means, in words."""
    which, size = limit or ("", 0)
    if which == "secrets":
        return (
            f"User '{user}' has more than the {size} UserSecrets a user may have: the newest "
            "are not copied, and this is one of them"
        )
    if which == "bytes":
        return (
            f"The values of user '{user}''s UserSecrets add up to more than the "
            f"{size // (1024 * 1024)} MiB a user may have: the newest are not copied, and "
            "this is one of them"
        )
    if which == "grants":
        return (
            f"User '{user}' has made more than the {size} grants a user may make: the newest "
            "have no effect, and this is one of them"
        )
    return (
        f"User '{user}' has more than the {size} shares a user may receive: the newest have no "
        "effect, and this is one of them"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def write_failure(
    code: int | None, reason: str | None, body: str | bytes | None, values: Iterable[bytes] = ()
) -> str:
    """What the apiserver answered when a copy of `values` could not be written, as a status
    can say it.

    Its message is told only in the apiserver's own shapes that name a quota or a policy, and
    scrubbed of the values (before it is cut short, so that no half of one is left); anything
    else might quote the object (a policy webhook may echo what it refused), so then only the
    HTTP status is told."""
    said = f"HTTP {code} {reason}" if reason else f"HTTP {code}"
    try:
        message = json.loads(body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    for shape in _TOLD if isinstance(message, str) else ():
        if found := shape.search(message):
            return f"{said}: {scrub(found.group(0), values)[:_QUOTED]}"
    return said


def _where(namespaces: Sequence[str], owned: Collection[str]) -> str:
    """The namespaces that are the owner's, by name; the others, those of the users a secret
    is shared with, only counted: the owner must not learn their names."""
    own = [ns for ns in namespaces if ns in owned]
    others = len(namespaces) - len(own)
    parts = [_names(own)] if own else []
    if others:
        parts.append(f"{_plural(others, 'namespace')} of users it is shared with")
    return " and ".join(parts)


def _failed(failures: Mapping[str, str], owned: Collection[str]) -> str:
    """Why copies could not be written: per owned namespace, and once per reason for others."""
    told = [f"{ns}: {why}" for ns, why in sorted(failures.items()) if ns in owned]
    elsewhere: dict[str, int] = {}
    for ns, why in failures.items():
        if ns not in owned:
            elsewhere[why] = elsewhere.get(why, 0) + 1
    told += [
        f"{_plural(count, 'namespace')} of users it is shared with: {why}"
        for why, count in sorted(elsewhere.items())
    ]
    shown = "; ".join(told[:_LISTED])
    more = len(told) - _LISTED
    listed = f"{shown}; and {more} more" if more > 0 else shown
    return f"The copy could not be written in {_plural(len(failures), 'namespace')} ({listed})."


def secret_status(
    facts: SecretFacts,
    *,
    generation: int | None,
    value_from: SecretKeySelector | None,
    collisions: Sequence[str],
    failures: Mapping[str, str],
    no_owner_hint: str,
    current: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """`collisions`: namespaces where a Secret we do not manage holds the copy's name;
    `failures`: namespaces where the apiserver refused the copy, and what it said. Only the
    owner's own namespaces are named; the grantees' are counted."""
    materialized = [ns for ns in facts.namespaces if ns not in collisions and ns not in failures]
    owned = set(facts.owned)
    if facts.state is SecretState.MATERIALIZED and (collisions or failures):
        ok, reason = False, NAME_COLLISION if collisions else COPY_FAILED
        problems = []
        if collisions:
            problems.append(
                f"A Secret not managed by usersecrets already has this secret's copy name in "
                f"{_plural(len(collisions), 'namespace')} ({_where(collisions, owned)}); "
                "it was left alone."
            )
        if failures:
            problems.append(_failed(failures, owned))
        message = " ".join([*problems, f"Usable in {_plural(len(materialized), 'namespace')}."])
    elif facts.state is SecretState.MATERIALIZED:
        ok, reason = True, facts.state.value
        where = _where(materialized, owned)
        message = f"Usable in {_plural(len(materialized), 'namespace')}: {where}"
    elif facts.state is SecretState.SOURCE_MISSING:
        ok, reason = False, facts.state.value
        source = f"'{value_from.name}' with key '{value_from.key}'" if value_from else "source"
        message = f"The valueFrom Secret {source} does not exist in this namespace"
    elif facts.state is SecretState.SOURCE_REFUSED:
        ok, reason = False, facts.state.value
        source = f"'{value_from.name}'" if value_from else "source"
        message = (
            f"The valueFrom Secret {source} is of type {facts.refused_type}, a credential of "
            "the cluster itself: it is not copied (the platform may allow the type with the "
            "chart's valueFrom.refusedTypes)"
        )
    elif facts.state is SecretState.LIMIT_EXCEEDED:
        ok, reason = False, facts.state.value
        message = past_limit(facts.limit, facts.owner or "")
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
        "namespaces": [ns for ns in materialized if ns in owned],
        "copies": len(materialized),
    }


def grant_status(
    facts: GrantFacts,
    *,
    generation: int | None,
    failures: Mapping[str, str],
    no_owner_hint: str,
    current: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """`failures`: the grantee's namespaces where the apiserver refused the copy, and why.
    The grantee's namespaces are counted, never named: they are not the owner's to know."""
    usable = [ns for ns in facts.namespaces if ns not in failures]
    reason = facts.state.value
    where = f"in {_plural(len(usable), 'namespace')}"
    if facts.declined:
        where += (
            f" ({_plural(facts.declined, 'namespace')} of theirs "
            f"{'does' if facts.declined == 1 else 'do'} not take shares from '{facts.owner}')"
        )
    if facts.state is GrantState.GRANTED and failures:
        ok, reason = False, COPY_FAILED
        message = f"{_failed(failures, ())} User '{facts.user}' can use {facts.uri} {where}."
    elif facts.state is GrantState.GRANTED and facts.namespaces:
        ok, message = True, f"User '{facts.user}' can use {facts.uri} {where}"
    elif facts.state is GrantState.GRANTED and facts.declined:
        ok, reason = False, NOT_ACCEPTED
        message = f"User '{facts.user}' can use {facts.uri} {where}"
    elif facts.state is GrantState.GRANTED:
        ok, message = (
            True,
            (f"User '{facts.user}' has no namespace yet; each one they get will have {facts.uri}"),
        )
    elif facts.state is GrantState.LIMIT_EXCEEDED:
        shares = facts.limit is not None and facts.limit[0] == "shares"
        ok, message = False, past_limit(facts.limit, facts.user if shares else facts.owner or "")
    elif facts.state is GrantState.SECRET_NOT_FOUND:
        ok, message = False, f"No UserSecret '{facts.secret_name}' in this namespace"
    elif facts.state is GrantState.SECRET_NOT_READY:
        ok, message = False, f"UserSecret '{facts.secret_name}' has no value yet (see its status)"
    else:
        ok, message = False, f"Namespace '{facts.namespace}' belongs to no user ({no_owner_hint})"
    ready = conditions.ready(ok, reason, message, generation, now)
    return {
        "uri": facts.uri,
        "observedGeneration": generation,
        "conditions": conditions.merge((current or {}).get("conditions"), ready),
        "copies": len(usable),
    }


def same(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change nothing a reader can see."""
    current = current or {}
    return all(current.get(field) == value for field, value in new.items())
