"""The process's caches are loaded without Python's cyclic garbage collector, then frozen.

A restart lists every object into caches that live as long as the process. While they grow,
the collector runs each time 700 more objects are tracked than freed and, each time the
long-lived ones grow by a quarter, walks all of them: a quarter of the operator's CPU in a
restart at 20,000 UserSecrets (py-spy --native). Once loaded, each full collection walks
the whole cache at once, holding the GIL: ~350 ms here for a million tracked objects (260
MiB, about a leader's at 100,000 over three shards), an event loop and admissions stalled.

So the collector is off while a cache loads, and the first complete load of each cache is
then frozen (`gc.freeze`): everything the process holds then is out of the collector's reach
for good. Frozen objects are still freed by their reference counts; what a freeze costs is
the garbage cycles of that moment (and cycles that later form through frozen objects), never
collected. Hence at most one freeze per cache and process (three), never after a failure.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Loadings:
    """The loadings under way in the process (the webhook's caches load in their own
    threads, the leader's on its loop, at the same time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.collecting = True  # the collector's state when the first began
        self.freeze = False  # one that ended complete asked for a freeze

    def begin(self) -> None:
        with self.lock:
            if self.count == 0:
                self.collecting, self.freeze = gc.isenabled(), False
            self.count += 1
            gc.disable()

    def end(self, freeze: bool) -> None:
        with self.lock:
            self.count -= 1
            self.freeze = self.freeze or freeze
            if self.count == 0:
                if self.freeze:
                    gc.freeze()
                if self.collecting:
                    gc.enable()


_loadings = _Loadings()


@contextmanager
def loading(freeze: bool) -> Iterator[None]:
    """The collector off until every loading has ended; then, if one of them completed with
    `freeze` (a cache's first load), a freeze."""
    _loadings.begin()
    complete = False
    try:
        yield
        complete = True
    finally:
        _loadings.end(freeze and complete)
