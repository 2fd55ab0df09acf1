"""Reconciling one secret, (owner, key): its copies to the desired state, then its statuses.

The cache is read and changed on the event loop only, where the watch events change it too;
the writer and the reporter make their API calls with what they are handed, and hand back what
they did.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from usersecrets.api.resources import SecretKeySelector
from usersecrets.controller.cache import Cache
from usersecrets.controller.reporter import Reporter, status_writes
from usersecrets.controller.writer import Outcome, Writer
from usersecrets.rules import desired, naming, quota
from usersecrets.rules.desired import ActualSecret, OwnerKey
from usersecrets.rules.sharding import UNSHARDED, Shard
from usersecrets.settings import Settings

logger = logging.getLogger(__name__)

ReadSource = Callable[[str, SecretKeySelector], Awaitable[tuple[bytes | None, str]]]
ReadQuotas = Callable[[str], list[dict[str, Any]]]


class Reconciler:
    def __init__(
        self,
        cache: Cache,
        writer: Writer,
        reporter: Reporter,
        read_source: ReadSource,
        read_quotas: ReadQuotas,
        settings: Settings,
        dry_run: bool = False,
        requeue: Callable[[Iterable[OwnerKey]], None] = lambda _: None,
        shard: Shard = UNSHARDED,
    ) -> None:
        """`requeue` takes the other pairs a reconcile found changed (a source that grew
        may put its owner past a limit). Only the pairs of owners in `shard` are reconciled."""
        self.cache, self.writer, self.reporter = cache, writer, reporter
        self.read_source, self.read_quotas = read_source, read_quotas
        self.settings, self.dry_run = settings, dry_run
        self.requeue, self.shard = requeue, shard
        self._quota_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def copies(self, pair: OwnerKey) -> None:
        """Compute, diff and apply the copies of one (owner, key); raise to be retried.

        An owner of another shard has nothing here but grants (every shard follows them all),
        and UserSecrets and copies on their way to its shard: they are sent on."""
        if not self.shard.owns(pair.owner):
            secrets = [(s.namespace, s.key) for s in self.cache.world.secrets_of(pair)]
            copies = [(c.namespace, c.name) for c in self.cache.copies.of_pair(pair)]
            if secrets or copies:
                await self.writer.move(secrets, copies, pair.owner)
            return
        await self._resolve(pair)
        cache = self.cache
        want = desired.compute(cache.world, self.settings.cluster_name, [pair])
        plan = desired.diff(want, cache.copies.of_pair(pair))
        shared = {c.namespace for c in plan.creates if c.reason == naming.REASON_GRANT}
        async with contextlib.AsyncExitStack() as quotas_held:
            # One decision at a time per namespace with a quota, each on the quota as read
            # after the last one's copies were written: its watch may still tell a status
            # from before them, and a room counted from that would give a slot away twice.
            for namespace in sorted(ns for ns in shared if cache.room(ns)):
                await quotas_held.enter_async_context(self._quota_locks[namespace])
                cache.quotas_read(namespace, await asyncio.to_thread(self.read_quotas, namespace))
            rooms = {c.namespace: r for c in plan.creates if (r := cache.room(c.namespace))}
            percent = self.settings.quota_reserve_percent
            margin = self.shard.count - 1  # other leaders deciding at the same moment
            creates, held = quota.hold_back(plan.creates, rooms, percent, margin)
            plan = dataclasses.replace(plan, creates=tuple(creates))
            touched = [(c.namespace, c.name) for c in plan.updates]
            touched += [(s.namespace, s.name) for s in plan.deletes]
            versions = {r: v for r in touched if (v := cache.copies.version(r)) is not None}
            outcome = await self.writer.apply(plan, versions)
        refused = {namespace: said for (namespace, _), said in outcome.refused}
        cache.found(pair, outcome.collisions, {**held, **refused}, held)
        if not self.dry_run:  # a dry run changed nothing: the cache still says what exists
            self._record(outcome, versions)
        if not plan.empty:
            logger.info(
                "secret %s/%s: %d copies written, %d deleted, %d name collisions, %d refused",
                pair.owner,
                pair.key,
                len(outcome.written),
                len(outcome.deleted),
                len(outcome.collisions),
                len(outcome.refused),
            )
        if outcome.errors:  # the queue retries, backing off; a status tells the refusals
            raise outcome.errors[0]

    def _record(self, outcome: Outcome, versions: dict[tuple[str, str], str]) -> None:
        copies = self.cache.copies
        for copy, version in outcome.written:
            ref = (copy.namespace, copy.name)
            if copies.version(ref) in (versions.get(ref), version):
                copies.remember(ActualSecret.of_copy(copy), version)
            # else someone changed it after our write, and their event is in the cache (the
            # pair is dirty again): keep theirs, the next round compares with it.
        for ref in outcome.deleted:
            copies.forget(ref)

    async def statuses(self, pair: OwnerKey) -> None:
        """The statuses of the pair's UserSecrets and grants, from the cache as it is now;
        another shard's owner's are its shard's to write."""
        if not self.shard.owns(pair.owner):
            return
        cache = self.cache
        want = desired.compute(cache.world, self.settings.cluster_name, [pair])
        writes = status_writes(
            want,
            cache.usersecrets,
            cache.grants,
            collisions=sorted(ns for ns, _ in cache.collisions_of(pair)),
            refused=cache.refused.get(pair, {}),
            no_owner_hint=(
                f"a system namespace, or one without the '{self.settings.user_label}' label"
            ),
            now=datetime.datetime.now(datetime.UTC),
        )
        if writes and not self.dry_run:
            await self.reporter.write(writes)
            for write in writes:
                write.tracked.status = {**write.tracked.status, **write.status}

    async def _resolve(self, pair: OwnerKey) -> None:
        """Reads the valueFrom sources of the pair's UserSecrets, here rather than in the event
        handlers: read after the source is registered, no change is missed, and a failed read
        is retried with the pair. Nothing is made of a secret in a namespace without a user, so
        its source is never read."""
        if pair.owner == desired.NO_OWNER:
            return
        world = self.cache.world
        for namespace in world.namespaces_of(pair.owner):
            tracked = self.cache.usersecrets.get((namespace, pair.key))
            if tracked is None or tracked.value_from is None:
                continue
            value, kind = await self.read_source(namespace, tracked.value_from)
            refused = kind if kind in self.settings.value_from_refused_types else None
            if refused:
                value = None  # not even kept: a credential of the cluster is never copied
            view = world.secret(namespace, pair.key)
            if view is not None and (view.value, view.refused_type) != (value, refused):
                changed = dataclasses.replace(view, value=value, refused_type=refused)
                self.requeue(self.cache.put_secret((namespace, pair.key), changed) - {pair})
