"""The work queues, relists that repair what watches cannot tell, and write conflicts."""

from __future__ import annotations

import asyncio
import datetime
import threading
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from usersecrets.controller.reconciler import Reconciler, WorkQueue, _changed, _Lists, _Outcome
from usersecrets.kube import paths, watching
from usersecrets.rules import conditions, desired
from usersecrets.rules.desired import DesiredCopy, OwnerKey, SecretView, World, compute
from usersecrets.rules.naming import MANAGED_SELECTOR as MANAGED
from usersecrets.settings import Settings

A, B = OwnerKey("alice", "a"), OwnerKey("alice", "b")


def test_dedup_dirty_and_retry() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add(A)
        queue.add(A)
        queue.add(B)
        assert len(queue) == 2
        assert await queue.get() == A
        queue.add(A)  # dirtied while in work: done() puts it back, once
        assert queue.done(A, ok=True) is not None
        assert await queue.get() == B
        assert await queue.get() == A
        assert queue.done(B, ok=True) is not None
        assert queue.done(A, ok=False) is None  # failed: comes back after a backoff
        assert len(queue) == 0
        assert queue.pending(A)  # waiting to be retried
        assert not queue.pending(B)
        assert await asyncio.wait_for(queue.get(), timeout=2) == A
        assert queue.pending(A)  # in work

    asyncio.run(scenario())


def test_a_status_waits_for_its_copies() -> None:
    """Copies first: a pair goes to the status queue only once its copies are in sync, and a
    status is not written while the pair is back in the copies' queue."""

    async def scenario() -> None:
        reconciler = Reconciler(client.ApiClient(), Settings())
        applied: list[OwnerKey] = []
        reported: list[OwnerKey] = []

        async def reconcile(pair: OwnerKey) -> None:
            applied.append(pair)

        async def write_status(pair: OwnerKey) -> None:
            reported.append(pair)

        reconciler.reconcile = reconcile  # type: ignore[method-assign]
        reconciler.write_status = write_status  # type: ignore[method-assign]
        reconciler.queue.add(A)
        reconciler.reports.add(B)
        reconciler.queue.add(B)  # B changed again before its status was written
        workers = [asyncio.create_task(reconciler.report())]
        await asyncio.sleep(0.01)
        assert reported == []  # B is skipped: its copies are not in sync yet
        workers.append(asyncio.create_task(reconciler.work()))
        for _ in range(100):
            if len(reconciler.queue) + len(reconciler.reports) == 0:
                break
            await asyncio.sleep(0.01)
        for worker in workers:
            worker.cancel()
        assert applied == [A, B]
        assert reported == [A, B]

    asyncio.run(scenario())


def test_refused_copies_are_reported_while_the_pair_waits_for_its_retry() -> None:
    """The status tells of a refusal at once, not after the copies are in sync (they may
    never be); the retry that succeeds reports again, without it."""

    async def scenario() -> None:
        reconciler = Reconciler(client.ApiClient(), Settings())
        attempts: list[OwnerKey] = []
        reported: list[dict[str, str]] = []

        async def reconcile(pair: OwnerKey) -> None:
            attempts.append(pair)
            reconciler.refused.pop(pair, None)
            if len(attempts) == 1:
                reconciler.refused[pair] = {"full": "HTTP 403 Forbidden"}
                raise ApiException(status=403, reason="Forbidden")

        async def write_status(pair: OwnerKey) -> None:
            reported.append(dict(reconciler.refused.get(pair, {})))

        reconciler.reconcile = reconcile  # type: ignore[method-assign]
        reconciler.write_status = write_status  # type: ignore[method-assign]
        reconciler.queue.add(A)
        workers = [
            asyncio.create_task(reconciler.work()),
            asyncio.create_task(reconciler.report()),
        ]
        for _ in range(300):
            if len(reported) == 2:
                break
            await asyncio.sleep(0.01)
        for worker in workers:
            worker.cancel()
        assert attempts == [A, A]
        assert reported == [{"full": "HTTP 403 Forbidden"}, {}]

    asyncio.run(scenario())


def _grant(namespace: str, name: str, secret: str, user: str) -> dict[str, object]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": name, "generation": 1},
        "spec": {"secretName": secret, "user": user},
    }


def test_a_relist_forgets_what_was_deleted_unseen_but_not_what_came_back() -> None:
    """A watch that restarts from a new list never tells of deletions while it was away."""

    async def scenario() -> None:
        reconciler = Reconciler(client.ApiClient(), Settings())
        reconciler.set_namespace("alice", {"usersecrets.io/user": "alice"}, deleted=False)
        reconciler.set_namespace("bob", {"usersecrets.io/user": "bob"}, deleted=False)
        reconciler.set_grant(_grant("alice", "revoked", "db", "bob"), deleted=False)
        reconciler.set_grant(_grant("alice", "kept", "db", "carol"), deleted=False)

        def list_all() -> _Lists:
            # Listed after "revoked" was deleted; "late" arrives by an event meanwhile.
            reconciler.set_grant(_grant("alice", "late", "db", "dave"), deleted=False)
            return _Lists(
                namespaces={"alice": {"usersecrets.io/user": "alice"}},
                copies=[],
                grants=[_grant("alice", "kept", "db", "carol")],
                usersecrets=[],
                secrets_version="7",
            )

        reconciler.list_all = list_all  # type: ignore[method-assign]
        while len(reconciler.queue):  # as if the workers had done everything so far
            reconciler.queue.done(await reconciler.queue.get(), ok=True)
        assert await reconciler.relist() == "7"
        assert set(reconciler.grant_meta) == {("alice", "kept"), ("alice", "late")}
        assert reconciler.world.namespaces() == {"alice"}  # bob's namespace went unseen too
        assert OwnerKey("alice", "db") in reconciler.queue.queued

    asyncio.run(scenario())


class _Secrets:
    """KubeApi stand-in: a Secret at version "2" whose labels the test chooses."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.patched: list[str | None] = []

    def json(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        if method == "GET":
            return {"metadata": {"labels": self.labels, "resourceVersion": "2"}}
        assert method == "PATCH"
        version = body["metadata"]["resourceVersion"]
        self.patched.append(version)
        if version != "2":
            raise ApiException(status=409, reason="Conflict")
        return {"metadata": {"resourceVersion": "3"}}


def _copy() -> DesiredCopy:
    world = World([SecretView("alice", "db", "", b"v")], [], {"alice": "alice"})
    return next(iter(compute(world, "c", [A._replace(key="db")]).copies.values()))


def test_a_conflict_writes_over_the_current_version() -> None:
    """Our cached version can lag behind the watch: a 409 reads the Secret and writes again."""
    copy = _copy()
    reconciler = Reconciler(client.ApiClient(), Settings())
    fake = _Secrets(dict(copy.labels))
    reconciler.core = fake  # type: ignore[assignment]
    outcome = _Outcome()
    reconciler._update(copy, "1", outcome)
    assert fake.patched == ["1", "2"]
    assert outcome.written == [(copy, "3")]


def test_a_conflict_with_a_secret_no_longer_ours_is_a_collision() -> None:
    copy = _copy()
    reconciler = Reconciler(client.ApiClient(), Settings())
    fake = _Secrets({"app": "theirs"})
    reconciler.core = fake  # type: ignore[assignment]
    outcome = _Outcome()
    reconciler._update(copy, "1", outcome)
    assert fake.patched == ["1"]
    assert outcome.collisions == [(copy.namespace, copy.name)]
    assert outcome.written == []


class _Failing:
    """KubeApi stand-in whose apiserver fails every Secret create in some namespaces."""

    def __init__(self, failing: dict[str, int]) -> None:
        self.failing: dict[str, int] = failing
        self.created: list[str] = []

    def json(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        assert method == "POST"
        for namespace, code in self.failing.items():
            if path == paths.secrets_in(namespace):
                error = ApiException(status=code, reason="Refused")
                error.body = '{"message": "exceeded quota: q"}'
                raise error
        self.created.append(path)
        return {"metadata": {"resourceVersion": "1"}}


def test_a_refused_copy_does_not_keep_the_others_from_theirs() -> None:
    """A 403 is told in the statuses; a 429 is retried quietly; the others are written."""
    namespaces = {"home": "alice", "full": "alice", "slow": "alice", "x": "alice"}
    world = World([SecretView("home", "db", "", b"v")], [], namespaces)
    plan = desired.diff(compute(world, "c", [A._replace(key="db")]), [])
    assert [c.namespace for c in plan.creates] == ["full", "home", "slow", "x"]
    reconciler = Reconciler(client.ApiClient(), Settings())
    fake = _Failing({"full": 403, "slow": 429})
    reconciler.core = fake  # type: ignore[assignment]
    outcome = reconciler._apply(plan, {})
    assert fake.created == [paths.secrets_in("home"), paths.secrets_in("x")]
    assert [copy.namespace for copy, _ in outcome.written] == ["home", "x"]
    assert outcome.refused == [
        (("full", plan.creates[0].name), "HTTP 403 Refused: exceeded quota: q")
    ]
    assert [error.status for error in outcome.errors] == [403, 429]


def _copy_body(copy: DesiredCopy, version: str) -> dict[str, Any]:
    meta = {"namespace": copy.namespace, "name": copy.name, "resourceVersion": version}
    return {"metadata": {**meta, "labels": dict(copy.labels)}, "data": {"value": "dg=="}}


def test_a_relisted_copies_watch_forgets_what_was_deleted_meanwhile() -> None:
    async def scenario() -> None:
        reconciler = Reconciler(client.ApiClient(), Settings())
        copy = _copy()
        reconciler.set_copy(_copy_body(copy, "1"), deleted=False)
        assert (copy.namespace, copy.name) in reconciler.copies
        reconciler.copies_listed([])
        assert reconciler.copies == {}
        assert reconciler.queue.pending(OwnerKey("alice", "db"))

    asyncio.run(scenario())


def test_a_relisted_secrets_watch_rereads_sources_and_retries_collisions() -> None:
    async def scenario() -> None:
        reconciler = Reconciler(client.ApiClient(), Settings())
        reconciler.set_namespace("alice", {"usersecrets.io/user": "alice"}, deleted=False)
        reconciler.sources[("alice", "src")] = {("alice", "from-src")}
        reconciler.collisions[("bob", "usec-x")] = B
        reconciler.secrets_listed()
        assert reconciler.queue.pending(OwnerKey("alice", "from-src"))
        assert reconciler.queue.pending(B)

    asyncio.run(scenario())


def test_a_relist_keeps_what_an_event_changed_while_it_listed() -> None:
    """The list may be older than an event that came during it: the event wins."""

    async def scenario() -> None:
        reconciler = Reconciler(client.ApiClient(), Settings())
        old = _grant("alice", "g", "db", "bob")
        new = {
            **old,
            "metadata": {**old["metadata"], "generation": 2},
            "spec": {"secretName": "db", "user": "carol"},
        }

        def list_all() -> _Lists:
            reconciler.set_grant(new, deleted=False)  # an event while the list is in flight
            return _Lists({}, [], [old], [], secrets_version="1")

        reconciler.list_all = list_all  # type: ignore[method-assign]
        await reconciler.relist()
        view = reconciler.world.grant("alice", "g")
        assert view is not None
        assert view.user == "carol"

    asyncio.run(scenario())


def test_the_secret_watches_ask_for_copies_in_full_and_the_rest_as_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: dict[str, dict[str, Any]] = {}

    def start(name: str, core: Any, path: str, **kwargs: Any) -> threading.Event:
        started[name] = {"path": path, **kwargs}
        return threading.Event()

    monkeypatch.setattr(watching, "start", start)
    reconciler = Reconciler(client.ApiClient(), Settings())
    reconciler.follow_secrets(asyncio.new_event_loop(), "42")
    copies, secrets = started["reconciler-copies"], started["reconciler-secrets"]
    assert (copies["label_selector"], copies.get("metadata_only", False)) == (MANAGED, False)
    assert (secrets.get("label_selector"), secrets["metadata_only"]) == (None, True)
    assert copies["version"] == secrets["version"] == "42"
    assert copies["path"] == secrets["path"] == paths.SECRETS


def _condition(ok: bool, reason: str) -> dict[str, Any]:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return {"conditions": [conditions.ready(ok, reason, "m", 1, now).to_json()]}


def test_events_tell_of_problems_and_changes_only() -> None:
    ready, missing = _condition(True, "Materialized"), _condition(False, "SourceMissing")
    assert _changed({}, ready) is None  # working from the start: the status says it
    first = _changed({}, missing)
    assert first is not None
    assert first.reason == "SourceMissing"
    recovered = _changed(missing, ready)
    assert recovered is not None
    assert recovered.reason == "Materialized"
    assert _changed(ready, ready) is None
