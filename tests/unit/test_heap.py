from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from usersecrets import heap


@pytest.fixture(autouse=True)
def collector() -> Iterator[None]:
    """Each test starts with the collector on and nothing frozen, and leaves it so."""
    gc.unfreeze()
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()


def test_the_collector_is_off_while_loading_and_what_was_loaded_is_then_frozen() -> None:
    with heap.loading():
        assert not gc.isenabled()
        loaded = [{"metadata": {"name": f"k{i}"}} for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded) * 2  # each dict and its metadata


def test_the_collector_stays_off_until_the_last_of_two_loadings_ends() -> None:
    first_started, second_ended = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with heap.loading():
            first_started.wait(5)
        second_ended.set()

    thread = threading.Thread(target=other)
    with heap.loading():
        thread.start()
        first_started.set()
        second_ended.wait(5)
        seen.append(gc.isenabled())
    thread.join()
    assert seen == [False]
    assert gc.isenabled()


def test_a_loading_that_fails_still_turns_the_collector_back_on() -> None:
    with pytest.raises(RuntimeError), heap.loading():
        raise RuntimeError("the list failed")
    assert gc.isenabled()


class Probe:
    pass


def test_a_frozen_object_is_still_freed_when_nothing_refers_to_it() -> None:
    with heap.loading():
        probe = Probe()
    freed = threading.Event()
    weakref.finalize(probe, freed.set)
    del probe
    assert freed.is_set()
