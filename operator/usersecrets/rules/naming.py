"""Who a namespace belongs to, and the names the operator gives what it creates."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from usersecrets.rules import sharding

if TYPE_CHECKING:
    from usersecrets.settings import Settings

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "usersecrets"
OWNER_LABEL = "usersecrets.io/owner"
KEY_LABEL = "usersecrets.io/key"
REASON_LABEL = "usersecrets.io/reason"
URI_ANNOTATION = "usersecrets.io/uri"
#: On a Namespace, set by whoever manages namespaces: whose shares it takes.
ACCEPT_ANNOTATION = "usersecrets.io/accept-shares-from"

#: Why a copy exists in a namespace: its owner's, or a grantee's.
REASON_OWNER = "owner"
REASON_GRANT = "grant"

#: Key inside every materialized Secret's data.
DATA_KEY = "value"


def user_of_namespace(
    name: str, labels: Mapping[str, str] | None, settings: Settings
) -> str | None:
    """The namespace's user, or None for system namespaces and unlabelled ones without fallback."""
    if name == settings.operator_namespace or any(
        fnmatch.fnmatchcase(name, pattern) for pattern in settings.system_namespaces
    ):
        return None
    user = (labels or {}).get(settings.user_label)
    if user:
        return user
    return name if settings.namespace_name_fallback else None


def accepted_owners(
    annotations: Mapping[str, str] | None, settings: Settings
) -> frozenset[str] | None:
    """Whose shares a namespace takes: None for anyone's ('*'), else those users' (none for
    ''). Its annotation, or the platform's default."""
    policy = (annotations or {}).get(ACCEPT_ANNOTATION, settings.accept_shares_from).strip()
    if policy == "*":
        return None
    return frozenset(user.strip() for user in policy.split(",") if user.strip())


def secret_uri(cluster: str, user: str, key: str) -> str:
    return f"secret://{cluster}/{user}/{key}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]


def _slug(user: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", user.lower()).strip("-") or "user"


@functools.lru_cache(maxsize=4096)  # the webhook names the copies of every pod's references
def copy_name(owner: str, key: str) -> str:
    """Secret name of (owner, key) in any namespace.

    Readable for people, and collision-free because user names may contain characters a
    Secret name may not (the slug is lossy) and `-` appears in both parts: the digest of the
    exact pair decides.
    """
    return f"usec-{_slug(owner)}-{key}-{_digest(owner, key)}"


def grant_name(key: str, user: str) -> str:
    """Name the CLI gives the SecretGrant of `key` to `user`, so sharing twice is one grant."""
    return f"{key}-{_slug(user)}-{_digest(key, user)[:6]}"


def copy_labels(owner: str, key: str, reason: str) -> dict[str, str]:
    """Every copy carries its owner's slot, sharded or not: more shards later select by it."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        OWNER_LABEL: owner,
        KEY_LABEL: key,
        REASON_LABEL: reason,
        **sharding.slot_label(owner),
    }


MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
#: Every other Secret.
UNMANAGED_SELECTOR = f"{MANAGED_BY_LABEL}!={MANAGED_BY}"
