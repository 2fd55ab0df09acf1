"""One secret reconciled end to end through its seams: the cache, a writer and a reporter on a
recording API, and a source reader that is a plain function."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from fakes import FakeApi, Request, copy_labels, refusal
from usersecrets.api.resources import SecretKeySelector
from usersecrets.controller.cache import Cache
from usersecrets.controller.reconciler import Reconciler
from usersecrets.controller.reporter import Reporter
from usersecrets.controller.writer import Writer
from usersecrets.kube.client import ApiError
from usersecrets.rules.desired import OwnerKey
from usersecrets.rules.sharding import UNSHARDED, Shard
from usersecrets.settings import Settings

PAIR = OwnerKey("alice", "db")
COPY = "usec-alice-db-9d8a53f9a3"


def setup(
    answer: Any = None,
    source: bytes | None = None,
    dry_run: bool = False,
    source_type: str = "Opaque",
    quotas: list[dict[str, Any]] | None = None,
    shard: Shard = UNSHARDED,
) -> tuple[Reconciler, Cache, FakeApi, list[tuple[str, str]]]:
    """`quotas` are what a read of the quotas finds (by reference: a test may change them)."""
    settings = Settings(cluster_name="c", dry_run=dry_run)
    cache, api, reads = Cache(settings), FakeApi(answer), []

    async def read_source(namespace: str, selector: SecretKeySelector) -> tuple[bytes | None, str]:
        reads.append((namespace, selector.name))
        return source, source_type

    def read_quotas(namespace: str) -> list[dict[str, Any]]:
        reads.append((namespace, "resourcequotas"))
        return [q for q in quotas or () if q["metadata"]["namespace"] == namespace]

    kube = cast(Any, api.aio)
    reconciler = Reconciler(
        cache,
        Writer(kube, dry_run),
        Reporter(kube),
        read_source,
        read_quotas,
        settings,
        dry_run,
        shard=shard,
    )
    for name, user in (("alice-ns", "alice"), ("bob-ns", "bob")):
        cache.namespace(name, {"usersecrets.io/user": user}, deleted=False)
    return reconciler, cache, api, reads


def created(request: Request) -> Any:
    return {"metadata": {"resourceVersion": "1"}}


def usersecret(spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"namespace": "alice-ns", "name": "db", "uid": "u1", "generation": 1}
    return {"metadata": meta, "spec": spec}


def grant_to_bob() -> dict[str, Any]:
    meta = {"namespace": "alice-ns", "name": "g", "uid": "g1", "generation": 1}
    return {"metadata": meta, "spec": {"secretName": "db", "user": "bob"}}


async def reconcile(reconciler: Reconciler) -> None:
    await reconciler.copies(PAIR)
    await reconciler.statuses(PAIR)


def test_copies_go_to_owner_and_grantee_then_statuses_say_so() -> None:
    reconciler, cache, api, _ = setup(created)
    cache.usersecret(usersecret({"value": "dg=="}), deleted=False)
    cache.secretgrant(grant_to_bob(), deleted=False)
    asyncio.run(reconcile(reconciler))
    assert api.sent() == [
        ("POST", "/api/v1/namespaces/alice-ns/secrets"),
        ("POST", "/api/v1/namespaces/bob-ns/secrets"),
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db/status"),
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/secretgrants/g/status"),
    ]
    assert api.requests[0].body["metadata"]["name"] == COPY
    assert set(cache.copies.refs()) == {("alice-ns", COPY), ("bob-ns", COPY)}
    written = cache.usersecrets[("alice-ns", "db")].status
    assert (written["namespaces"], written["copies"]) == (["alice-ns"], 2)
    assert cache.grants[("alice-ns", "g")].status["copies"] == 1
    # In sync now: a second round writes nothing.
    asyncio.run(reconcile(reconciler))
    assert len(api.requests) == 4


def test_a_shard_reconciles_its_owners_secrets_as_one_leader_does() -> None:
    reconciler, cache, api, _ = setup(created, shard=Shard(1, 2))  # alice's slot is 9
    cache.usersecret(usersecret({"value": "dg=="}), deleted=False)
    asyncio.run(reconcile(reconciler))
    assert api.sent() == [
        ("POST", "/api/v1/namespaces/alice-ns/secrets"),
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db/status"),
    ]


def test_another_shards_owner_gets_neither_copies_nor_statuses_here_only_its_label() -> None:
    """alice-ns changed hands to bob (slot 24): the shard of slot 9 still follows its
    UserSecret, and sends it on to bob's shard, by its label."""
    reconciler, cache, api, _ = setup(created, shard=Shard(1, 2))
    cache.usersecret(usersecret({"value": "dg=="}), deleted=False)
    cache.secretgrant(grant_to_bob(), deleted=False)
    cache.namespace("alice-ns", {"usersecrets.io/user": "bob"}, deleted=False)
    bobs = OwnerKey("bob", "db")
    asyncio.run(reconciler.copies(bobs))
    asyncio.run(reconciler.statuses(bobs))
    assert api.sent() == [
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db")
    ]
    assert api.requests[0].body == {"metadata": {"labels": {"usersecrets.io/slot": "24"}}}
    assert api.requests[0].content_type == "application/merge-patch+json"
    # Nothing of bob's here once it is gone: a grant's pair costs no request.
    cache.usersecret(usersecret({"value": "dg=="}), deleted=True)
    asyncio.run(reconcile(reconciler))
    asyncio.run(reconciler.copies(bobs))
    assert len(api.requests) == 1


def test_a_copy_labelled_by_hand_for_another_shard_is_sent_back_to_its_owners() -> None:
    """bob (slot 24) moved a copy of his into the odd shard's slots: the odd shard sends it
    back, so that his shard, which alone knows whether it is still wanted, sees it again."""
    reconciler, cache, api, _ = setup(created, shard=Shard(1, 2))
    bobs = OwnerKey("bob", "db")
    copy_name = "usec-bob-db-0123456789"
    meta = {"namespace": "alice-ns", "name": copy_name, "resourceVersion": "3"}
    cache.copy({"metadata": {**meta, "labels": copy_labels("bob", "db", "grant")}}, False)
    asyncio.run(reconciler.copies(bobs))
    assert api.sent() == [("PATCH", f"/api/v1/namespaces/alice-ns/secrets/{copy_name}")]
    assert api.requests[0].body == {"metadata": {"labels": {"usersecrets.io/slot": "24"}}}


def test_with_shards_the_quota_keeps_a_slot_more_per_other_leader() -> None:
    """bob's namespace has room for one more Secret beyond its reserve: one leader alone
    shares a copy there, one of two does not (the other may be taking it this moment)."""
    quota = {
        "metadata": {"namespace": "bob-ns", "name": "q"},
        "spec": {"hard": {"count/secrets": "10"}},
        "status": {"used": {"count/secrets": "8"}},
    }
    for shard, shared in ((UNSHARDED, True), (Shard(1, 2), False)):
        reconciler, cache, api, _ = setup(created, quotas=[quota], shard=shard)
        cache.quota(quota, deleted=False)
        cache.usersecret(usersecret({"value": "dg=="}), deleted=False)
        cache.secretgrant(grant_to_bob(), deleted=False)
        asyncio.run(reconciler.copies(PAIR))
        assert (("POST", "/api/v1/namespaces/bob-ns/secrets") in api.sent()) is shared


def test_a_valuefrom_source_is_read_by_the_reconcile() -> None:
    reconciler, cache, api, reads = setup(created, source=b"from-source")
    spec = {"valueFrom": {"secretKeyRef": {"name": "tokens", "key": "db"}}}
    cache.usersecret(usersecret(spec), deleted=False)
    asyncio.run(reconciler.copies(PAIR))
    assert reads == [("alice-ns", "tokens")]
    assert api.requests[0].body["data"] == {"value": "ZnJvbS1zb3VyY2U="}


def test_a_refusal_is_remembered_for_the_status_and_raised_for_a_retry() -> None:
    def answer(request: Request) -> Any:
        if request.path == "/api/v1/namespaces/bob-ns/secrets":
            raise refusal(403, 'admission webhook "deny.example" denied the request: no')
        return created(request)

    reconciler, cache, _api, _ = setup(answer)
    cache.usersecret(usersecret({"value": "dg=="}), deleted=False)
    cache.secretgrant(grant_to_bob(), deleted=False)
    with pytest.raises(ApiError):
        asyncio.run(reconciler.copies(PAIR))
    said = 'HTTP 403 Refused: admission webhook "deny.example" denied the request'
    assert cache.refused == {PAIR: {"bob-ns": said}}
    asyncio.run(reconciler.statuses(PAIR))
    status = cache.grants[("alice-ns", "g")].status
    assert status["conditions"][0]["reason"] == "CopyFailed"
    assert status["copies"] == 0


def test_a_dry_run_writes_no_status_and_remembers_no_copy() -> None:
    reconciler, cache, api, _ = setup(created, dry_run=True)
    cache.usersecret(usersecret({"value": "dg=="}), deleted=False)
    asyncio.run(reconcile(reconciler))
    assert api.sent() == [("POST", "/api/v1/namespaces/alice-ns/secrets")]
    assert api.requests[0].query == {"dryRun": "All"}
    assert len(cache.copies) == 0


def test_a_service_account_token_is_not_copied() -> None:
    reconciler, cache, api, _ = setup(
        created, source=b"eyJhbGciOi", source_type="kubernetes.io/service-account-token"
    )
    spec = {"valueFrom": {"secretKeyRef": {"name": "default-token", "key": "token"}}}
    cache.usersecret(usersecret(spec), deleted=False)
    asyncio.run(reconcile(reconciler))
    assert api.sent() == [
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db/status"),
        ("POST", "/api/v1/namespaces/alice-ns/events"),  # a problem: an Event tells it
    ]
    condition = api.requests[0].body["status"]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "SourceRefused")
    assert condition["message"] == (
        "The valueFrom Secret 'default-token' is of type kubernetes.io/service-account-token, "
        "a credential of the cluster itself: it is not copied (the platform may allow the type "
        "with the chart's valueFrom.refusedTypes)"
    )
    view = cache.world.secret("alice-ns", "db")
    assert view is not None
    assert view.value is None  # not even kept in memory


def quota_of_bob(used: int) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "bob-ns", "name": "q"},
        "spec": {"hard": {"count/secrets": "3"}},
        "status": {"used": {"count/secrets": str(used)}},
    }


def share_with_bob(cache: Cache, *keys: str) -> None:
    for key in keys:
        meta = {"namespace": "alice-ns", "name": key, "uid": key, "generation": 1}
        cache.usersecret({"metadata": meta, "spec": {"value": "dg=="}}, deleted=False)
        grant = {
            "metadata": {**meta, "name": f"g-{key}"},
            "spec": {"secretName": key, "user": "bob"},
        }
        cache.secretgrant(grant, deleted=False)


def counted_by(quotas: list[dict[str, Any]]) -> Callable[[Request], Any]:
    """An apiserver whose quota counts each copy it creates in bob-ns, as admission does."""

    def answer(request: Request) -> Any:
        if (request.method, request.path) == ("POST", "/api/v1/namespaces/bob-ns/secrets"):
            used = int(quotas[0]["status"]["used"]["count/secrets"])
            quotas[0] = quota_of_bob(used + 1)
        return created(request)

    return answer


def test_parallel_reconciles_share_a_quotas_room_and_hold_back_the_rest() -> None:
    quotas = [quota_of_bob(used=1)]  # 3 - 1 used - 1 kept back: room for one shared copy
    reconciler, cache, api, _ = setup(counted_by(quotas), quotas=quotas)
    cache.quota(quotas[0], deleted=False)
    share_with_bob(cache, "a", "b")

    async def both() -> None:
        await asyncio.gather(
            reconciler.copies(OwnerKey("alice", "a")), reconciler.copies(OwnerKey("alice", "b"))
        )

    asyncio.run(both())
    assert api.sent("POST").count(("POST", "/api/v1/namespaces/bob-ns/secrets")) == 1
    assert cache.refused == {
        OwnerKey("alice", "b"): {
            "bob-ns": (
                "its Secret quota (2 of 3 used) keeps its last 1 slot for the user's own Secrets"
            )
        }
    }
    assert cache.held == {"bob-ns": {OwnerKey("alice", "b")}}
    assert cache.quota(quota_of_bob(used=0), deleted=False) == {OwnerKey("alice", "b")}


def test_a_quota_status_from_before_our_last_copy_does_not_give_its_slot_away() -> None:
    quotas = [quota_of_bob(used=0)]
    reconciler, cache, api, reads = setup(counted_by(quotas), quotas=quotas)
    cache.quota(quotas[0], deleted=False)
    share_with_bob(cache, "a", "b", "c")
    for key, used_after in (("a", 1), ("b", 2)):
        asyncio.run(reconciler.copies(OwnerKey("alice", key)))
        # The watch brings a status from before the copy.
        cache.quota(quota_of_bob(used=used_after - 1), deleted=False)
    asyncio.run(reconciler.copies(OwnerKey("alice", "c")))
    assert api.sent("POST").count(("POST", "/api/v1/namespaces/bob-ns/secrets")) == 2
    assert cache.refused[OwnerKey("alice", "c")] == {
        "bob-ns": "its Secret quota (2 of 3 used) keeps its last 1 slot for the user's own Secrets"
    }
    assert reads.count(("bob-ns", "resourcequotas")) == 3
