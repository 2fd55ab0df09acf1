"""What an admission needs from the cluster, at the cost of at most one API call.

Namespace users come from a watch kept by every replica (leader or not), and the copies in the
pod's namespace from one metadata-only list, so the webhook never reads a secret value and
never depends on the reconciler's caches, which only the leader has.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from usersecrets import admission, naming
from usersecrets.references import SecretRef
from usersecrets.settings import Settings

logger = logging.getLogger(__name__)

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class NamespaceUsers:
    """namespace -> labels, current through a list+watch run in a daemon thread."""

    def __init__(self, core: client.CoreV1Api, settings: Settings) -> None:
        self.core, self.settings = core, settings
        self._labels: dict[str, dict[str, str]] = {}
        self.synced = threading.Event()

    def user_of(self, namespace: str) -> str | None:
        labels = self._labels.get(namespace)
        if labels is None:  # newer than our watch: ask once
            labels = self.core.read_namespace(namespace).metadata.labels or {}
        return naming.user_of_namespace(namespace, labels, self.settings)

    def _relist(self) -> str:
        listing = self.core.list_namespace()
        self._labels = {ns.metadata.name: ns.metadata.labels or {} for ns in listing.items}
        self.synced.set()
        return str(listing.metadata.resource_version)

    def run(self, stop: threading.Event) -> None:
        version: str | None = None
        while not stop.is_set():
            try:
                version = version or self._relist()
                for event in watch.Watch().stream(
                    self.core.list_namespace, resource_version=version, timeout_seconds=60
                ):
                    namespace = event["object"]
                    version = namespace.metadata.resource_version
                    if event["type"] == "DELETED":
                        self._labels.pop(namespace.metadata.name, None)
                    else:
                        self._labels[namespace.metadata.name] = namespace.metadata.labels or {}
            except ApiException as error:
                version = None  # 410 Gone and friends: start again from a fresh list
                logger.info("namespace watch restarts after HTTP %s", error.status)
                stop.wait(1)
            except Exception as error:  # the apiserver may restart under us
                version = None
                logger.warning("namespace watch failed: %s; retrying", type(error).__name__)
                stop.wait(1)

    def start(self) -> threading.Event:
        stop = threading.Event()
        threading.Thread(target=self.run, args=(stop,), name="namespaces", daemon=True).start()
        return stop


def copies_in(core: client.CoreV1Api, namespace: str) -> set[SecretRef]:
    """(owner, key) of every copy in `namespace`: labels only, never the values."""
    response = core.list_namespaced_secret(
        namespace,
        label_selector=naming.MANAGED_SELECTOR,
        resource_version="0",  # served from the apiserver's watch cache
        _preload_content=False,
        _headers={"Accept": METADATA_ONLY},
    )
    # An empty list comes back as `"items": null` (a nil slice in Go).
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    refs = set()
    for item in items:
        labels = item["metadata"].get("labels") or {}
        if naming.OWNER_LABEL in labels and naming.KEY_LABEL in labels:
            refs.add(SecretRef(labels[naming.OWNER_LABEL], labels[naming.KEY_LABEL]))
    return refs


def reviewer(
    core: client.CoreV1Api, users: NamespaceUsers, settings: Settings
) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The webhook's handler: fetch what `admission.decide` needs, then let it decide."""

    def review_sync(body: dict[str, Any]) -> dict[str, Any]:
        request = admission.read_review(body)
        if isinstance(request, str):
            return admission.malformed_response(body, request)
        user = users.user_of(request.namespace)
        available = copies_in(core, request.namespace) if user is not None else set()
        decision = admission.decide(
            request.pod,
            namespace=request.namespace,
            user=user,
            available=available,
            settings=settings,
        )
        return admission.review_response(body, decision)

    async def review(body: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(review_sync, body)

    return review
