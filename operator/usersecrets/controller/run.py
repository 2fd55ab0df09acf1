"""The leader's controller, wired: watches feed the cache, the pairs they dirty feed the workers.

kopf watches SecretGrants and Namespaces (`handlers`); our own list+watch loops follow
UserSecrets and Secrets, the objects every secret makes events of (see `follow`). Every event
is handed to this event loop, the only thread that touches the cache.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from usersecrets import heap, metrics
from usersecrets.controller import handlers, reads
from usersecrets.controller.cache import RELISTED, Cache, Pairs, Ref, ref_of
from usersecrets.controller.reconciler import Reconciler
from usersecrets.controller.reporter import Reporter
from usersecrets.controller.workers import Queues, copy_worker, report_worker
from usersecrets.controller.writer import Writer
from usersecrets.kube import paths, watching
from usersecrets.kube.async_client import AsyncKubeApi
from usersecrets.kube.client import ApiError, KubeApi
from usersecrets.kube.lease import LeaderElector, acquire_one
from usersecrets.kube.watching import Changed, Listed
from usersecrets.rules import naming
from usersecrets.rules.desired import NO_OWNER
from usersecrets.rules.sharding import UNSHARDED, Shard, all_shards
from usersecrets.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Seconds between attempts of the first relist, at most.
MAX_RELIST_DELAY = 30.0


class Controller:
    """The cache, the queues and the reconciler of one leader: of one shard's owners."""

    def __init__(
        self, api: KubeApi, writes: AsyncKubeApi, settings: Settings, shard: Shard = UNSHARDED
    ) -> None:
        """`api` lists and watches in threads; `writes` makes the reconciles' requests from
        the loop."""
        self.api, self.settings, self.shard = api, settings, shard
        self.cache = Cache(settings)
        self.queues = Queues()
        self.writer = Writer(writes, settings.dry_run)
        self.reconciler = Reconciler(
            self.cache,
            self.writer,
            Reporter(writes),
            functools.partial(reads.read_source, writes),
            functools.partial(reads.read_quotas, api),
            settings,
            settings.dry_run,
            requeue=self.queues.copies.add_all,
            shard=shard,
        )
        metrics.QUEUE_DEPTH.set_function(lambda: len(self.queues))
        metrics.COPIES.set_function(lambda: len(self.cache.copies))

    def handle(self, event: Callable[..., Pairs], *args: Any) -> None:
        """Records a watch event in the cache (`event` is one of its methods) and queues the
        pairs it dirtied."""
        self.queues.copies.add_all(event(*args))

    async def relist(self) -> dict[str, str]:
        """Makes the cache equal to full lists, a page at a time; returns the version each
        kind's list had (RELISTED), for our watches to start from."""
        cache, dirty, shard = self.cache, self.queues.copies.add_all, self.shard
        cache.begin_relist()
        versions: dict[str, str] = {}
        try:
            namespaces, quotas = await asyncio.to_thread(reads.list_namespaces, self.api)
            for pairs in cache.relisted_namespaces(namespaces):
                dirty(pairs)
                await asyncio.sleep(0)  # admissions first
            dirty(cache.quotas_listed(quotas))
            if shard.count > 1:  # what has no slot yet is in no shard's lists
                owners = {n: cache.world.user_of(n) or NO_OWNER for n in cache.world.namespaces()}
                unlabelled, labelled = reads.unlabelled(self.api, owners, shard), 0
                while (found := await asyncio.to_thread(next, unlabelled, None)) is not None:
                    labelled += await self.writer.label(found)
                if labelled:
                    logger.info("labelled %d user secrets and copies with their slots", labelled)
            for kind in RELISTED:
                pages = reads.pages_of(self.api, kind, shard)
                while page := await asyncio.to_thread(next, pages, None):
                    items, versions[kind] = page
                    dirty(cache.relisted(kind, items))
                    del items, page  # one page held at a time
                    await asyncio.sleep(0)
        except BaseException:
            for _ in cache.end_relist(None):
                pass
            raise
        for pairs in cache.end_relist(namespaces):
            dirty(pairs)
            await asyncio.sleep(0)
        logger.info(
            "listed %d user secrets, %d grants and %d copies",
            len(cache.usersecrets),
            len(cache.grants),
            len(cache.copies),
        )
        return versions

    async def first_relist(self) -> dict[str, str]:
        """`relist`, until it succeeds: an apiserver starting, or a CRD just created, answers
        429 for a moment ("storage is (re)initializing"), and that is no reason to exit."""
        delay = 1.0
        while True:
            try:
                with heap.loading(freeze=True):
                    return await self.relist()
            except ApiError as error:
                said = f"HTTP {error.status} {error.reason}"
            except Exception as error:  # a connection, a timeout
                said = type(error).__name__
            logger.warning("listing failed (%s); trying again in %.0f s", said, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RELIST_DELAY)

    def follow(
        self, loop: asyncio.AbstractEventLoop, versions: dict[str, str]
    ) -> list[threading.Event]:
        """UserSecrets (a shard's only) and our copies (label-selected) in full, every other
        Secret's metadata for valueFrom sources and names held by others, from the relist's
        `versions`; and quotas. Set the Events to stop.

        UserSecrets are followed here, not by kopf: each secret brings two of their events
        (its creation, and our status coming back), and kopf spent 0.6-0.8 ms of CPU on each
        against ~0.15 ms here (`make bench ARGS="--only events"`), most of what the operator
        spent per secret beyond its two writes (issue 17)."""
        cache = self.cache

        def recorded(kind: str, record: Callable[[Mapping[str, Any], bool], Pairs]) -> Changed:
            """Counts each event of `kind` and has `record` note it on the loop."""
            counted = metrics.WATCH_EVENTS.labels(kind)  # found once, not at each event

            def changed(event: str, body: dict[str, Any]) -> None:
                counted.inc()
                watching.hand_over(loop, self.handle, record, body, event == "DELETED")

            return changed

        def relisted(kind: str) -> Listed:
            """A fresh list, read here in the watch's thread (the loop never waits for the
            apiserver) and noted on the loop a page at a time, the next page read once the
            last was noted: never a shard's whole list held, nor admissions held up while
            all of it is recorded. Then its end."""

            def listed(items: Iterator[dict[str, Any]]) -> None:
                present: set[Ref] = set()
                while page := list(itertools.islice(items, watching.PAGE)):
                    present.update(map(ref_of, page))
                    watching.hand_over(loop, self.handle, cache.listed_anew, kind, page)
                    watching.caught_up(loop)
                watching.hand_over(loop, self.handle, cache.listed_anew_in_full, kind, present)

            return listed

        secrets_counted = metrics.WATCH_EVENTS.labels("secret")

        def secret_changed(_: str, obj: dict[str, Any]) -> None:
            secrets_counted.inc()
            watching.hand_over(loop, self.handle, cache.secret, obj["metadata"])

        return [
            watching.start(
                "reconciler-usersecrets",
                self.api,
                paths.custom("usersecrets"),
                listed=relisted("usersecret"),
                changed=recorded("usersecret", cache.usersecret),
                label_selector=self.shard.narrowing(),
                version=versions["usersecret"],
            ),
            watching.start(
                "reconciler-copies",
                self.api,
                paths.SECRETS,
                listed=relisted("secret"),
                changed=recorded("copy", cache.copy),
                label_selector=self.shard.narrowing(naming.MANAGED_SELECTOR),
                version=versions["secret"],
            ),
            watching.start(
                "reconciler-secrets",
                self.api,
                paths.SECRETS,
                listed=lambda _: watching.hand_over(loop, self.handle, cache.secrets_listed),
                changed=secret_changed,
                # Our copies come in full through the first watch: not twice.
                label_selector=naming.UNMANAGED_SELECTOR,
                metadata_only=True,
                version=versions["secret"],
            ),
            # Quotas on Secrets: the room copies shared by others may take (rules.quota).
            watching.start(
                "reconciler-quotas",
                self.api,
                paths.RESOURCE_QUOTAS,
                listed=lambda items: watching.hand_over(
                    loop, self.handle, cache.quotas_listed, list(items)
                ),
                changed=recorded("quota", cache.quota),
            ),
        ]

    def workers(self) -> list[asyncio.Task[None]]:
        refused = self.cache.refused
        copies, statuses = self.reconciler.copies, self.reconciler.statuses
        tasks = [
            asyncio.create_task(copy_worker(self.queues, copies, refused))
            for _ in range(self.settings.workers)
        ]
        return tasks + [
            asyncio.create_task(report_worker(self.queues, statuses, refused))
            for _ in range(self.settings.status_workers)
        ]

    async def resync(self) -> None:
        """Lists everything again now and then, and re-examines every pair: a safety net under
        the watches, for what they cannot tell (deletions during a watch's restart)."""
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            try:
                await self.relist()
            except Exception as error:
                logger.warning(
                    "resync failed (%s); the next one will try again", type(error).__name__
                )
            self.queues.copies.add_all(self.cache.everything())


async def lead(api: KubeApi, settings: Settings, stop: asyncio.Event) -> None:
    """Leads (when elected: a shard, the first free one), loads the world, and runs the
    workers and kopf until `stop`."""
    elector = None
    tasks: list[asyncio.Task[None]] = []
    identity = f"{socket.gethostname()}-{os.getpid()}"
    shard = UNSHARDED
    if settings.leader_election:
        electors = {
            LeaderElector(
                api,
                settings.operator_namespace,
                one.lease_name(settings.lease_name),
                identity,
                settings.lease_seconds,
                settings.lease_renew_seconds,
            ): one
            for one in all_shards(settings.shards)
        }
        elector = await _until(acquire_one(list(electors)), stop)
        if elector is None:
            return
        shard = electors[elector]
        tasks.append(asyncio.create_task(elector.keep()))
    if shard.count > 1:
        logger.info("leading %s", shard)
    writes = AsyncKubeApi(api.credentials)
    controller = Controller(api, writes, settings, shard)
    loop = asyncio.get_running_loop()
    kopf_stop = threading.Event()
    watches: list[threading.Event] = []
    kopf: list[asyncio.Task[None]] = []
    stopped = asyncio.create_task(stop.wait())
    # The Lease is kept meanwhile, and may be lost: then the process ends, as below.
    listing = asyncio.create_task(controller.first_relist())
    try:
        done, _ = await asyncio.wait(
            [listing, *tasks, stopped], return_when=asyncio.FIRST_COMPLETED
        )
        if listing not in done:
            _raise_ended(done - {stopped})
            return
        watches = controller.follow(loop, listing.result())
        metrics.LEADING.set(1)
        tasks += controller.workers()
        tasks.append(asyncio.create_task(controller.resync()))
        # Not cancelled, but stopped (kopf_stop), and waited for: it ends its thread's loop.
        kopf.append(
            asyncio.create_task(
                asyncio.to_thread(handlers.run, controller, loop, kopf_stop, identity)
            )
        )
        done, _ = await asyncio.wait([*tasks, *kopf, stopped], return_when=asyncio.FIRST_COMPLETED)
        _raise_ended(done - {stopped})
    finally:
        kopf_stop.set()
        for watch in watches:
            watch.set()
        for task in [*tasks, listing, stopped]:
            task.cancel()
        try:  # every task that may write has ended before the client closes
            await asyncio.gather(*tasks, *kopf, listing, stopped, return_exceptions=True)
        finally:
            await writes.close()
            if elector is not None:
                await asyncio.to_thread(elector.release)


def _raise_ended(ended: set[asyncio.Task[Any]]) -> None:
    """A lost Lease or a stopped kopf ends the process: raises what ended them."""
    for task in ended:
        task.result()
        raise RuntimeError(f"{task.get_name()} ended; the controller cannot go on")


async def _until(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """What `work` returns, or None if `stop` comes first."""
    waiter = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, stopped], return_when=asyncio.FIRST_COMPLETED)
    for task in (waiter, stopped):
        task.cancel()
    return waiter.result() if waiter.done() and not waiter.cancelled() else None
