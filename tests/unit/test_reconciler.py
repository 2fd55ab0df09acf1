"""The work queue: each pair waits once, is never worked on twice at once, and is retried."""

from __future__ import annotations

import asyncio

from usersecrets.desired import OwnerKey
from usersecrets.reconciler import WorkQueue

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
        assert await asyncio.wait_for(queue.get(), timeout=2) == A

    asyncio.run(scenario())
