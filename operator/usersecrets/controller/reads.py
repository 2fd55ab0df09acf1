"""What the controller reads besides its watches: full lists for a relist, and valueFrom sources.

Blocking calls, made in worker threads; their results go back to the event loop.
"""

from __future__ import annotations

import base64
from typing import Any

from usersecrets.api.resources import SecretKeySelector
from usersecrets.controller.cache import Lists
from usersecrets.kube import paths, watching
from usersecrets.kube.client import ApiError, KubeApi
from usersecrets.rules import naming


def list_all(api: KubeApi) -> Lists:
    """Everything the cache holds, from full lists."""
    copies, version = watching.list_objects(api, paths.SECRETS, naming.MANAGED_SELECTOR)
    namespaces, _ = watching.list_objects(api, paths.NAMESPACES)
    return Lists(
        namespaces={
            n["metadata"]["name"]: (n["metadata"].get("labels"), n["metadata"].get("annotations"))
            for n in namespaces
        },
        copies=copies,
        quotas=watching.list_objects(api, paths.RESOURCE_QUOTAS)[0],
        grants=watching.list_objects(api, paths.custom("secretgrants"))[0],
        usersecrets=watching.list_objects(api, paths.custom("usersecrets"))[0],
        secrets_version=version,
    )


def read_quotas(api: KubeApi, namespace: str) -> list[dict[str, Any]]:
    """A namespace's quotas as they are now. Their watch may still be telling a status from
    before our last copy there, and a room counted from it would give that slot away again."""
    return watching.list_objects(api, paths.resource_quotas_in(namespace))[0]


def read_source(
    api: KubeApi, namespace: str, selector: SecretKeySelector
) -> tuple[bytes | None, str]:
    """The bytes a valueFrom names (None when its Secret or key does not exist), and the
    Secret's type."""
    try:
        source = api.json("GET", f"{paths.secrets_in(namespace)}/{selector.name}")
    except ApiError as error:
        if error.status == 404:
            return None, ""
        raise
    encoded = (source.get("data") or {}).get(selector.key)
    kind = str(source.get("type") or "Opaque")
    return (None if encoded is None else base64.b64decode(encoded)), kind
