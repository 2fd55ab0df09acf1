"""The controller's wiring: what our watches ask for, and that each event they and kopf's
handlers bring is counted and queues what it dirtied."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections import Counter
from collections.abc import Awaitable
from typing import Any, Protocol, cast

import kopf
import pytest

from fakes import FakeApi, Request, copy_labels, refusal, watch_events
from samples import Growth
from usersecrets.controller import handlers
from usersecrets.controller.cache import Cache
from usersecrets.controller.run import Controller
from usersecrets.kube import watching
from usersecrets.rules.desired import OwnerKey
from usersecrets.rules.sharding import UNSHARDED, Shard
from usersecrets.settings import Settings


class Watches(FakeApi):
    """Records each watch the controller opens: the first one of each kind sends the event
    given for it (by path and Accept header), then every connection drops. A list (the
    quotas are listed first) is empty, at version 7."""

    def __init__(
        self, events: dict[tuple[str, str | None], tuple[str, dict[str, Any]]] | None = None
    ) -> None:
        super().__init__(lambda _: {"metadata": {"resourceVersion": "7"}, "items": []})
        self.events = dict(events or {})
        self.watched: list[tuple[str, str | None, str | None, str]] = []
        self.all = threading.Event()

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        query, headers = kwargs["query"], kwargs["headers"]
        if query.get("sendInitialEvents"):  # a list (after 410 Gone)
            return super().stream(method, path, **kwargs)
        accept = headers.get("Accept")
        self.watched.append((path, query.get("labelSelector"), accept, query["resourceVersion"]))
        kinds = Counter((p, a) for p, _, a, _ in self.watched)
        if len(kinds) == 4 and min(kinds.values()) >= 2:  # each thread is done with its first
            self.all.set()
        if (event := self.events.pop((path, accept), None)) is not None:
            return watch_events(event)
        raise ConnectionResetError("dropped")


USERSECRETS = "/apis/usersecrets.io/v1alpha1/usersecrets"


def following(
    api: Watches,
    shard: Shard = UNSHARDED,
    controller: Controller | None = None,
    apply: bool = False,
) -> Controller:
    """The controller's watches, from the versions of a relist (41 for UserSecrets, 42 for
    Secrets), until each was opened twice; then, with `apply`, what they handed over to the
    controller's loop is run there."""
    controller = controller or Controller(cast(Any, api), cast(Any, api.aio), Settings(), shard)
    versions = {"usersecret": "41", "grant": "40", "secret": "42"}
    loop = asyncio.new_event_loop()
    stops = controller.follow(loop, versions)
    try:
        assert api.all.wait(5)
    finally:
        for stop in stops:
            stop.set()
    if apply:
        loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    return controller


def test_the_watches_ask_for_usersecrets_and_copies_in_full_and_other_secrets_as_metadata() -> None:
    api = Watches()
    following(api)
    assert sorted(set(api.watched), key=str) == [
        ("/api/v1/resourcequotas", None, None, "7"),
        (
            "/api/v1/secrets",
            "app.kubernetes.io/managed-by!=usersecrets",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "42",
        ),
        ("/api/v1/secrets", "app.kubernetes.io/managed-by=usersecrets", None, "42"),
        (USERSECRETS, None, None, "41"),
    ]


def test_each_event_of_our_watches_is_counted_and_handed_to_the_controllers_loop() -> None:
    meta = {"namespace": "alice-ns", "resourceVersion": "43"}
    api = Watches(
        {
            (USERSECRETS, None): (
                "ADDED",
                {
                    "metadata": {**meta, "name": "db", "uid": "u1", "generation": 1},
                    "spec": {"value": "dg=="},
                },
            ),
            ("/api/v1/secrets", None): (
                "ADDED",
                {
                    "metadata": {
                        **meta,
                        "name": "usec-alice-db-9d8a53f9a3",
                        "labels": copy_labels("alice", "db"),
                    }
                },
            ),
            ("/api/v1/secrets", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"): (
                "ADDED",
                {"metadata": {**meta, "name": "tokens"}},
            ),
            ("/api/v1/resourcequotas", None): (
                "ADDED",
                {"metadata": {**meta, "name": "q"}, "spec": {"hard": {"count/secrets": "10"}}},
            ),
        }
    )
    events = Growth("usersecrets_watch_events_total")
    controller = following(api)
    assert events() == {
        '{kind="usersecret"}': 1.0,
        '{kind="copy"}': 1.0,
        '{kind="secret"}': 1.0,
        '{kind="quota"}': 1.0,
    }
    # Handed over, not applied in the watches' threads.
    assert controller.cache.room("alice-ns") is None
    assert controller.cache.usersecrets == {}


def known(api: Watches) -> Controller:
    """A controller whose cache has alice's UserSecret db."""
    controller = Controller(cast(Any, api), cast(Any, api.aio), Settings())
    controller.cache.namespace("alice-ns", {"usersecrets.io/user": "alice"}, False)
    body = {
        "metadata": {"namespace": "alice-ns", "name": "db", "uid": "u", "generation": 1},
        "spec": {"value": "dg=="},
    }
    controller.cache.usersecret(body, False)
    return controller


def test_a_usersecret_deleted_is_forgotten() -> None:
    gone = {"metadata": {"namespace": "alice-ns", "name": "db", "resourceVersion": "43"}}
    api = Watches({(USERSECRETS, None): ("DELETED", gone)})
    controller = following(api, controller=known(api), apply=True)
    assert controller.cache.usersecrets == {}
    assert controller.queues.copies.queued == {OwnerKey("alice", "db")}


def test_after_410_gone_the_usersecret_watch_lists_again_and_forgets_what_went() -> None:
    api = Watches({(USERSECRETS, None): ("ERROR", {"code": 410})})
    controller = following(api, controller=known(api), apply=True)
    assert controller.cache.usersecrets == {}  # the list (the fake's) is empty
    assert (USERSECRETS, None, None, "7") in api.watched  # then watched from the list's version


class PagesNoted(Cache):
    """Notes the size of each page of a list a watch read again."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.pages: list[tuple[str, int]] = []

    def listed_anew(self, kind: str, page: list[dict[str, Any]]) -> set[OwnerKey]:
        self.pages.append((kind, len(page)))
        return super().listed_anew(kind, page)


def test_after_410_gone_the_list_is_recorded_a_page_at_a_time_then_what_went_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def usersecret(name: str) -> dict[str, Any]:
        meta = {"namespace": "alice-ns", "name": name, "uid": name, "generation": 1}
        return {"metadata": meta, "spec": {"value": "dg=="}}

    def answer(request: Request) -> Any:
        items = [usersecret(n) for n in ("a", "b", "c")] if request.path == USERSECRETS else []
        return {"metadata": {"resourceVersion": "7"}, "items": items}

    monkeypatch.setattr(watching, "PAGE", 2)
    api = Watches({(USERSECRETS, None): ("ERROR", {"code": 410})})
    api.answer = answer
    controller = Controller(cast(Any, api), cast(Any, api.aio), Settings())
    controller.cache = noted = PagesNoted(Settings())
    noted.namespace("alice-ns", {"usersecrets.io/user": "alice"}, False)
    noted.usersecret(usersecret("db"), False)
    following(api, controller=controller, apply=True)
    assert noted.pages == [("usersecret", 2), ("usersecret", 1)]
    assert sorted(name for _, name in noted.usersecrets) == ["a", "b", "c"]  # db went


def test_an_event_queues_the_pairs_it_dirtied() -> None:
    async def scenario() -> set[OwnerKey]:
        api = FakeApi()
        controller = Controller(cast(Any, api), cast(Any, api.aio), Settings())
        cache = controller.cache
        controller.handle(cache.namespace, "alice-ns", {"usersecrets.io/user": "alice"}, False)
        body = {
            "metadata": {"namespace": "alice-ns", "name": "db", "uid": "u", "generation": 1},
            "spec": {"value": "dg=="},
        }
        controller.handle(cache.usersecret, body, False)
        return set(controller.queues.copies.queued)

    assert asyncio.run(scenario()) == {OwnerKey("alice", "db")}


class EventHandler(Protocol):
    """Our `on.event` handlers as they are written: kopf's decorator types each as any
    watching handler, which takes every argument kopf has and may or may not be async."""

    def __call__(
        self, *, type: str | None, body: kopf.Body, memo: kopf.Memo
    ) -> Awaitable[None]: ...


def on_event(handler: object) -> EventHandler:
    return cast(EventHandler, handler)


def test_kopfs_events_are_counted_and_recorded_on_the_controllers_loop() -> None:
    async def scenario() -> set[OwnerKey]:
        api = FakeApi()
        controller = Controller(cast(Any, api), cast(Any, api.aio), Settings())
        memo = kopf.Memo(controller=controller, loop=asyncio.get_running_loop())
        namespace: kopf.RawBody = {
            "metadata": {"name": "alice-ns", "labels": {"usersecrets.io/user": "bob"}}
        }
        await on_event(handlers.namespace)(type="ADDED", body=kopf.Body(namespace), memo=memo)
        grant = {
            "metadata": {"namespace": "alice-ns", "name": "g", "uid": "u2", "generation": 1},
            "spec": {"secretName": "db", "user": "carol"},
        }
        # An object as the apiserver sends it: kopf's RawBody names no metadata.generation.
        body = kopf.Body(cast(kopf.RawBody, grant))
        await on_event(handlers.secretgrant)(type="ADDED", body=body, memo=memo)
        assert controller.queues.copies.queued == set()  # not yet: on the loop, in order
        await asyncio.sleep(0)
        return set(controller.queues.copies.queued)

    events = Growth("usersecrets_watch_events_total")
    assert asyncio.run(scenario()) == {OwnerKey("bob", "db")}
    assert events() == {'{kind="namespace"}': 1.0, '{kind="secretgrant"}': 1.0}


def test_kopf_lists_a_page_at_a_time_paces_its_workers_and_neither_diffs_nor_stores_progress() -> (
    None
):
    settings = handlers.settings()
    assert (settings.watching.chunk_size, settings.queueing.worker_limit) == (500, 1000)
    stored = '{"spec":{"value":"Y2FuYXJ5LTA0NTE="}}'
    body = kopf.Body(
        {
            "metadata": {"annotations": {"kopf.zalando.org/last-handled-configuration": stored}},
            "spec": {"value": "Y2FuYXJ5LTA0NTE="},
        }
    )
    diffbase = settings.persistence.diffbase_storage
    assert diffbase.fetch(body=body) is None
    assert diffbase.build(body=body) == {}
    progress, patch = settings.persistence.progress_storage, kopf.Patch()
    progress.store(
        key=kopf.HandlerId("h"), record={"started": "2026-11-30T00:00:00"}, body=body, patch=patch
    )
    progress.touch(body=body, patch=patch, value="touched")
    assert (progress.fetch(key=kopf.HandlerId("h"), body=body), patch) == (None, {})
    essence = kopf.BodyEssence({"metadata": {"annotations": {"kopf.zalando.org/h": "{}"}}})
    assert progress.clear(essence=essence) is essence


ODD_SLOTS = "usersecrets.io/slot in (" + ",".join(str(n) for n in range(1, 64, 2)) + ")"


def test_a_shard_follows_its_own_copies_and_usersecrets_and_every_grant() -> None:
    api = Watches()
    following(api, Shard(1, 2))
    copies = (
        "/api/v1/secrets",
        f"app.kubernetes.io/managed-by=usersecrets,{ODD_SLOTS}",
        None,
        "42",
    )
    assert copies in api.watched
    assert (USERSECRETS, ODD_SLOTS, None, "41") in api.watched
    # kopf, which follows grants and namespaces, follows all of them.
    grants = kopf.Resource("usersecrets.io", "v1alpha1", "secretgrants")
    assert handlers.settings().watching.label_selectors.collect(grants) == []


def test_the_first_relist_is_tried_again_when_the_apiserver_is_not_ready() -> None:
    """A CRD just created: its lists answer 429 for a moment. The leader waits, not exits."""
    answers: list[str] = []

    def answer(request: Request) -> Any:
        if not answers:
            answers.append("429")
            raise refusal(429, "storage is (re)initializing")
        answers.append("200")
        return {"metadata": {"resourceVersion": "7"}, "items": []}

    api = FakeApi(answer)
    controller = Controller(cast(Any, api), cast(Any, api.aio), Settings())
    assert asyncio.run(controller.first_relist()) == {
        "secret": "7",
        "grant": "7",
        "usersecret": "7",
    }
    assert answers[:2] == ["429", "200"]


def test_the_first_relist_loads_without_the_garbage_collector_and_freezes_what_it_loaded() -> None:
    collecting: list[bool] = []

    def answer(request: Request) -> Any:
        collecting.append(gc.isenabled())
        return {"metadata": {"resourceVersion": "7"}, "items": []}

    api = FakeApi(answer)
    controller = Controller(cast(Any, api), cast(Any, api.aio), Settings())
    asyncio.run(controller.first_relist())
    assert collecting
    assert not any(collecting)
    assert gc.isenabled()
    assert not any(o is controller.cache.usersecrets for o in gc.get_objects())  # frozen
