"""What an admission needs from the cluster, kept in memory: no API call per admission.

Every replica, leader or not, follows two metadata-only watches: namespaces (whose user is a
label) and the copies the reconciler made (whose labels say which secret they hold). The
webhook never reads a secret value, and never depends on the reconciler's caches, which only
the leader has. A copy is the proof that a pod's user may use a secret; Kubernetes itself then
only lets the pod mount Secrets of its own namespace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from usersecrets import heap
from usersecrets.kube import paths, watching
from usersecrets.kube.client import KubeApi
from usersecrets.rules import naming
from usersecrets.rules.references import SecretRef
from usersecrets.settings import Settings

T = TypeVar("T")


class MetadataCache(Generic[T]):
    """namespace -> name -> what `project` keeps of an object's metadata, for one kind, current
    through a metadata-only list+watch in a thread. Cluster-scoped objects sit under "".

    Only the projection stays in memory. Readers on other threads copy a namespace's dict
    before iterating it (a single, atomic C call).
    """

    def __init__(
        self,
        core: KubeApi,
        path: str,
        project: Callable[[Mapping[str, Any]], T],
        label_selector: str | None = None,
    ) -> None:
        self.core, self.path = core, path
        self.project, self.label_selector = project, label_selector
        self.objects: dict[str, dict[str, T]] = {}
        self.synced = threading.Event()

    def load(self, items: Iterable[dict[str, Any]]) -> None:
        objects: dict[str, dict[str, T]] = {}
        with heap.loading(freeze=not self.synced.is_set()):  # a first load only
            for item in items:
                meta = item["metadata"]
                kept = self.project(meta)
                objects.setdefault(meta.get("namespace", ""), {})[meta["name"]] = kept
        self.objects = objects
        self.synced.set()

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        names = self.objects.setdefault(meta.get("namespace", ""), {})
        if kind == "DELETED":
            names.pop(meta["name"], None)
        else:
            names[meta["name"]] = self.project(meta)

    def start(self, name: str) -> threading.Event:
        return watching.start(
            name,
            self.core,
            self.path,
            listed=self.load,
            changed=self.apply,
            label_selector=self.label_selector,
            metadata_only=True,
        )


class Lookups:
    """The two caches admission reads, and the answers it needs from them."""

    def __init__(self, core: KubeApi, settings: Settings) -> None:
        self.core, self.settings = core, settings
        self.namespaces: MetadataCache[str | None] = MetadataCache(
            core,
            paths.NAMESPACES,
            lambda meta: naming.user_of_namespace(meta["name"], meta.get("labels"), settings),
        )
        self.copies: MetadataCache[SecretRef | None] = MetadataCache(
            core, paths.SECRETS, _secret_ref, naming.MANAGED_SELECTOR
        )

    def start(self) -> list[threading.Event]:
        return [self.namespaces.start("webhook-namespaces"), self.copies.start("webhook-copies")]

    @property
    def synced(self) -> bool:
        return self.namespaces.synced.is_set() and self.copies.synced.is_set()

    def known_user(self, namespace: str) -> tuple[bool, str | None]:
        """(whether the cache knows the namespace, its user)."""
        users = self.namespaces.objects.get("", {})
        return namespace in users, users.get(namespace)

    def read_user(self, namespace: str) -> str | None:
        """For a namespace newer than our watch: one API call."""
        found = self.core.json("GET", f"{paths.NAMESPACES}/{namespace}")
        return naming.user_of_namespace(namespace, found["metadata"].get("labels"), self.settings)

    def available(self, namespace: str) -> Container[SecretRef]:
        """The secrets with a copy in `namespace`, looked up one by one: a pod asks for a few,
        its namespace may hold thousands."""
        return _CopiesIn(self.copies.objects.get(namespace, {}))


@dataclass(frozen=True)
class _CopiesIn(Container[SecretRef]):
    names: Mapping[str, SecretRef | None]

    def __contains__(self, ref: object) -> bool:
        """A copy counts under the name pods mount it by, with labels that say it holds `ref`."""
        if not isinstance(ref, SecretRef):
            return False
        return self.names.get(naming.copy_name(ref.owner, ref.key)) == ref


def _secret_ref(meta: Mapping[str, Any]) -> SecretRef | None:
    """The secret a copy holds; none for a copy on its way out (its finalizers may keep it for
    ever), which is no share any more."""
    labels = meta.get("labels") or {}
    if meta.get("deletionTimestamp") or not (
        naming.OWNER_LABEL in labels and naming.KEY_LABEL in labels
    ):
        return None
    return SecretRef(labels[naming.OWNER_LABEL], labels[naming.KEY_LABEL])
