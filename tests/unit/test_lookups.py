"""What the webhook reads from the cluster: the copies in a namespace, by their labels."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pytest

from usersecrets import naming
from usersecrets.lookups import copies_in
from usersecrets.references import SecretRef


class FakeCore:
    """Answers list_namespaced_secret with a raw PartialObjectMetadataList body."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def list_namespaced_secret(self, namespace: str, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(data=json.dumps(self.body).encode())


@pytest.mark.parametrize(
    "body",
    [
        # What the kube-apiserver sends for a namespace without any copy (a nil slice in Go).
        {"kind": "PartialObjectMetadataList", "metadata": {}, "items": None},
        {"kind": "PartialObjectMetadataList", "metadata": {}, "items": []},
        {"kind": "PartialObjectMetadataList", "metadata": {}},
    ],
)
def test_no_copies(body: dict[str, Any]) -> None:
    assert copies_in(cast(Any, FakeCore(body)), "ns") == set()


def test_copies_by_labels() -> None:
    items = [
        {"metadata": {"name": "a", "labels": naming.copy_labels("alice", "k", "owner")}},
        {"metadata": {"name": "b", "labels": {naming.OWNER_LABEL: "bob"}}},
        {"metadata": {"name": "c"}},
    ]
    body = {"items": items}
    assert copies_in(cast(Any, FakeCore(body)), "ns") == {SecretRef("alice", "k")}
