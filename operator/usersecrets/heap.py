"""The process's caches are loaded without Python's cyclic garbage collector, then frozen.

A restart lists every object into caches that live as long as the process. While they grow,
the collector runs every 700 allocations and, each time the long-lived objects grow by a
quarter, walks all of them: a quarter of the operator's CPU in a restart at 20,000 UserSecrets
(py-spy --native). Once loaded, the next full collection walked the whole cache at once: a
stall of the event loop, and of admissions, of up to half a second at 100,000.

So the collector is off while a cache loads, and what is loaded is then frozen: moved out of
the collector's reach for good. Objects are still freed by their reference counts, frozen or
not; what is lost is only the collection of garbage cycles made while loading (a few, once).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_loading = 0


@contextmanager
def loading() -> Iterator[None]:
    """The collector off until every `loading` (the webhook's caches load in their own
    threads, the leader's on its loop, at the same time) has ended; then a freeze."""
    global _loading
    with _lock:
        _loading += 1
        gc.disable()
    try:
        yield
    finally:
        with _lock:
            _loading -= 1
            if _loading == 0:
                gc.freeze()
                gc.enable()
