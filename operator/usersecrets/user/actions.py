"""What a user does with their secrets, each in as many calls as it takes: add (or replace) a
secret, share it, take a share back, and wait for the operator to report it done."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from usersecrets import API_VERSION
from usersecrets.api.kinds import MAX_VALUE_BYTES, SECRETGRANT, USERSECRET
from usersecrets.rules import naming
from usersecrets.user.errors import Failure
from usersecrets.user.views import Obj, at, matching_grants, readiness

if TYPE_CHECKING:
    from usersecrets.user.space import Space

USERSECRETS = USERSECRET.plural
SECRETGRANTS = SECRETGRANT.plural
POLL_SECONDS = 0.5


def value_error(size: int) -> str | None:
    """Why a value of `size` bytes cannot be stored, or None: the CLI's and the UI's words."""
    if size > MAX_VALUE_BYTES:
        return f"The value is {size} bytes; a secret holds at most 1 MiB ({MAX_VALUE_BYTES})"
    return None


def user_error(user: str) -> str | None:
    """Why `user` cannot be shared with, before asking the apiserver (which checks the rest)."""
    if not user or any(c.isspace() or c == "/" for c in user):
        return f"Invalid user '{user}'"
    return None


def put(space: Space, plural: str, body: Obj, what: str, timeout: float) -> Obj:
    """Create, or give the object of that name `body`'s spec: adding an existing key silently
    replaces its value, like Neu.ro, and sharing again mends a grant edited by hand."""
    deadline = time.monotonic() + max(timeout, 5.0)
    while True:
        try:
            return space.create(plural, body)
        except Failure as err:
            if err.status != 409:
                raise
        try:
            current = space.get(plural, body["metadata"]["name"])
            if not at(current, "metadata", "deletionTimestamp"):
                current["spec"] = body["spec"]
                current.pop("status", None)
                return space.replace(plural, current)
        except Failure as err:
            if err.status not in (404, 409):
                raise
        # Deleted, being deleted, or changed meanwhile: try again from the start.
        if time.monotonic() >= deadline:
            raise Failure(
                f"Could not store {what}: it keeps changing or is being deleted; try again"
            )
        time.sleep(POLL_SECONDS)


def add_secret(space: Space, key: str, value: bytes, timeout: float) -> Obj:
    body: Obj = {
        "apiVersion": API_VERSION,
        "kind": USERSECRET.kind,
        "metadata": {"name": key},
        "spec": {"value": base64.b64encode(value).decode()},
    }
    return put(space, USERSECRETS, body, f"secret '{key}'", timeout)


def share(space: Space, key: str, user: str, timeout: float) -> Obj:
    """The grant of `key` to `user`: the one that exists (whatever its name), or a new one."""
    existing = matching_grants(space.list_objects(SECRETGRANTS), key, user)
    if existing:
        return existing[0]
    body: Obj = {
        "apiVersion": API_VERSION,
        "kind": SECRETGRANT.kind,
        "metadata": {"name": naming.grant_name(key, user)},
        "spec": {"secretName": key, "user": user},
    }
    return put(space, SECRETGRANTS, body, f"the share of '{key}' with {user}", timeout)


def revoke(space: Space, key: str, user: str) -> None:
    """Deletes every grant of `key` to `user`, however it was made."""
    grants = matching_grants(space.list_objects(SECRETGRANTS), key, user)
    if not grants:
        raise Failure(f"Secret '{key}' is not shared with '{user}'", "not_found")
    for grant in grants:
        try:
            space.delete(SECRETGRANTS, str(grant["metadata"]["name"]))
        except Failure as err:
            if err.status != 404:
                raise


def wait_ready(
    fetch: Callable[[], Obj],
    what: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Obj:
    """Until the operator reports the object Ready for its current spec, or says why not."""
    deadline = clock() + timeout
    while True:
        obj = fetch()
        state = readiness(obj)
        if state.state == "ready":
            return obj
        if state.state == "failed":
            raise Failure(f"{what} is not ready: {state.message}")
        if clock() >= deadline:
            raise Failure(
                f"Timed out after {timeout:g}s waiting for {what} to become ready ({state.message})"
            )
        sleep(POLL_SECONDS)
