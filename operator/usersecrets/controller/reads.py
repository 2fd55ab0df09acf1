"""What the controller reads besides its watches: full lists for a relist, valueFrom sources,
and quotas before a decision.

Lists are read in worker threads, a page at a time back to the event loop; a source, one
object, is read from the loop.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from usersecrets.api.resources import SecretKeySelector
from usersecrets.controller.cache import Labelled
from usersecrets.kube import paths, watching
from usersecrets.kube.async_client import AsyncKubeApi
from usersecrets.kube.client import ApiError, KubeApi
from usersecrets.rules import naming, sharding
from usersecrets.rules.sharding import Shard


def list_namespaces(api: KubeApi) -> tuple[dict[str, Labelled], list[dict[str, Any]]]:
    """Every namespace's labels and annotations, and every quota: few, listed whole."""
    namespaces, _ = watching.list_objects(api, paths.NAMESPACES)
    labelled = {
        n["metadata"]["name"]: (n["metadata"].get("labels"), n["metadata"].get("annotations"))
        for n in namespaces
    }
    return labelled, watching.list_objects(api, paths.RESOURCE_QUOTAS)[0]


def pages_of(api: KubeApi, kind: str, shard: Shard) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """The pages of a full list of one of the kinds a relist reads (`cache.RELISTED`): the
    shard's UserSecrets and copies, and every grant."""
    path, selector = {
        "secret": (paths.SECRETS, shard.narrowing(naming.MANAGED_SELECTOR)),
        "grant": (paths.custom("secretgrants"), None),
        "usersecret": (paths.custom("usersecrets"), shard.narrowing()),
    }[kind]
    return watching.pages(api, path, selector)


def unlabelled(
    api: KubeApi, owners: Mapping[str, str], shard: Shard
) -> Iterator[list[tuple[str, str]]]:
    """Pages of the shard's UserSecrets and copies that have no slot (written before shards, or
    past the webhook), each as (path, owner) to label; `owners` are the namespaces'. Paginated
    lists of metadata, as each page is labelled before the next is read (and they are mostly
    empty)."""
    without = f"!{sharding.SLOT_LABEL}"
    kinds: list[tuple[str, str, Callable[[str], str], Callable[[dict[str, Any]], str | None]]] = [
        (
            paths.custom("usersecrets"),
            without,
            functools.partial(paths.custom, "usersecrets"),
            lambda meta: owners.get(meta["namespace"]),
        ),
        (
            paths.SECRETS,
            f"{naming.MANAGED_SELECTOR},{without}",
            paths.secrets_in,
            lambda meta: meta["labels"].get(naming.OWNER_LABEL),
        ),
    ]
    for listed, selector, place, owner_of in kinds:
        for page, _ in watching.paginated(api, listed, selector, metadata_only=True):
            found = []
            for item in page:
                meta = item["metadata"]
                owner = owner_of(meta)
                if owner is not None and shard.owns(owner):
                    found.append((f"{place(meta['namespace'])}/{meta['name']}", owner))
            yield found


def read_quotas(api: KubeApi, namespace: str) -> list[dict[str, Any]]:
    """A namespace's quotas as they are now. Their watch may still be telling a status from
    before our last copy there, and a room counted from it would give that slot away again."""
    return watching.list_objects(api, paths.resource_quotas_in(namespace))[0]


async def read_source(
    api: AsyncKubeApi, namespace: str, selector: SecretKeySelector
) -> tuple[bytes | None, str]:
    """The bytes a valueFrom names (None when its Secret or key does not exist), and the
    Secret's type."""
    try:
        source = await api.json("GET", f"{paths.secrets_in(namespace)}/{selector.name}")
    except ApiError as error:
        if error.status == 404:
            return None, ""
        raise
    encoded = (source.get("data") or {}).get(selector.key)
    kind = str(source.get("type") or "Opaque")
    return (None if encoded is None else base64.b64decode(encoded)), kind
