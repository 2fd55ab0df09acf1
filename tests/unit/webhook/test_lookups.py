"""What the webhook reads from the cluster: namespace users and copies, from metadata caches."""

from __future__ import annotations

import gc
import threading
from typing import Any, cast

import pytest

from fakes import FakeApi, Request, copy_labels
from usersecrets.kube import watching
from usersecrets.rules.references import SecretRef
from usersecrets.settings import Settings
from usersecrets.webhook.lookups import Lookups, MetadataCache


def meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name}
    if namespace:
        found["namespace"] = namespace
    if labels:
        found["labels"] = labels
    return found


def lists(found: dict[str, list[dict[str, Any]]]) -> Any:
    """Answers a list of a path with a PartialObjectMetadataList, as the apiserver sends it."""

    def answer(request: Request) -> dict[str, Any]:
        assert request.method == "GET"
        return {
            "kind": "PartialObjectMetadataList",
            "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": m} for m in found.get(request.path, [])] or None,  # Go's nil
        }

    return FakeApi(answer)


def listing(*items: dict[str, Any]) -> Any:
    return lists({"/things": list(items)})


def labels_of(meta: Any) -> dict[str, str]:
    return dict(meta.get("labels", {}))


def load(cache: MetadataCache[Any]) -> str:
    items, version = watching.list_objects(cache.core, cache.path, cache.label_selector, True)
    cache.load(items)
    return version


def test_list_then_events() -> None:
    cache = MetadataCache(listing(meta("a", "ns", x="1")), "/things", labels_of)
    assert load(cache) == "7"
    assert cache.synced.is_set()
    assert cache.objects == {"ns": {"a": {"x": "1"}}}
    cache.apply("ADDED", {"metadata": meta("b", "ns")})
    cache.apply("DELETED", {"metadata": meta("a", "ns")})
    assert cache.objects == {"ns": {"b": {}}}


def test_a_first_list_is_loaded_without_the_garbage_collector_then_frozen_a_later_one_not() -> None:
    collecting = []

    def items() -> Any:
        collecting.append(gc.isenabled())
        yield {"metadata": meta("a", "ns")}

    def frozen(cache: MetadataCache[Any]) -> bool:
        return not any(o is cache.objects for o in gc.get_objects())

    cache = MetadataCache(listing(), "/things", labels_of)
    cache.load(items())
    assert (collecting, gc.isenabled(), frozen(cache)) == ([False], True, True)
    cache.load(items())  # after 410 Gone: no freeze, whose cost is the cycles of the moment
    assert (collecting, gc.isenabled(), frozen(cache)) == ([False, False], True, False)


def test_an_empty_list_is_null_in_go() -> None:
    cache = MetadataCache(listing(), "/things", labels_of)
    load(cache)
    assert cache.objects == {}


def lookups(namespaces: list[dict[str, Any]], copies: list[dict[str, Any]]) -> Lookups:
    core = lists({"/api/v1/namespaces": namespaces, "/api/v1/secrets": copies})
    found = Lookups(core, Settings())
    load(found.namespaces)
    load(found.copies)
    return found


def test_users_and_available_copies() -> None:
    found = lookups(
        [meta("team-a", **{"usersecrets.io/user": "alice"}), meta("kube-system")],
        [
            meta("usec-alice-db-9d8a53f9a3", "team-a", **copy_labels("alice", "db")),
            meta("usec-bob-k-838e82748b", "team-a", **copy_labels("bob", "k")),
            meta("usec-bob-half-3bd3971818", "team-a", **{"usersecrets.io/owner": "bob"}),
            meta("renamed", "team-a", **copy_labels("bob", "x")),
            meta("usec-bob-x-993f5b976d", "team-b", **copy_labels("bob", "x")),
        ],
    )
    assert found.synced
    assert found.known_user("team-a") == (True, "alice")
    assert found.known_user("kube-system") == (True, None)
    assert found.known_user("new") == (False, None)
    here = found.available("team-a")
    assert SecretRef("alice", "db") in here
    assert SecretRef("bob", "k") in here
    assert SecretRef("bob", "half") not in here  # labels say no key
    assert SecretRef("bob", "x") not in here  # not under the name pods mount
    assert SecretRef("bob", "x") in found.available("team-b")
    assert SecretRef("alice", "db") not in found.available("elsewhere")


def test_the_webhook_caches_watch_metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    started: dict[str, dict[str, Any]] = {}

    def start(name: str, core: Any, path: str, **kwargs: Any) -> threading.Event:
        started[name] = {"path": path, **kwargs}
        return threading.Event()

    monkeypatch.setattr(watching, "start", start)
    Lookups(cast(Any, FakeApi()), Settings()).start()
    assert {name: kwargs["metadata_only"] for name, kwargs in started.items()} == {
        "webhook-namespaces": True,
        "webhook-copies": True,
    }
    assert started["webhook-copies"]["label_selector"] == "app.kubernetes.io/managed-by=usersecrets"
    assert started["webhook-copies"]["path"] == "/api/v1/secrets"
    assert started["webhook-namespaces"]["path"] == "/api/v1/namespaces"


def test_a_copy_being_deleted_is_no_share() -> None:
    kept = {
        "name": "usec-alice-db-9d8a53f9a3",
        "namespace": "bob-ns",
        "labels": copy_labels("alice", "db", "grant"),
        "finalizers": ["bob.example/keep"],
        "deletionTimestamp": "2026-11-29T12:00:00Z",
    }
    found = lookups([meta("bob-ns", **{"usersecrets.io/user": "bob"})], [kept])
    assert SecretRef("alice", "db") not in found.available("bob-ns")
    found.copies.apply("MODIFIED", {"metadata": {**kept, "deletionTimestamp": None}})
    assert SecretRef("alice", "db") in found.available("bob-ns")
