from __future__ import annotations

import gc
import threading
import weakref

import pytest

from usersecrets import heap


def tracked(obj: object) -> bool:
    """Whether the collector would walk `obj` (frozen objects are out of its lists)."""
    return any(o is obj for o in gc.get_objects())


def test_the_collector_is_off_while_loading_and_a_first_load_is_then_frozen() -> None:
    with heap.loading(freeze=True):
        assert not gc.isenabled()
        loaded = [{"metadata": {"name": f"k{i}"}} for i in range(3)]
    assert gc.isenabled()
    assert not tracked(loaded)


def test_a_later_load_is_not_frozen() -> None:
    with heap.loading(freeze=False):
        assert not gc.isenabled()
        loaded = [{"metadata": {"name": "k"}}]
    assert gc.isenabled()
    assert tracked(loaded)


def test_a_load_that_fails_is_not_frozen_and_the_collector_comes_back() -> None:
    loaded: list[dict[str, object]] = []

    def load() -> None:
        with heap.loading(freeze=True):
            loaded.append({"metadata": {"name": "k"}})
            raise RuntimeError("the list failed")

    with pytest.raises(RuntimeError):
        load()
    assert gc.isenabled()
    assert tracked(loaded)


def test_a_collector_turned_off_before_stays_off() -> None:
    gc.disable()
    with heap.loading(freeze=True):
        pass
    assert not gc.isenabled()


def test_the_collector_stays_off_until_the_last_of_two_loadings_ends() -> None:
    first_started, second_ended = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with heap.loading(freeze=True):
            first_started.wait(5)
        second_ended.set()

    thread = threading.Thread(target=other)
    with heap.loading(freeze=False):
        thread.start()
        first_started.set()
        assert second_ended.wait(5)
        seen.append(gc.isenabled())
        loaded = [{"metadata": {"name": "k"}}]
    thread.join()
    assert seen == [False]
    assert gc.isenabled()
    assert not tracked(loaded)  # the other one asked for a freeze, at the end of both


class Probe:
    pass


def test_a_frozen_object_is_still_freed_when_nothing_refers_to_it() -> None:
    with heap.loading(freeze=True):
        probe = Probe()
    assert not tracked(probe)
    freed = threading.Event()
    weakref.finalize(probe, freed.set)
    del probe
    assert freed.is_set()
