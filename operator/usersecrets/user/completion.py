"""Names a shell may offer to complete, read as the user: their keys, whom a key is shared with,
users and namespaces where they may list namespaces, contexts of their kubeconfig.

Each read is one list call the user's RBAC allows or refuses; a refusal is the caller's to
swallow, since a shell must never print an error in the middle of a command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from usersecrets.kube import paths
from usersecrets.rules import naming
from usersecrets.user.actions import SECRETGRANTS, USERSECRETS
from usersecrets.user.views import at

if TYPE_CHECKING:
    from usersecrets.user.space import Space


def keys(space: Space) -> list[str]:
    return sorted(str(at(obj, "metadata", "name")) for obj in space.list_objects(USERSECRETS))


def grantees(space: Space, key: str | None) -> list[str]:
    """Users a key (every key, when None) is shared with: whom `revoke` can name."""
    return sorted(
        {
            str(at(grant, "spec", "user"))
            for grant in space.list_objects(SECRETGRANTS)
            if key is None or at(grant, "spec", "secretName") == key
        }
    )


def _namespaces(space: Space) -> list[dict[str, object]]:
    return list(space.request("list", "namespaces", "GET", paths.NAMESPACES).get("items") or [])


def namespaces(space: Space) -> list[str]:
    return sorted(str(at(ns, "metadata", "name")) for ns in _namespaces(space))


def users(space: Space) -> list[str]:
    """The users of the cluster's namespaces, as the operator names them (with the platform's
    settings where the user's environment has them)."""
    from usersecrets.user.space import platform_settings

    settings = platform_settings()
    found = {
        naming.user_of_namespace(
            str(at(ns, "metadata", "name")), at(ns, "metadata", "labels"), settings
        )
        for ns in _namespaces(space)
    }
    return sorted(user for user in found if user)


def contexts(kubeconfig: str | None) -> list[str]:
    """The contexts of the kubeconfig kubectl would read; no API call."""
    from usersecrets.kube.credentials import kubeconfig_paths, merged

    return sorted(str(name) for name in merged(kubeconfig_paths(kubeconfig))["contexts"])
