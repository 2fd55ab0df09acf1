"""What a user is shown of their secrets, grants and shares: never a value, only names and
states. Pure functions of the objects as the apiserver returns them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from usersecrets.rules import naming

Obj = dict[str, Any]


def at(obj: Mapping[str, Any] | None, *path: str) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


@dataclass(frozen=True)
class Readiness:
    state: str  # "ready", "failed" or "pending"
    message: str = ""


def readiness(obj: Mapping[str, Any]) -> Readiness:
    """Judge an object the way `kubectl wait` would, but only on a status of its latest spec."""
    generation = at(obj, "metadata", "generation") or 0
    conditions = at(obj, "status", "conditions") or []
    ready = next(
        (c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None
    )
    observed = at(obj, "status", "observedGeneration")
    if observed is None and ready is not None:
        observed = ready.get("observedGeneration")
    if observed is None or observed < generation or ready is None:
        return Readiness("pending", "the operator has not processed it yet")
    message = str(ready.get("message") or ready.get("reason") or "")
    if ready.get("status") == "True":
        return Readiness("ready", message)
    if ready.get("status") == "False":
        return Readiness("failed", message or "not ready")
    return Readiness("pending", message)


def _status_row(obj: Mapping[str, Any], key: str, uri_of: Callable[[str], str]) -> Obj:
    """What a listing shows of a UserSecret's or SecretGrant's status."""
    copies = at(obj, "status", "copies")
    return {
        "uri": at(obj, "status", "uri") or uri_of(key),
        "ready": readiness(obj).state == "ready",
        "copies": copies if isinstance(copies, int) else 0,
    }


def secret_rows(objs: Iterable[Mapping[str, Any]], uri_of: Callable[[str], str]) -> list[Obj]:
    """What `secret ls` may show of UserSecrets: never spec, so never a value; of the
    namespaces, only the owner's own are named (by the operator's status)."""
    rows = []
    for obj in objs:
        key = str(at(obj, "metadata", "name"))
        namespaces = at(obj, "status", "namespaces")
        own = sorted(str(n) for n in namespaces) if isinstance(namespaces, list) else []
        rows.append({"key": key, **_status_row(obj, key, uri_of), "namespaces": own})
    return sorted(rows, key=lambda r: str(r["key"]))


def parse_uri(uri: Any) -> tuple[str, str, str] | None:
    """(cluster, user, key) of a URI the operator wrote, or None."""
    match = re.fullmatch(r"secret://([^/]+)/([^/]+)/([^/]+)", uri) if isinstance(uri, str) else None
    return (match[1], match[2], match[3]) if match else None


def shared_with_me(copies: Iterable[Mapping[str, Any]], cluster: str) -> list[Obj]:
    """Secrets granted to me, read from the copies in my namespace (the owner's is off limits)."""
    rows: dict[str, Obj] = {}
    for copy in copies:
        labels = at(copy, "metadata", "labels") or {}
        if labels.get(naming.REASON_LABEL) != naming.REASON_GRANT:
            continue
        uri = (at(copy, "metadata", "annotations") or {}).get(naming.URI_ANNOTATION)
        owner, key = labels.get(naming.OWNER_LABEL), labels.get(naming.KEY_LABEL)
        parsed = parse_uri(uri)
        if parsed and not (owner and key):
            owner, key = parsed[1], parsed[2]
        if not (owner and key):
            continue
        uri = uri or naming.secret_uri(cluster, owner, key)
        rows[uri] = {"uri": uri, "ref": f"secret:/{owner}/{key}", "owner": owner, "key": key}
    return sorted(rows.values(), key=lambda r: (str(r["owner"]), str(r["key"])))


def grant_rows(grants: Iterable[Mapping[str, Any]], uri_of: Callable[[str], str]) -> list[Obj]:
    rows = []
    for grant in grants:
        key = str(at(grant, "spec", "secretName") or "")
        user = str(at(grant, "spec", "user") or "")
        name = at(grant, "metadata", "name")
        rows.append({"key": key, "user": user, "name": name, **_status_row(grant, key, uri_of)})
    return sorted(rows, key=lambda r: (str(r["key"]), str(r["user"])))


def matching_grants(grants: Iterable[Obj], key: str, user: str) -> list[Obj]:
    """Grants are found by what they say, not by name: YAML-made grants have any name."""
    return [
        g for g in grants if at(g, "spec", "secretName") == key and at(g, "spec", "user") == user
    ]


def user_from_evidence(
    usersecrets: Iterable[Mapping[str, Any]], own_copies: Iterable[Mapping[str, Any]]
) -> str | None:
    """Who owns this namespace, according to what the operator wrote into it."""
    for obj in usersecrets:
        parsed = parse_uri(at(obj, "status", "uri"))
        if parsed:
            return parsed[1]
    for copy in own_copies:
        labels = at(copy, "metadata", "labels") or {}
        if labels.get(naming.REASON_LABEL) == naming.REASON_OWNER and labels.get(
            naming.OWNER_LABEL
        ):
            return str(labels[naming.OWNER_LABEL])
    return None


def secret_table(
    objs: Iterable[Mapping[str, Any]],
    grants: Iterable[Mapping[str, Any]],
    uri_of: Callable[[str], str],
) -> list[Obj]:
    """The web UI's table of one's secrets: each key's URI, state in words, where it can be
    used, and whom it is shared with. Never spec, so never a value."""
    shares: dict[str, list[Obj]] = {}
    for row in grant_rows(grants, uri_of):
        shares.setdefault(str(row["key"]), []).append({"user": row["user"], "ready": row["ready"]})
    states = {str(at(obj, "metadata", "name")): readiness(obj) for obj in objs}
    return [
        {
            **row,
            "state": states[row["key"]].state,
            "message": states[row["key"]].message,
            "shares": shares.get(row["key"], []),
        }
        for row in secret_rows(objs, uri_of)
    ]
