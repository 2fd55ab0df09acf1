"""kopf's part: what it keeps of the objects it saw."""

from __future__ import annotations

import asyncio

import kopf

from usersecrets.controller import handlers


def test_kopf_keeps_no_memory_of_an_object_after_its_event() -> None:
    memories = handlers._Forgetful()
    body: kopf.RawBody = {"metadata": {"uid": "u1", "namespace": "alice-ns", "name": "db"}}
    memory = asyncio.run(memories.recall(body, memobase=kopf.Memo(controller="c")))
    assert isinstance(memory.memo, kopf.Memo)  # kopf types it as any object (AnyMemo)
    assert memory.memo["controller"] == "c"  # the handlers still get the shared memo
    assert list(memories.iter_all_memories()) == []
