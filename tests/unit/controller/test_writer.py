"""Writing copies: conflicts, collisions, refusals that do not hold up the other namespaces."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from fakes import FakeApi, Request, refusal
from usersecrets.controller import reads
from usersecrets.controller.writer import Outcome, Writer
from usersecrets.rules.desired import ActualSecret, DesiredCopy, Plan
from usersecrets.rules.sharding import Shard

NAME = "usec-alice-db-0123456789"
LABELS = {
    "app.kubernetes.io/managed-by": "usersecrets",
    "usersecrets.io/owner": "alice",
    "usersecrets.io/key": "db",
    "usersecrets.io/reason": "owner",
}


def copy(namespace: str = "alice") -> DesiredCopy:
    return DesiredCopy(
        namespace=namespace,
        name=NAME,
        owner="alice",
        key="db",
        reason="owner",
        labels=LABELS,
        annotations={"usersecrets.io/uri": "secret://c/alice/db"},
        value=b"v",
    )


def writer(answer: Any, dry_run: bool = False) -> tuple[Writer, FakeApi]:
    api = FakeApi(answer)
    return Writer(cast(Any, api.aio), dry_run), api


def apply(write: Writer, plan: Plan, versions: dict[tuple[str, str], str]) -> Outcome:
    return asyncio.run(write.apply(plan, versions))


def a_secret_at_version_2(labels: dict[str, str]) -> Any:
    """The apiserver holds the Secret at version "2" with `labels`; a write at another version
    conflicts."""

    def answer(request: Request) -> Any:
        if request.method == "GET":
            return {"metadata": {"labels": labels, "resourceVersion": "2"}}
        if request.method == "POST":
            raise refusal(409, "already exists")
        assert request.method == "PATCH"
        if request.body["metadata"]["resourceVersion"] != "2":
            raise refusal(409, "the object has been modified")
        return {"metadata": {"resourceVersion": "3"}}

    return answer


def test_a_create_sends_the_value_base64_under_one_key() -> None:
    write, api = writer(lambda _: {"metadata": {"resourceVersion": "1"}})
    outcome = apply(write, Plan(creates=(copy(),)), {})
    assert api.sent() == [("POST", "/api/v1/namespaces/alice/secrets")]
    body = api.requests[0].body
    assert body["type"] == "Opaque"
    assert body["data"] == {"value": "dg=="}
    assert body["metadata"]["labels"] == LABELS
    assert body["metadata"]["annotations"] == {"usersecrets.io/uri": "secret://c/alice/db"}
    assert outcome.written == [(copy(), "1")]
    assert api.requests[0].query == {}


def test_a_dry_run_asks_the_apiserver_for_a_dry_run_of_every_write() -> None:
    write, api = writer(lambda _: {"metadata": {"resourceVersion": "1"}}, dry_run=True)
    stale = ActualSecret("bob", NAME, LABELS, {}, "digest")
    apply(write, Plan(creates=(copy(),), updates=(copy("x"),), deletes=(stale,)), {})
    assert [r.query for r in api.requests] == [{"dryRun": "All"}] * 3


def test_a_conflict_writes_over_the_current_version() -> None:
    """Our cached version can lag behind the watch: a 409 reads the Secret and writes again."""
    write, api = writer(a_secret_at_version_2(LABELS))
    outcome = apply(write, Plan(updates=(copy(),)), {("alice", NAME): "1"})
    versions = [r.body["metadata"]["resourceVersion"] for r in api.requests if r.method == "PATCH"]
    assert versions == ["1", "2"]
    assert outcome.written == [(copy(), "3")]
    assert outcome.errors == []


def test_a_conflict_with_a_secret_no_longer_ours_is_a_collision() -> None:
    write, api = writer(a_secret_at_version_2({"app": "theirs"}))
    outcome = apply(write, Plan(updates=(copy(),)), {("alice", NAME): "1"})
    assert api.sent("PATCH") == [("PATCH", f"/api/v1/namespaces/alice/secrets/{NAME}")]
    assert outcome.collisions == [("alice", NAME)]
    assert outcome.written == []


def test_a_create_that_meets_a_secret_of_someone_else_leaves_it_alone() -> None:
    write, api = writer(a_secret_at_version_2({"app": "theirs"}))
    outcome = apply(write, Plan(creates=(copy(),)), {})
    assert api.sent() == [
        ("POST", "/api/v1/namespaces/alice/secrets"),
        ("GET", f"/api/v1/namespaces/alice/secrets/{NAME}"),
    ]
    assert outcome.collisions == [("alice", NAME)]


def test_a_refused_copy_does_not_keep_the_others_from_theirs() -> None:
    """A 403 is told in the statuses; a 429 is retried quietly; the others are written."""

    def answer(request: Request) -> Any:
        if request.path == "/api/v1/namespaces/full/secrets":
            raise refusal(403, "exceeded quota: q, requested: secrets=1")
        if request.path == "/api/v1/namespaces/slow/secrets":
            raise refusal(429, "too many requests", reason="Too Many Requests")
        return {"metadata": {"resourceVersion": "1"}}

    write, api = writer(answer)
    plan = Plan(creates=tuple(copy(ns) for ns in ("full", "home", "slow", "x")))
    outcome = apply(write, plan, {})
    assert [c.namespace for c, _ in outcome.written] == ["home", "x"]
    assert outcome.refused == [
        (("full", NAME), "HTTP 403 Refused: exceeded quota: q, requested: secrets=1")
    ]
    assert [error.status for error in outcome.errors] == [403, 429]
    assert len(api.requests) == 4


def test_a_namespace_being_deleted_is_no_refusal() -> None:
    def answer(_: Request) -> Any:
        error = refusal(403, "namespace is being terminated")
        error.body = '{"details": {"causes": [{"reason": "NamespaceTerminating"}]}, "message": "x"}'
        raise error

    outcome = apply(writer(answer)[0], Plan(creates=(copy(),)), {})
    assert (outcome.written, outcome.refused, outcome.errors) == ([], [], [])


@pytest.mark.parametrize("status", [200, 404])
def test_a_delete_is_done_when_the_copy_is_gone(status: int) -> None:
    def answer(_: Request) -> Any:
        if status == 404:
            raise refusal(404, "not found")
        return {}

    write, api = writer(answer)
    stale = ActualSecret("bob", NAME, LABELS, {}, "digest")
    outcome = apply(write, Plan(deletes=(stale,)), {("bob", NAME): "5"})
    assert api.requests[0].body == {"preconditions": {"resourceVersion": "5"}}
    assert outcome.deleted == [("bob", NAME)]


def test_a_refused_delete_is_retried_but_not_told() -> None:
    def answer(_: Request) -> Any:
        raise refusal(403, "forbidden")

    stale = ActualSecret("bob", NAME, LABELS, {}, "digest")
    outcome = apply(writer(answer)[0], Plan(deletes=(stale,)), {})
    assert outcome.refused == []
    assert [e.status for e in outcome.errors] == [403]


def test_a_copy_with_finalizers_is_emptied_and_freed_before_its_delete() -> None:
    def answer(request: Request) -> Any:
        if request.method == "PATCH":
            return {"metadata": {"resourceVersion": "8"}}
        return {}

    write, api = writer(answer)
    kept = ActualSecret("bob", NAME, LABELS, {}, "digest", ("bob.example/keep",), deleting=True)
    outcome = apply(write, Plan(deletes=(kept,)), {("bob", NAME): "7"})
    assert api.sent() == [
        ("PATCH", f"/api/v1/namespaces/bob/secrets/{NAME}"),
        ("DELETE", f"/api/v1/namespaces/bob/secrets/{NAME}"),
    ]
    assert api.requests[0].body == {
        "metadata": {"finalizers": None, "resourceVersion": "7"},
        "data": None,
    }
    assert api.requests[0].content_type == "application/merge-patch+json"
    assert api.requests[1].body == {"preconditions": {"resourceVersion": "8"}}
    assert outcome.deleted == [("bob", NAME)]


def test_what_has_no_slot_is_labelled_with_its_owners_by_the_owners_shard() -> None:
    """Before a shard lists: its UserSecrets and copies from before shards get the label it
    selects by. A UserSecret in a namespace not yet known waits for a resync; one that is gone
    is skipped; the other shard's owners' are left to it."""

    def answer(request: Request) -> Any:
        if request.method == "GET" and request.path.endswith("/usersecrets"):
            items = [
                {"metadata": {"namespace": ns, "name": name}}
                for ns, name in (
                    ("alice-ns", "db"),
                    ("alice-ns", "gone"),
                    ("bob-ns", "x"),
                    ("new-ns", "y"),
                )
            ]
            return {"metadata": {"resourceVersion": "5"}, "items": items}
        if request.method == "GET":
            meta = {"namespace": "bob-ns", "name": NAME, "labels": LABELS}
            return {"metadata": {"resourceVersion": "5"}, "items": [{"metadata": meta}]}
        if request.path.endswith("/usersecrets/gone"):
            raise refusal(404)
        return {}

    w, api = writer(answer)
    odd = Shard(1, 2)  # alice's slot is 9, bob's 24

    async def relist() -> int:
        """As a relist labels them: each page before the next is read."""
        done = 0
        for found in reads.unlabelled(cast(Any, api), {"alice-ns": "alice", "bob-ns": "bob"}, odd):
            done += await w.label(found)
        return done

    assert asyncio.run(relist()) == 2
    metadata = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    assert [(r.method, r.path, r.query.get("labelSelector")) for r in api.requests] == [
        ("GET", "/apis/usersecrets.io/v1alpha1/usersecrets", "!usersecrets.io/slot"),
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db", None),
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/gone", None),
        (
            "GET",
            "/api/v1/secrets",
            "app.kubernetes.io/managed-by=usersecrets,!usersecrets.io/slot",
        ),
        ("PATCH", f"/api/v1/namespaces/bob-ns/secrets/{NAME}", None),
    ]
    assert [r.headers.get("Accept") for r in api.requests if r.method == "GET"] == [metadata] * 2
    patches = [r for r in api.requests if r.method == "PATCH"]
    assert {r.content_type for r in patches} == {"application/merge-patch+json"}
    # alice's slot, for her UserSecret and for the copy of hers in bob's namespace.
    assert [r.body for r in patches] == [{"metadata": {"labels": {"usersecrets.io/slot": "9"}}}] * 3
