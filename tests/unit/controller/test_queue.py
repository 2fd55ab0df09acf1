"""The work queue: deduplication, a key dirtied while in work, backoff after a failure."""

from __future__ import annotations

import asyncio

from usersecrets.controller.queue import WorkQueue
from usersecrets.rules.desired import OwnerKey

A, B = OwnerKey("alice", "a"), OwnerKey("alice", "b")


def test_dedup_dirty_and_retry() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add_all([A, A, B])
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
        assert not queue.busy(A)
        assert not queue.pending(B)
        assert await asyncio.wait_for(queue.get(), timeout=2) == A
        assert queue.busy(A)  # in work
        assert queue.done(A, ok=True) is not None
        assert not queue.pending(A)  # a success forgets the failures

    asyncio.run(scenario())


def test_the_wait_is_measured_from_the_first_time_a_key_was_dirtied() -> None:
    async def scenario() -> float | None:
        queue = WorkQueue()
        queue.add(A)
        await asyncio.sleep(0.05)
        queue.add(A)
        await queue.get()
        return queue.done(A, ok=True)

    waited = asyncio.run(scenario())
    assert waited is not None
    assert waited >= 0.05


def test_drained_returns_once_no_key_waits_or_after_its_patience() -> None:
    async def scenario() -> tuple[float, float, float]:
        queue = WorkQueue()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await queue.drained(5)  # nothing waits
        empty = loop.time() - started
        queue.add(A)
        started = loop.time()
        await queue.drained(0.05)  # A waits, and nobody takes it
        patience = loop.time() - started
        loop.call_later(0.05, lambda: asyncio.ensure_future(queue.get()))
        started = loop.time()
        await queue.drained(5)
        taken = loop.time() - started
        return empty, patience, taken

    empty, patience, taken = asyncio.run(scenario())
    assert empty < 0.01
    assert 0.05 <= patience < 1
    assert 0.04 <= taken < 1
