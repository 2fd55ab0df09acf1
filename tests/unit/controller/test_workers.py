"""Copies first, statuses after; a refusal is reported while the copies wait for their retry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

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

    async def scenario() -> tuple[list[OwnerKey], list[OwnerKey]]:
        queues, applied, reported = Queues(), [], []
        refused: dict[OwnerKey, dict[str, str]] = {}
        queues.copies.add(A)
        queues.reports.add(B)
        queues.copies.add(B)  # B changed again before its status was written
        workers = [asyncio.create_task(report_worker(queues, recorder(reported), refused))]
        await asyncio.sleep(0.01)
        assert reported == []  # B is skipped: its copies are not in sync yet
        workers.append(asyncio.create_task(copy_worker(queues, recorder(applied), refused)))
        await until(lambda: len(queues) == 0, workers)
        return applied, reported

    applied, reported = asyncio.run(scenario())
    assert applied == [A, B]
    assert reported == [A, B]


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

    def errors(kind: str) -> float:
        found = REGISTRY.get_sample_value("usersecrets_reconcile_errors_total", {"kind": kind})
        return found or 0.0

    before = errors("copies"), errors("status")
    attempts, reported = asyncio.run(scenario())
    assert (errors("copies"), errors("status")) == (before[0] + 1, before[1])
    assert attempts == [A, A]
    assert reported == [{"full": "HTTP 403 Forbidden"}, {}]
