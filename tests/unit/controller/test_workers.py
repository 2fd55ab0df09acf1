"""Copies first, statuses after; a refusal is reported while the copies wait for their retry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from samples import Growth
from usersecrets.controller.workers import Queues, copy_worker, report_worker
from usersecrets.kube.client import ApiError
from usersecrets.rules.desired import OwnerKey

A, B = OwnerKey("alice", "a"), OwnerKey("alice", "b")


async def until(done: Callable[[], bool], tasks: list[asyncio.Task[None]]) -> None:
    for _ in range(300):
        if done():
            break
        await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()


def recorder(calls: list[OwnerKey]) -> Callable[[OwnerKey], Awaitable[None]]:
    async def step(pair: OwnerKey) -> None:
        calls.append(pair)

    return step


def test_a_status_waits_for_its_copies() -> None:
    """A pair goes to the status queue only once its copies are in sync, and a status is not
    written while the pair is back in the copies' queue."""

    async def scenario() -> list[tuple[str, OwnerKey]]:
        queues, done = Queues(), []
        refused: dict[OwnerKey, dict[str, str]] = {}

        def step(kind: str) -> Callable[[OwnerKey], Awaitable[None]]:
            async def record(pair: OwnerKey) -> None:
                done.append((kind, pair))

            return record

        queues.copies.add(A)
        queues.reports.add(B)
        queues.copies.add(B)  # B changed again before its status was written
        workers = [asyncio.create_task(report_worker(queues, step("status"), refused))]
        await asyncio.sleep(0.01)
        assert done == []  # B is skipped: its copies are not in sync yet
        workers.append(asyncio.create_task(copy_worker(queues, step("copies"), refused)))
        await until(lambda: len(queues) == 0, workers)
        return done

    assert asyncio.run(scenario()) == [
        ("copies", A),
        ("copies", B),
        ("status", A),
        ("status", B),
    ]


def test_refused_copies_are_reported_while_the_pair_waits_for_its_retry() -> None:
    """The status tells of a refusal at once, not after the copies are in sync (they may
    never be); the retry that succeeds reports again, without it."""

    async def scenario() -> tuple[list[OwnerKey], list[dict[str, str]]]:
        queues, attempts, reported = Queues(), [], []
        refused: dict[OwnerKey, dict[str, str]] = {}

        async def copies(pair: OwnerKey) -> None:
            attempts.append(pair)
            refused.pop(pair, None)
            if len(attempts) == 1:
                refused[pair] = {"full": "HTTP 403 Forbidden"}
                raise ApiError(403, "Forbidden")

        async def statuses(pair: OwnerKey) -> None:
            reported.append(dict(refused.get(pair, {})))

        queues.copies.add(A)
        workers = [
            asyncio.create_task(copy_worker(queues, copies, refused)),
            asyncio.create_task(report_worker(queues, statuses, refused)),
        ]
        await until(lambda: len(reported) == 2, workers)
        return attempts, reported

    errors = Growth("usersecrets_reconcile_errors_total")
    durations = Growth("usersecrets_reconcile_duration_seconds_count")
    synced = Growth("usersecrets_sync_duration_seconds_count")
    attempts, reported = asyncio.run(scenario())
    assert attempts == [A, A]
    assert reported == [{"full": "HTTP 403 Forbidden"}, {}]
    assert errors() == {'{kind="copies"}': 1.0}
    assert durations() == {'{kind="copies"}': 2.0, '{kind="status"}': 2.0}
    assert synced() == {"{}": 1.0}  # once in sync, not when refused


def test_in_a_burst_a_status_waits_while_other_copies_wait() -> None:
    async def scenario() -> list[OwnerKey]:
        queues, reported = Queues(), list[OwnerKey]()
        queues.copies.add(A)
        queues.reports.add(B)
        workers = [asyncio.create_task(report_worker(queues, recorder(reported), {}))]
        await asyncio.sleep(0.05)
        assert reported == []  # B's copies are in sync, but A's wait
        workers.append(asyncio.create_task(copy_worker(queues, recorder([]), {})))
        await until(lambda: len(queues) == 0, workers)
        return reported

    assert asyncio.run(scenario()) == [B, A]


def test_a_status_waits_for_other_copies_no_longer_than_its_patience() -> None:
    async def scenario() -> list[OwnerKey]:
        queues, reported = Queues(), list[OwnerKey]()
        queues.copies.add(A)  # and no copy worker takes it
        queues.reports.add(B)
        worker = asyncio.create_task(report_worker(queues, recorder(reported), {}, 0.05))
        await until(lambda: reported == [B], [worker])
        return reported

    assert asyncio.run(scenario()) == [B]
