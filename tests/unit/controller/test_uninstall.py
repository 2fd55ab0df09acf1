"""The uninstall hook: the Lease first, then every copy page by page, then its own leftovers."""

from __future__ import annotations

from typing import Any, cast

from fakes import FakeApi, Request, refusal
from usersecrets.controller.uninstall import delete_copies
from usersecrets.kube.client import KubeApi
from usersecrets.settings import Settings

LEASE = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/usersecrets-leader"
PAGES = {
    None: {
        "metadata": {"continue": "page2"},
        "items": [{"metadata": {"namespace": "alice", "name": "us-alice-db"}}],
    },
    "page2": {"items": [{"metadata": {"namespace": "bob", "name": "us-alice-db"}}]},
}


def answer(request: Request) -> Any:
    if request.path == LEASE and request.method == "GET":
        raise refusal(404)
    if request.path == "/api/v1/secrets":
        return PAGES[request.query.get("continue")]
    if request.method == "DELETE" and request.path.endswith("/usersecrets-webhook-tls"):
        raise refusal(404)  # already gone: fine
    return {}


def test_takes_the_lease_then_deletes_every_copy_and_its_leftovers() -> None:
    api = FakeApi(answer)
    settings = Settings(operator_namespace="ops")
    assert delete_copies(cast(KubeApi, api), settings, poll_seconds=0) == 2
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", LEASE),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/ops/leases"),
        ("GET", "/api/v1/secrets"),
        ("DELETE", "/api/v1/namespaces/alice/secrets/us-alice-db"),
        ("GET", "/api/v1/secrets"),
        ("DELETE", "/api/v1/namespaces/bob/secrets/us-alice-db"),
        ("DELETE", "/api/v1/namespaces/ops/secrets/usersecrets-webhook-tls"),
        ("DELETE", LEASE),
    ]
    lists = [r.query for r in api.requests if r.path == "/api/v1/secrets"]
    assert lists == [
        {"labelSelector": "app.kubernetes.io/managed-by=usersecrets", "limit": "500"},
        {
            "labelSelector": "app.kubernetes.io/managed-by=usersecrets",
            "limit": "500",
            "continue": "page2",
        },
    ]
    lease = api.requests[1].body
    assert lease["spec"]["leaseDurationSeconds"] == 3600
    assert lease["spec"]["holderIdentity"].startswith("uninstall-")


def test_with_shards_it_takes_and_deletes_every_shards_lease() -> None:
    leases = "/apis/coordination.k8s.io/v1/namespaces/ops/leases"

    def none_yet(request: Request) -> Any:
        if request.path.startswith(f"{leases}/") and request.method == "GET":
            raise refusal(404)
        return answer(request)

    api = FakeApi(none_yet)
    settings = Settings(operator_namespace="ops", shards=2)
    delete_copies(cast(KubeApi, api), settings, poll_seconds=0)
    taken = [r.body["metadata"]["name"] for r in api.requests if r.path == leases]
    assert taken == ["usersecrets-leader-0-of-2", "usersecrets-leader-1-of-2"]
    deleted = [r.path for r in api.requests if r.method == "DELETE" and "/leases/" in r.path]
    assert deleted == [f"{leases}/usersecrets-leader-0-of-2", f"{leases}/usersecrets-leader-1-of-2"]
