"""The controller's work queue: a key waits at most once and is never in two workers at once.

A key dirtied while in work is redone after it; a failure comes back after a backoff. This is
what makes missed, repeated or reordered events harmless: whatever happened, the key is
reconciled again from the state as it is then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from usersecrets.rules.desired import OwnerKey


@dataclass
class WorkQueue:
    queued: set[OwnerKey] = field(default_factory=set)
    active: set[OwnerKey] = field(default_factory=set)
    dirty: set[OwnerKey] = field(default_factory=set)
    since: dict[OwnerKey, float] = field(default_factory=dict)
    failures: dict[OwnerKey, int] = field(default_factory=dict)
    queue: asyncio.Queue[OwnerKey] = field(default_factory=asyncio.Queue)
    #: Set while no key waits to be taken.
    empty: asyncio.Event = field(default_factory=asyncio.Event)
    #: Since when keys have waited without a break, if they do.
    waiting_since: float | None = None

    def __post_init__(self) -> None:
        self.empty.set()

    def add(self, pair: OwnerKey) -> None:
        self.since.setdefault(pair, time.monotonic())
        if pair in self.active:
            self.dirty.add(pair)
        elif pair not in self.queued:
            if not self.queued:
                self.waiting_since = time.monotonic()
                self.empty.clear()
            self.queued.add(pair)
            self.queue.put_nowait(pair)

    def add_all(self, pairs: Iterable[OwnerKey]) -> None:
        for pair in pairs:
            self.add(pair)

    async def get(self) -> OwnerKey:
        pair = await self.queue.get()
        self.queued.discard(pair)
        self.active.add(pair)
        if not self.queued:
            self.waiting_since = None
            self.empty.set()
        return pair

    async def drained(self, patience: float) -> None:
        """Returns once no key waits to be taken, or once keys have waited without a break
        for `patience` seconds: a burst is waited out, a steady stream is not."""
        if self.waiting_since is None:
            return
        left = self.waiting_since + patience - time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.empty.wait(), max(left, 0))

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
