from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def collector() -> Iterator[None]:
    """The garbage collector on and nothing frozen, before each test and after it: loading a
    cache (usersecrets.heap) turns the collector off, then freezes what the process holds."""
    gc.unfreeze()
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()
