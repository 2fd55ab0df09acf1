"""kopf's part: every watch event becomes a cache update and dirty pairs; nothing more.

Only `on.event` handlers, on purpose: kopf then stores nothing on our objects, so no finalizer
can get stuck and no last-handled-configuration annotation ever holds `spec.value`. Deletions
need no finalizer either: the desired state no longer has the copies, so they go.

kopf runs in a thread with an event loop of its own, because on stopping it cancels every task
of its loop, and the webhook must not be one of them. Handlers hand each event to the
reconciler's loop, in order, with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import kopf

from usersecrets import GROUP, VERSION, metrics
from usersecrets.reconciler import Reconciler

logger = logging.getLogger(__name__)
registry = kopf.OperatorRegistry()


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod its ServiceAccount, elsewhere the kubeconfig: as the rest of the operator."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def _deleted(event_type: str | None) -> bool:
    return event_type == "DELETED"


def _hand_over(memo: kopf.Memo, update: Callable[..., None], *args: Any) -> None:
    """A closure, not `call_soon_threadsafe(update, *args)`: asyncio would log the arguments
    (a body holding a value) of a callback that raises."""

    def apply() -> None:
        try:
            update(*args)
        except Exception as error:
            logger.error("a watch event could not be recorded: %s", type(error).__name__)

    memo["loop"].call_soon_threadsafe(apply)


@kopf.on.event(GROUP, VERSION, "usersecrets", registry=registry)
async def usersecret(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    metrics.WATCH_EVENTS.labels("usersecret").inc()
    _hand_over(memo, memo["reconciler"].set_usersecret, body, _deleted(type))


@kopf.on.event(GROUP, VERSION, "secretgrants", registry=registry)
async def secretgrant(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    metrics.WATCH_EVENTS.labels("secretgrant").inc()
    _hand_over(memo, memo["reconciler"].set_grant, body, _deleted(type))


@kopf.on.event("", "v1", "namespaces", registry=registry)
async def namespace(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    metrics.WATCH_EVENTS.labels("namespace").inc()
    labels = dict(body.metadata.labels)
    _hand_over(memo, memo["reconciler"].set_namespace, body.metadata.name, labels, _deleted(type))


@kopf.on.event("", "v1", "secrets", registry=registry)
async def secret(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    metrics.WATCH_EVENTS.labels("secret").inc()
    _hand_over(memo, memo["reconciler"].set_secret, body, _deleted(type))


def run(reconciler: Reconciler, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
    """kopf until `stop` is set; run it in a thread of its own, `loop` being the reconciler's."""
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=settings(),
            memo=kopf.Memo(reconciler=reconciler, loop=loop),
            clusterwide=True,
            standalone=True,
            stop_flag=stop,
        )
    )


def settings() -> kopf.OperatorSettings:
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
    return operator
