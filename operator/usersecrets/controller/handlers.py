"""kopf's part: every watch event becomes a cache update and dirty pairs; nothing more.

kopf follows SecretGrants and Namespaces. UserSecrets and Secrets are followed by `watching`
(`run.Controller.follow`), which can ask for our copies only, and for other Secrets' metadata
only, and which spends a fifth of the CPU kopf does on an event: that counts for the two events of
every UserSecret.

Only `on.event` handlers, on purpose: kopf then stores nothing on our objects, so no finalizer
can get stuck and no last-handled-configuration annotation ever holds `spec.value`. Deletions
need no finalizer either: the desired state no longer has the copies, so they go.

kopf runs in a thread with an event loop of its own, because on stopping it cancels every task
of its loop, and the webhook must not be one of them. Handlers hand each event to the
controller's loop, in order, with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import TYPE_CHECKING, Any

import kopf
import uvloop
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory

from usersecrets import GROUP, VERSION, metrics
from usersecrets.kube import watching
from usersecrets.kube.credentials import in_cluster_server

if TYPE_CHECKING:
    from usersecrets.controller.run import Controller

registry = kopf.OperatorRegistry()


class _Forgetful(ResourceMemories):
    """kopf keeps a memory of every object it has seen until it is deleted, for daemons,
    timers, indexes and resumed handlers. We use none of them; with the idle workers below,
    they were near half of the operator's growth per UserSecret. Each event gets a fresh one
    (our handlers only read the shared memo). kopf takes `memories` as an argument of
    `kopf.operator`, but exports no name for its type: hence the private import."""

    async def recall(
        self,
        raw_body: kopf.RawBody,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> ResourceMemory:
        return await super().recall(
            raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True
        )


class _NoDiffBase(kopf.DiffBaseStorage):
    """kopf diffs every event's object against the last one handled, for on.create/update
    handlers, and stores that in an annotation. We have neither: the diff (a deep copy of the
    body and a search for the annotation, each time) was ~0.1 ms of kopf's ~0.7 ms per event
    (`make bench ARGS="--only events"`)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class _NoProgress(kopf.ProgressStorage):
    """kopf keeps each on.create/update/delete handler's progress in annotations and status,
    and on every event deep-copies the diff base (empty here: `_NoDiffBase`) to strip those
    records from it. on.event handlers have no progress: that was ~7% of kopf's time per event
    when a restart lists every grant and namespace (py-spy)."""

    def fetch(self, *, key: Any, body: kopf.Body) -> kopf.ProgressRecord | None:
        return None

    def store(
        self, *, key: Any, record: kopf.ProgressRecord, body: kopf.Body, patch: kopf.Patch
    ) -> None:
        return None

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        return None

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod its ServiceAccount, elsewhere the kubeconfig: as the rest of the operator.

    In a pod, at KUBERNETES_SERVICE_HOST/PORT, where client-go and the rest of the operator go
    too: kopf's own login asks DNS for kubernetes.default.svc, which a cluster without DNS for
    it, or an apiServer.host chart value, does not give.
    """
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        return kopf.login_with_kubeconfig(**kwargs)
    return dataclasses.replace(info, server=in_cluster_server() or info.server)


def _record(memo: kopf.Memo, kind: str, *args: Any) -> None:
    """Hands the event to the controller's loop, where the cache method of that name records it."""
    metrics.WATCH_EVENTS.labels(kind).inc()
    controller: Controller = memo["controller"]
    event = getattr(controller.cache, kind)
    watching.hand_over(memo["loop"], controller.handle, event, *args)


@kopf.on.event(GROUP, VERSION, "secretgrants", registry=registry)
async def secretgrant(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _record(memo, "secretgrant", body, type == "DELETED")


@kopf.on.event("", "v1", "namespaces", registry=registry)
async def namespace(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    labels, annotations = dict(body.metadata.labels), dict(body.metadata.annotations)
    _record(memo, "namespace", body.metadata.name, labels, type == "DELETED", annotations)


def run(
    controller: Controller,
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
    identity: str,
) -> None:
    """kopf until `stop` is set; run it in a thread of its own, `loop` being the controller's.

    `identity` is given: kopf would otherwise look its user up in /etc/passwd, which has no
    entry for the uid a pod runs as (65532 in the chart, any uid on some platforms), and fail.
    """
    uvloop.run(
        kopf.operator(
            registry=registry,
            settings=settings(),
            memo=kopf.Memo(controller=controller, loop=loop),
            memories=_Forgetful(),
            clusterwide=True,
            standalone=True,
            stop_flag=stop,
            # kopf types it as a NewType of str that it does not export.
            identity=identity,  # type: ignore[arg-type]
        )
    )


def settings() -> kopf.OperatorSettings:
    """Every shard follows every grant and namespace: they are few, and a grantee's limit on
    shares received counts across owners."""
    operator = kopf.OperatorSettings()
    # Users read our Events and statuses; kopf's own Events would only echo handler errors.
    operator.posting.enabled = False
    # The apiserver closes each watch within server_timeout; a watch silent for longer than
    # client_timeout is considered stale and reopened, so a dead connection cannot go unnoticed.
    operator.watching.server_timeout = 240
    operator.watching.client_timeout = 300
    operator.watching.connect_timeout = 30
    # We know our resources: no CRD discovery watch (and no RBAC for it).
    operator.scanning.disabled = True
    # A worker per object lives on this long after its last event (5 s by default): after a
    # restart lists 100,000 objects, that was 100,000 idle tasks and queues at once (kopf
    # listed UserSecrets then; it still lists every grant and namespace).
    operator.queueing.idle_timeout = 0.5
    # A restart lists every object: a page at a time, and no more workers than this at once,
    # or the whole list is parsed and held at once (most of a restart's peak of memory).
    operator.watching.chunk_size = 500
    operator.queueing.worker_limit = 1000
    operator.persistence.diffbase_storage = _NoDiffBase()
    operator.persistence.progress_storage = _NoProgress()
    return operator
