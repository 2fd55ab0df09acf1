"""The controller's wiring: what the Secret watches ask for, and events queue what they dirty."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

from fakes import FakeApi
from usersecrets.controller.run import Controller
from usersecrets.rules.desired import OwnerKey
from usersecrets.settings import Settings


class Watches(FakeApi):
    """Records each watch the controller opens; the connection then drops."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: list[tuple[str, str | None, str | None, str]] = []
        self.both = threading.Event()

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        query, headers = kwargs["query"], kwargs["headers"]
        self.watched.append(
            (path, query.get("labelSelector"), headers.get("Accept"), query["resourceVersion"])
        )
        if len(self.watched) >= 2:
            self.both.set()
        raise ConnectionResetError("dropped")


def test_the_secret_watches_ask_for_copies_in_full_and_the_rest_as_metadata() -> None:
    api = Watches()
    controller = Controller(cast(Any, api), Settings())
    stops = controller.follow_secrets(asyncio.new_event_loop(), "42")
    try:
        assert api.both.wait(5)
    finally:
        for stop in stops:
            stop.set()
    assert sorted(api.watched[:2], key=str) == [
        (
            "/api/v1/secrets",
            "app.kubernetes.io/managed-by!=usersecrets",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "42",
        ),
        ("/api/v1/secrets", "app.kubernetes.io/managed-by=usersecrets", None, "42"),
    ]


def test_an_event_queues_the_pairs_it_dirtied() -> None:
    async def scenario() -> set[OwnerKey]:
        controller = Controller(cast(Any, FakeApi()), Settings())
        cache = controller.cache
        controller.handle(cache.namespace, "alice-ns", {"usersecrets.io/user": "alice"}, False)
        body = {
            "metadata": {"namespace": "alice-ns", "name": "db", "uid": "u", "generation": 1},
            "spec": {"value": "dg=="},
        }
        controller.handle(cache.usersecret, body, False)
        return set(controller.queues.copies.queued)

    assert asyncio.run(scenario()) == {OwnerKey("alice", "db")}
