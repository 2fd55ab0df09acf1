"""The work queue, and relists that repair what watches cannot tell."""

from __future__ import annotations

import asyncio

from kubernetes import client

from usersecrets.desired import OwnerKey
from usersecrets.reconciler import Reconciler, WorkQueue, _Lists
from usersecrets.settings import Settings

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


def _grant(namespace: str, name: str, secret: str, user: str) -> dict[str, object]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": name, "generation": 1},
        "spec": {"secretName": secret, "user": user},
    }


def test_a_relist_forgets_what_was_deleted_unseen_but_not_what_came_back() -> None:
    """A watch that restarts from a new list never tells of deletions while it was away."""

    async def scenario() -> None:
        reconciler = Reconciler(client.ApiClient(), Settings())
        reconciler.set_namespace("alice", {"usersecrets.io/user": "alice"}, deleted=False)
        reconciler.set_namespace("bob", {"usersecrets.io/user": "bob"}, deleted=False)
        reconciler.set_grant(_grant("alice", "revoked", "db", "bob"), deleted=False)
        reconciler.set_grant(_grant("alice", "kept", "db", "carol"), deleted=False)

        def list_all() -> _Lists:
            # Listed after "revoked" was deleted; "late" arrives by an event meanwhile.
            reconciler.set_grant(_grant("alice", "late", "db", "dave"), deleted=False)
            return _Lists(
                namespaces={"alice": {"usersecrets.io/user": "alice"}},
                copies=[],
                grants=[_grant("alice", "kept", "db", "carol")],
                usersecrets=[],
            )

        reconciler.list_all = list_all  # type: ignore[method-assign]
        while len(reconciler.queue):  # as if the workers had done everything so far
            reconciler.queue.done(await reconciler.queue.get(), ok=True)
        await reconciler.relist()
        assert set(reconciler.grant_meta) == {("alice", "kept"), ("alice", "late")}
        assert reconciler.world.namespaces() == {"alice"}  # bob's namespace went unseen too
        assert OwnerKey("alice", "db") in reconciler.queue.queued

    asyncio.run(scenario())
