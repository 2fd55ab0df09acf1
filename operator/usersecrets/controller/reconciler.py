"""Keeps the materialized Secrets equal to `desired.compute`, one (owner, key) at a time.

Events only mark pairs dirty; workers take a pair, compute its desired copies from the cached
world, diff them with the cached copies and apply the difference. A pair whose copies are in
sync then goes to a second queue, whose fewer workers write its statuses: a report, so it never
delays the copies pods wait for (under a burst, copies first, statuses after).
In both queues a pair is never worked on twice at once, a pair dirtied while in work is redone
after, and a failure is retried with backoff: the usual controller work queue, so missed,
repeated or reordered events all end in the same state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from usersecrets import API_VERSION, metrics
from usersecrets.api.resources import Condition, SecretKeySelector, UserSecretSpec
from usersecrets.kube import paths, watching
from usersecrets.kube.client import MERGE_PATCH, KubeApi
from usersecrets.rules import conditions, desired, naming, status
from usersecrets.rules.desired import ActualSecret, DesiredCopy, OwnerKey, SecretView, World
from usersecrets.settings import Settings

logger = logging.getLogger(__name__)

Ref = tuple[str, str]  # (namespace, name)


@dataclass
class _Meta:
    """What status writes need of a custom object: its generation and current status.

    The status is kept as compact JSON: parsed, ten thousand of them are ~15 MB of small
    objects, and they are only read when a status is written."""

    uid: str
    generation: int | None
    status_json: str
    value_from: SecretKeySelector | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any], value_from: SecretKeySelector | None = None) -> _Meta:
        meta = body["metadata"]
        return cls(meta["uid"], meta.get("generation"), _compact(body.get("status")), value_from)

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.status_json)
        return status

    @status.setter
    def status(self, value: Mapping[str, Any] | None) -> None:
        self.status_json = _compact(value)


def _compact(status: Mapping[str, Any] | None) -> str:
    return json.dumps(status or {}, separators=(",", ":"))


@dataclass
class WorkQueue:
    """Deduplicating queue: a pair waits at most once, and is never in two workers."""

    queued: set[OwnerKey] = field(default_factory=set)
    active: set[OwnerKey] = field(default_factory=set)
    dirty: set[OwnerKey] = field(default_factory=set)
    since: dict[OwnerKey, float] = field(default_factory=dict)
    failures: dict[OwnerKey, int] = field(default_factory=dict)
    queue: asyncio.Queue[OwnerKey] = field(default_factory=asyncio.Queue)

    def add(self, pair: OwnerKey) -> None:
        self.since.setdefault(pair, time.monotonic())
        if pair in self.active:
            self.dirty.add(pair)
        elif pair not in self.queued:
            self.queued.add(pair)
            self.queue.put_nowait(pair)

    async def get(self) -> OwnerKey:
        pair = await self.queue.get()
        self.queued.discard(pair)
        self.active.add(pair)
        return pair

    def done(self, pair: OwnerKey, ok: bool) -> float | None:
        """Ends work on `pair`; returns the seconds it waited since first dirtied, on success."""
        self.active.discard(pair)
        started = self.since.pop(pair, None)
        if ok:
            self.failures.pop(pair, None)
        if pair in self.dirty:
            self.dirty.discard(pair)
            self.add(pair)
        elif not ok:
            count = self.failures[pair] = self.failures.get(pair, 0) + 1
            delay = min(0.2 * 2**count, 60.0)
            asyncio.get_running_loop().call_later(delay, self.add, pair)
        return None if started is None or not ok else time.monotonic() - started

    def busy(self, pair: OwnerKey) -> bool:
        """Queued or in work."""
        return pair in self.queued or pair in self.active or pair in self.dirty

    def pending(self, pair: OwnerKey) -> bool:
        """Busy, or failed and waiting to be retried."""
        return self.busy(pair) or pair in self.failures

    def __len__(self) -> int:
        return len(self.queued | self.active | self.dirty)


#: What the apiserver answers a write it will refuse again: bad input, a quota, a policy.
REFUSALS = frozenset({400, 403, 422})


@dataclass
class _Outcome:
    """What applying a plan did; the event loop records it in the caches."""

    written: list[tuple[DesiredCopy, str]] = field(default_factory=list)
    deleted: list[Ref] = field(default_factory=list)
    collisions: list[Ref] = field(default_factory=list)
    #: Copies the apiserver refused, and what it said, fit for a status.
    refused: list[tuple[Ref, str]] = field(default_factory=list)
    #: Every write that failed, refusals included: the pair is retried.
    errors: list[ApiException] = field(default_factory=list)

    @contextlib.contextmanager
    def trying(self, ref: Ref, *, told: bool = True) -> Iterator[None]:
        """A failed write is noted and the plan goes on: one namespace refusing its copy (a
        quota, a policy) must not keep the others from theirs. A refusal is told in the
        statuses; anything else (a conflict, throttling, the apiserver failing) is retried
        quietly, since it says nothing the user can act on."""
        try:
            yield
        except ApiException as error:
            self.errors.append(error)
            if told and error.status in REFUSALS:
                said = status.write_failure(error.status, error.reason, error.body)
                self.refused.append((ref, said))


@dataclass(frozen=True)
class _Lists:
    namespaces: dict[str, dict[str, str] | None]
    copies: list[dict[str, Any]]
    grants: list[dict[str, Any]]
    usersecrets: list[dict[str, Any]]
    #: Where the Secret watches start: the copies' list version.
    secrets_version: str


@dataclass(frozen=True)
class _StatusWrite:
    plural: str
    ref: Ref
    meta: _Meta
    status: dict[str, Any]
    #: The new Ready condition when it differs (status or reason) from the current one.
    changed: Condition | None


def _changed(current: Mapping[str, Any], new: Mapping[str, Any]) -> Condition | None:
    """The new Ready condition if an Event should tell of it: a problem, or a change of what
    the object said before. A secret that simply works from the start is told by its status
    alone (an Event each would add a third write per secret to every burst).

    Decided before writing, since the watch may bring our own write back into the cache before
    the write call returns."""
    before = conditions.find(current.get("conditions"))
    after = conditions.find(new["conditions"])
    if after is None:
        return None
    if before is None:
        return None if after.status == "True" else after
    return None if (before.status, before.reason) == (after.status, after.reason) else after


def _within(refused: Mapping[str, str], namespaces: Collection[str]) -> dict[str, str]:
    return {ns: said for ns, said in refused.items() if ns in namespaces}


def _ref(obj: Mapping[str, Any]) -> Ref:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _namespace_terminating(error: ApiException) -> bool:
    """The API server's refusal to create anything in a namespace being deleted."""
    if error.status != 403:
        return False
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (TypeError, ValueError):
        return False
    return any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or [])


class Reconciler:
    """The leader's caches, fed by kopf's and `watching`'s watches, and the workers that act
    on them."""

    def __init__(self, api: client.ApiClient, settings: Settings, dry_run: bool = False) -> None:
        self.core = KubeApi(api)
        self.settings = settings
        self.dry_run = dry_run
        self.world = World()
        self.copies: dict[Ref, ActualSecret] = {}
        self.by_pair: dict[OwnerKey, set[Ref]] = {}
        self.versions: dict[Ref, str] = {}
        self.secret_meta: dict[Ref, _Meta] = {}
        self.grant_meta: dict[Ref, _Meta] = {}
        self.sources: dict[Ref, set[Ref]] = {}  # valueFrom Secret -> UserSecrets reading it
        # Copy names taken by a Secret we do not manage -> the pair that wants the name, so
        # that the copy is created as soon as that Secret goes (we get no other event then).
        self.collisions: dict[Ref, OwnerKey] = {}
        #: Per pair, the namespaces whose copy the apiserver refused, and what it said.
        self.refused: dict[OwnerKey, dict[str, str]] = {}
        self.queue = WorkQueue()  # pairs whose copies may differ from the desired ones
        self.reports = WorkQueue()  # pairs whose statuses may differ from what they should say
        #: While a relist runs: what events changed meanwhile, (kind, (namespace, name)).
        self.touched: set[tuple[str, Ref]] | None = None
        metrics.QUEUE_DEPTH.set_function(lambda: len(self.queue) + len(self.reports))
        metrics.COPIES.set_function(lambda: len(self.copies))

    # -- the world, from events ---------------------------------------------------------

    def _mark(self, pairs: Iterable[OwnerKey | None]) -> None:
        for pair in pairs:
            if pair is not None:
                self.queue.add(pair)

    def _touch(self, kind: str, ref: Ref) -> None:
        if self.touched is not None:
            self.touched.add((kind, ref))

    def set_namespace(self, name: str, labels: Mapping[str, str] | None, deleted: bool) -> None:
        self._touch("namespace", ("", name))
        user = None if deleted else naming.user_of_namespace(name, labels, self.settings)
        if not deleted and self.world.knows_namespace(name) and self.world.user_of(name) == user:
            return
        affected = self.world.affected_by_namespace(name, user)
        if deleted:
            self.world.remove_namespace(name)
        else:
            self.world.set_namespace(name, user)
        self._mark(affected | self.world.affected_by_namespace(name, user))

    def set_usersecret(self, body: Mapping[str, Any], deleted: bool) -> None:
        """A valueFrom value is left unknown here: the worker reads the source (`_resolve`)."""
        meta = body["metadata"]
        ref: Ref = (meta["namespace"], meta["name"])
        self._touch("usersecret", ref)
        old = self.secret_meta.get(ref)
        if not deleted and old is not None and self._seen(old, meta):
            old.status = body.get("status")  # our own status write, coming back
            return
        if old and old.value_from:
            self.sources.get((ref[0], old.value_from.name), set()).discard(ref)
        if deleted:
            self.world.remove_secret(*ref)
            self.secret_meta.pop(ref, None)
            self._mark([self.world.pair_of(*ref)])
            return
        spec = UserSecretSpec.model_validate(body.get("spec") or {})
        selector = spec.value_from.secret_key_ref if spec.value_from else None
        self.secret_meta[ref] = _Meta.of(body, selector)
        value = spec.decoded_value()
        if selector is not None:
            self.sources.setdefault((ref[0], selector.name), set()).add(ref)
        view = SecretView(ref[0], ref[1], meta.get("creationTimestamp") or "", value)
        self.world.put_secret(view)
        self._mark([self.world.pair_of(*ref)])

    @staticmethod
    def _seen(old: _Meta | None, meta: Mapping[str, Any]) -> bool:
        """The same object at the same generation: only its status or metadata changed."""
        return old is not None and (old.uid, old.generation) == (
            meta["uid"],
            meta.get("generation"),
        )

    def read_source(self, namespace: str, selector: SecretKeySelector) -> bytes | None:
        """The bytes a valueFrom names, or None when its Secret or key does not exist."""
        try:
            source = self.core.json("GET", f"{paths.secrets_in(namespace)}/{selector.name}")
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        encoded = (source.get("data") or {}).get(selector.key)
        return None if encoded is None else base64.b64decode(encoded)

    def list_all(self) -> _Lists:
        """Everything the caches hold, from full lists. Runs in a thread."""
        copies, version = watching.list_objects(self.core, paths.SECRETS, naming.MANAGED_SELECTOR)
        namespaces, _ = watching.list_objects(self.core, paths.NAMESPACES)
        return _Lists(
            namespaces={n["metadata"]["name"]: n["metadata"].get("labels") for n in namespaces},
            copies=copies,
            grants=self._list("secretgrants"),
            usersecrets=self._list("usersecrets"),
            secrets_version=version,
        )

    async def relist(self) -> str:
        """Makes the caches equal to full lists: at start, before any work (so nothing is
        deleted because the view was partial), and periodically, because a watch that restarts
        from a new list never tells of what was deleted while it was away.

        Returns the version the Secret watches may start from."""
        self.touched = set()
        lists = await asyncio.to_thread(self.list_all)
        touched, self.touched = self.touched, None

        def fresh(kind: str, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
            """What an event has not changed since the list: that event is newer."""
            return [o for o in listed if (kind, _ref(o)) not in touched]

        for name, labels in lists.namespaces.items():
            if ("namespace", ("", name)) not in touched:
                self.set_namespace(name, labels, deleted=False)
        for copy in fresh("secret", lists.copies):
            self.set_copy(copy, False)
        for grant in fresh("grant", lists.grants):
            self.set_grant(grant, deleted=False)
        for user_secret in fresh("usersecret", lists.usersecrets):
            self.set_usersecret(user_secret, False)
        # Gone since, unless an event brought it back while we listed.
        for name in self.world.namespaces() - lists.namespaces.keys():
            if ("namespace", ("", name)) not in touched:
                self.set_namespace(name, None, deleted=True)
        for kind, cached, listed, forget in (
            ("secret", self.copies.keys(), lists.copies, self.set_copy),
            ("grant", self.grant_meta.keys(), lists.grants, self.set_grant),
            ("usersecret", self.secret_meta.keys(), lists.usersecrets, self.set_usersecret),
        ):
            self._forget_unlisted(kind, cached, listed, forget, touched)
        logger.info(
            "listed %d user secrets, %d grants and %d copies",
            len(self.secret_meta),
            len(self.grant_meta),
            len(self.copies),
        )
        return lists.secrets_version

    def _forget_unlisted(
        self,
        kind: str,
        cached: Iterable[Ref],
        listed: list[dict[str, Any]],
        forget: Callable[[Mapping[str, Any], bool], None],
        touched: Collection[tuple[str, Ref]] = (),
    ) -> None:
        """Whatever the cache holds that a full list no longer has was deleted unseen."""
        present = {_ref(o) for o in listed}
        for namespace, name in set(cached) - present - {r for k, r in touched if k == kind}:
            forget({"metadata": {"namespace": namespace, "name": name}}, True)

    def copies_listed(self, items: list[dict[str, Any]]) -> None:
        """The copies watch listed again (after 410 Gone or a failure): what it missed."""
        for item in items:
            self.set_copy(item, False)
        self._forget_unlisted("secret", self.copies.keys(), items, self.set_copy)

    def secrets_listed(self) -> None:
        """The Secrets watch listed again: any source may have changed, any Secret holding a
        copy's name may have gone, while it was away."""
        self._mark_readers(list(self.sources))
        self._mark(list(self.collisions.values()))

    def follow_secrets(
        self, loop: asyncio.AbstractEventLoop, version: str
    ) -> list[threading.Event]:
        """Our copies in full (label-selected), and every Secret's metadata for valueFrom
        sources and names held by others; from `version` on. Set the Events to stop."""

        def copy_changed(kind: str, body: dict[str, Any]) -> None:
            metrics.WATCH_EVENTS.labels("copy").inc()
            watching.hand_over(loop, self.set_copy, body, kind == "DELETED")

        def secret_changed(_: str, obj: dict[str, Any]) -> None:
            metrics.WATCH_EVENTS.labels("secret").inc()
            watching.hand_over(loop, self.secret_changed, obj["metadata"])

        return [
            watching.start(
                "reconciler-copies",
                self.core,
                paths.SECRETS,
                listed=lambda items: watching.hand_over(loop, self.copies_listed, items),
                changed=copy_changed,
                label_selector=naming.MANAGED_SELECTOR,
                version=version,
            ),
            watching.start(
                "reconciler-secrets",
                self.core,
                paths.SECRETS,
                listed=lambda _: watching.hand_over(loop, self.secrets_listed),
                changed=secret_changed,
                metadata_only=True,
                version=version,
            ),
        ]

    def _list(self, plural: str) -> list[dict[str, Any]]:
        return watching.list_objects(self.core, paths.custom(plural))[0]

    def set_grant(self, body: Mapping[str, Any], deleted: bool) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        ref: Ref = (meta["namespace"], meta["name"])
        self._touch("grant", ref)
        old = self.grant_meta.get(ref)
        if not deleted and old is not None and self._seen(old, meta):
            old.status = body.get("status")  # our own status write, coming back
            return
        before = self.world.grant(*ref)
        if before is not None:
            self._mark([self.world.pair_of(before.namespace, before.secret_name)])
        if deleted:
            self.world.remove_grant(*ref)
            self.grant_meta.pop(ref, None)
            return
        self.grant_meta[ref] = _Meta.of(body)
        grant = desired.GrantView(ref[0], ref[1], spec["secretName"], spec["user"])
        self.world.put_grant(grant)
        self._mark([self.world.pair_of(ref[0], grant.secret_name)])

    def set_copy(self, body: Mapping[str, Any], deleted: bool) -> None:
        """One of our copies, to notice drift. A copy that loses our label is DELETED for a
        label-selected watch, and forgotten: if the name is still wanted, creating it will
        find it held by someone else."""
        meta = body["metadata"]
        ref: Ref = (meta["namespace"], meta["name"])
        self._touch("secret", ref)
        if not deleted and self.versions.get(ref) == meta["resourceVersion"]:
            return  # our own write, coming back
        # The pair it was a copy of, and the one its labels now name (someone may edit them).
        cached = self.copies.get(ref)
        for labels in (cached.labels if cached else {}, meta.get("labels") or {}):
            owner, key = labels.get(naming.OWNER_LABEL), labels.get(naming.KEY_LABEL)
            if owner and key:
                self.queue.add(OwnerKey(owner, key))
        if deleted:
            self._forget(ref)
        else:
            data = {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
            self._remember(
                ActualSecret.of(*ref, meta.get("labels"), meta.get("annotations"), data),
                meta["resourceVersion"],
            )

    def secret_changed(self, meta: Mapping[str, Any]) -> None:
        """Any Secret changed (metadata only): a valueFrom source, or a Secret of someone
        else's holding a copy's name, whose deletion lets the copy be created at last."""
        ref: Ref = (meta["namespace"], meta["name"])
        if (waiting := self.collisions.get(ref)) is not None:
            self.queue.add(waiting)
        self._mark_readers([ref])

    def _mark_readers(self, sources: Iterable[Ref]) -> None:
        pair_of = self.world.pair_of
        self._mark(pair_of(*reader) for ref in sources for reader in self.sources.get(ref, ()))

    def _remember(self, copy: ActualSecret, version: str) -> None:
        ref = (copy.namespace, copy.name)
        self._forget(ref)
        self.copies[ref] = copy
        self.versions[ref] = version
        owner, key = copy.labels.get(naming.OWNER_LABEL), copy.labels.get(naming.KEY_LABEL)
        if owner and key:
            self.by_pair.setdefault(OwnerKey(owner, key), set()).add(ref)

    def _forget(self, ref: Ref) -> None:
        copy = self.copies.pop(ref, None)
        self.versions.pop(ref, None)
        if copy is not None:
            pair = OwnerKey(
                copy.labels.get(naming.OWNER_LABEL, ""), copy.labels.get(naming.KEY_LABEL, "")
            )
            refs = self.by_pair.get(pair, set())
            refs.discard(ref)
            if not refs:
                self.by_pair.pop(pair, None)

    def everything(self) -> set[OwnerKey]:
        """Every pair the caches know of, including ones only a stale copy still names."""
        pair_of = self.world.pair_of
        pairs = {p for s in self.world.all_secrets() if (p := pair_of(s.namespace, s.key))}
        pairs |= {p for g in self.world.all_grants() if (p := pair_of(g.namespace, g.secret_name))}
        return pairs | self.by_pair.keys()

    # -- the workers ----------------------------------------------------------------------

    async def work(self) -> None:
        """Brings copies in sync, pair after pair; a pair in sync goes on to `report`."""
        while True:
            pair = await self.queue.get()
            ok = await self._attempt("copies", self.reconcile, pair)
            waited = self.queue.done(pair, ok)
            # Once its copies are in sync; or now, if the apiserver refused some: the status
            # tells where and why while the queue retries.
            if (ok and not self.queue.pending(pair)) or pair in self.refused:
                self.reports.add(pair)
            if waited is not None:
                metrics.SYNC_SECONDS.observe(waited)

    async def report(self) -> None:
        """Writes the statuses (and Events) of pairs whose copies are in sync, or that wait for
        a retry of copies the apiserver refused. A pair back in the copies' queue is skipped:
        its status is written after it."""
        while True:
            pair = await self.reports.get()
            skip = self.queue.busy(pair) or (self.queue.pending(pair) and pair not in self.refused)
            ok = skip or await self._attempt("status", self.write_status, pair)
            self.reports.done(pair, ok)

    async def _attempt(
        self, kind: str, step: Callable[[OwnerKey], Awaitable[None]], pair: OwnerKey
    ) -> bool:
        """One step for one pair; a failure is logged and counted, and the queue retries it."""
        started = time.monotonic()
        try:
            await step(pair)
        except ApiException as error:
            metrics.RECONCILE_ERRORS.labels(kind).inc()
            logger.warning(
                "%s of %s/%s failed: HTTP %s %s; retrying",
                kind,
                pair.owner,
                pair.key,
                error.status,
                error.reason,
            )
        except Exception:
            metrics.RECONCILE_ERRORS.labels(kind).inc()
            logger.exception("%s of %s/%s failed; retrying", kind, pair.owner, pair.key)
        else:
            return True
        finally:
            metrics.RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)
        return False

    async def reconcile(self, pair: OwnerKey) -> None:
        """Compute, diff and apply the copies of one (owner, key).

        The caches are read and written on the event loop only, where the watch events change
        them; the threads make API calls with what they are handed, and hand back what they did.
        """
        await self._resolve(pair)
        want = desired.compute(self.world, self.settings.cluster_name, [pair])
        plan = desired.diff(want, [self.copies[ref] for ref in self.by_pair.get(pair, ())])
        touched = [(c.namespace, c.name) for c in plan.updates] + [
            (c.namespace, c.name) for c in plan.deletes
        ]
        versions = {ref: self.versions[ref] for ref in touched if ref in self.versions}
        outcome = await asyncio.to_thread(self._apply, plan, versions)
        for ref in self._collisions_of(pair):
            del self.collisions[ref]
        for ref in outcome.collisions:
            self.collisions[ref] = pair
        self.refused.pop(pair, None)
        if outcome.refused:
            self.refused[pair] = {namespace: said for (namespace, _), said in outcome.refused}
        if not self.dry_run:  # a dry run changed nothing: the caches still say what exists
            for copy, version in outcome.written:
                ref = (copy.namespace, copy.name)
                if self.versions.get(ref) in (versions.get(ref), version):
                    self._remember(ActualSecret.of_copy(copy), version)
                # else someone changed it after our write, and their event is in the cache
                # (the pair is dirty again): keep theirs, the next round compares with it.
            for ref in outcome.deleted:
                self._forget(ref)
        if plan.creates or plan.updates or plan.deletes:
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

    async def write_status(self, pair: OwnerKey) -> None:
        """The statuses of the pair's UserSecrets and grants, from the world as it is now."""
        want = desired.compute(self.world, self.settings.cluster_name, [pair])
        collisions = sorted(ns for ns, _ in self._collisions_of(pair))
        writes = self._status_writes(want, collisions, self.refused.get(pair, {}))
        if writes and not self.dry_run:
            await asyncio.to_thread(self._write_statuses, writes)
            for write in writes:
                write.meta.status = {**write.meta.status, **write.status}

    def _collisions_of(self, pair: OwnerKey) -> list[Ref]:
        return [ref for ref, waiting in self.collisions.items() if waiting == pair]

    async def _resolve(self, pair: OwnerKey) -> None:
        """Reads the valueFrom sources of the pair's UserSecrets, here rather than in the event
        handlers: read after the source is registered, no change is missed, and a failed read
        is retried with the pair. Nothing is made of a secret in a namespace without a user, so
        its source is never read."""
        if pair.owner == desired.NO_OWNER:
            return
        for namespace in self.world.namespaces_of(pair.owner):
            meta = self.secret_meta.get((namespace, pair.key))
            if meta is None or meta.value_from is None:
                continue
            value = await asyncio.to_thread(self.read_source, namespace, meta.value_from)
            view = self.world.secret(namespace, pair.key)
            if view is not None and view.value != value:
                self.world.put_secret(dataclasses.replace(view, value=value))

    def _apply(self, plan: desired.Plan, versions: dict[Ref, str]) -> _Outcome:
        outcome = _Outcome()
        for copy in plan.creates:
            with outcome.trying((copy.namespace, copy.name)):
                self._create(copy, outcome)
        for copy in plan.updates:
            with outcome.trying((copy.namespace, copy.name)):
                self._update(copy, versions.get((copy.namespace, copy.name)), outcome)
        for stale in plan.deletes:  # not a place the secret is meant to be: nothing to tell
            with outcome.trying((stale.namespace, stale.name), told=False):
                self._delete(stale, versions.get((stale.namespace, stale.name)), outcome)
        return outcome

    def _body(self, copy: DesiredCopy) -> dict[str, Any]:
        return {
            "metadata": {
                "name": copy.name,
                "labels": dict(copy.labels),
                "annotations": dict(copy.annotations),
            },
            "type": "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in copy.data.items()},
        }

    def _query(self) -> dict[str, str]:
        """Server-side dry run when asked."""
        return {"dryRun": "All"} if self.dry_run else {}

    def _create(self, copy: DesiredCopy, outcome: _Outcome) -> None:
        """Creates the copy, unless a Secret we do not manage has its name: then, a collision."""
        ref = (copy.namespace, copy.name)
        try:
            created = self.core.json(
                "POST",
                paths.secrets_in(copy.namespace),
                body=self._body(copy),
                query=self._query(),
            )
        except ApiException as error:
            if _namespace_terminating(error):
                # Nothing can be created there any more, and the namespace is going away: it
                # must not hold up this secret's other namespaces, nor its status.
                logger.debug("not creating %s/%s: namespace terminating", *ref)
                return
            if error.status != 409:
                raise
            self._rewrite(copy, outcome)
            return
        outcome.written.append((copy, created["metadata"]["resourceVersion"]))

    def _update(
        self, copy: DesiredCopy, version: str | None, outcome: _Outcome, retry: bool = True
    ) -> None:
        body = self._body(copy)
        body["metadata"]["resourceVersion"] = version  # optimistic: a conflict retries
        try:
            updated = self.core.json(
                "PATCH",
                f"{paths.secrets_in(copy.namespace)}/{copy.name}",
                body=body,
                content_type=MERGE_PATCH,
                query=self._query(),
            )
        except ApiException as error:
            if error.status != 409 or not retry:
                raise
            # Changed since the version we hold (our cache can lag behind the watch, e.g. when
            # someone edits the copy while we write it): write on top of what is there now.
            self._rewrite(copy, outcome)
            return
        outcome.written.append((copy, updated["metadata"]["resourceVersion"]))

    def _rewrite(self, copy: DesiredCopy, outcome: _Outcome) -> None:
        """Writes `copy` over the Secret of that name as it is now, unless we do not manage it:
        then it is a collision, left alone."""
        path = f"{paths.secrets_in(copy.namespace)}/{copy.name}"
        existing = self.core.json("GET", path)["metadata"]
        if (existing.get("labels") or {}).get(naming.MANAGED_BY_LABEL) != naming.MANAGED_BY:
            outcome.collisions.append((copy.namespace, copy.name))
            return
        self._update(copy, existing["resourceVersion"], outcome, retry=False)

    def _delete(self, stale: ActualSecret, version: str | None, outcome: _Outcome) -> None:
        options = {"preconditions": {"resourceVersion": version}} if version else {}
        try:
            self.core.call(
                "DELETE",
                f"{paths.secrets_in(stale.namespace)}/{stale.name}",
                body=options,
                query=self._query(),
            )
        except ApiException as error:
            if error.status != 404:
                raise
        outcome.deleted.append((stale.namespace, stale.name))

    # -- status ---------------------------------------------------------------------------

    def _no_owner_hint(self) -> str:
        return f"a system namespace, or one without the '{self.settings.user_label}' label"

    def _status_writes(
        self, want: desired.Desired, collisions: list[str], refused: Mapping[str, str]
    ) -> list[_StatusWrite]:
        """The statuses that differ from what the objects say, each with the Event it should
        post (see `_changed`). `refused`: namespace -> why its copy could not be written."""
        now = datetime.datetime.now(datetime.UTC)
        writes: list[_StatusWrite] = []

        def add(plural: str, ref: Ref, meta: _Meta, build: Callable[..., dict[str, Any]]) -> None:
            current = meta.status  # parsed once
            new = build(generation=meta.generation, current=current, now=now)
            if not status.same(current, new):
                writes.append(_StatusWrite(plural, ref, meta, new, _changed(current, new)))

        hint = self._no_owner_hint()
        for ref, facts in want.secrets.items():
            if (meta := self.secret_meta.get(ref)) is not None:
                add(
                    "usersecrets",
                    ref,
                    meta,
                    functools.partial(
                        status.secret_status,
                        facts,
                        value_from=meta.value_from,
                        collisions=collisions if facts.namespaces else [],
                        failures=_within(refused, facts.namespaces),
                        no_owner_hint=hint,
                    ),
                )
        for ref, grant_facts in want.grants.items():
            if (meta := self.grant_meta.get(ref)) is not None:
                add(
                    "secretgrants",
                    ref,
                    meta,
                    functools.partial(
                        status.grant_status,
                        grant_facts,
                        failures=_within(refused, grant_facts.namespaces),
                        no_owner_hint=hint,
                    ),
                )
        return writes

    def _write_statuses(self, writes: list[_StatusWrite]) -> None:
        for write in writes:
            namespace, name = write.ref
            try:
                self.core.call(
                    "PATCH",
                    f"{paths.custom(write.plural, namespace)}/{name}/status",
                    body={"status": write.status},
                    content_type=MERGE_PATCH,
                )
            except ApiException as error:
                if error.status == 404:  # deleted meanwhile: nothing to report on
                    continue
                raise
            if write.changed is not None:
                self._event(write.plural, write.ref, write.meta.uid, write.changed)

    def _event(self, plural: str, ref: Ref, uid: str, ready: Condition) -> None:
        """Tells the user what changed, on the object, as `kubectl describe` shows it."""
        kind = "UserSecret" if plural == "usersecrets" else "SecretGrant"
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{ref[1]}."},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": kind,
                "name": ref[1],
                "namespace": ref[0],
                "uid": uid,
            },
            "reason": ready.reason,
            "message": ready.message,
            "type": "Normal" if ready.status == "True" else "Warning",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "usersecrets"},
        }
        try:
            self.core.call("POST", paths.events_in(ref[0]), body=event)
        except ApiException as error:  # an Event is best effort; the status already says it
            logger.warning("could not post an Event on %s/%s: %s", ref[0], ref[1], error.reason)
