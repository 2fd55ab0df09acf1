"""What others push into bob's namespaces never takes his room, and only what he takes comes.

A real ResourceQuota (the resourcequota controller runs in the local control plane) and a
namespace annotation, against the operator running as the chart's ServiceAccount.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kubernetes import client

from conftest import wait_for
from kube import (
    SECRETGRANTS,
    create_grant,
    create_usersecret,
    managed_copies,
    ready_condition,
    wait_copy,
    wait_reason,
)
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration


def test_shared_copies_never_take_the_last_slot_of_a_quota(
    operator: OperatorProcess,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> None:
    suffix = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{suffix}", f"bob-{suffix}"
    home, bobs = user_namespace(alice), user_namespace(bob)
    as_alice, as_bob = user_client(alice), user_client(bob)
    core = client.CoreV1Api(admin)
    core.create_namespaced_resource_quota(
        bobs,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="secrets"),
            spec=client.V1ResourceQuotaSpec(hard={"count/secrets": "3"}),
        ),
    )
    # Counted by the resourcequota controller (a quota not yet counted is taken as full).
    wait_for(
        lambda: (core.read_namespaced_resource_quota("secrets", bobs).status.used or {}).get(
            "count/secrets"
        ),
        what="the quota to be counted",
    )
    for key in ("one", "two", "three"):
        create_usersecret(as_alice, home, key, key.encode())
        create_grant(as_alice, home, key, key, bob)
    wait_reason(as_alice, SECRETGRANTS, home, "one", "Granted", copies=1)
    wait_reason(as_alice, SECRETGRANTS, home, "two", "Granted", copies=1)
    held = wait_reason(as_alice, SECRETGRANTS, home, "three", "CopyFailed", copies=0)
    ready = ready_condition(held)
    assert ready is not None
    assert ready["message"] == (
        "The copy could not be written in 1 namespace (1 namespace of users it is shared with: "
        "its Secret quota (2 of 3 used) keeps its last 1 slot for the user's own Secrets). "
        f"User '{bob}' can use secret://testcluster/{alice}/three in 0 namespaces."
    )
    # bob's own room is still his.
    client.CoreV1Api(as_bob).create_namespaced_secret(
        bobs, client.V1Secret(metadata=client.V1ObjectMeta(name="mine"), string_data={"a": "b"})
    )
    # More room: the held copy comes, without anyone touching the grant.
    core.patch_namespaced_resource_quota(
        "secrets", bobs, {"spec": {"hard": {"count/secrets": "6"}}}
    )
    wait_copy(admin, bobs, alice, "three", b"three", timeout=60)
    wait_reason(as_alice, SECRETGRANTS, home, "three", "Granted", copies=1)


def test_a_namespace_takes_only_the_shares_its_policy_accepts(
    operator: OperatorProcess,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> None:
    suffix = uuid.uuid4().hex[:8]
    alice, bob, carol = f"alice-{suffix}", f"bob-{suffix}", f"carol-{suffix}"
    home, bobs, carols = user_namespace(alice), user_namespace(bob), user_namespace(carol)
    as_alice, as_carol = user_client(alice), user_client(carol)
    client.CoreV1Api(admin).patch_namespace(
        bobs, {"metadata": {"annotations": {"usersecrets.io/accept-shares-from": carol}}}
    )
    create_usersecret(as_alice, home, "k", b"alice's")
    create_grant(as_alice, home, "to-bob", "k", bob)
    create_usersecret(as_carol, carols, "k", b"carol's")
    create_grant(as_carol, carols, "to-bob", "k", bob)
    refused = wait_reason(as_alice, SECRETGRANTS, home, "to-bob", "NotAccepted", copies=0)
    ready = ready_condition(refused)
    assert ready is not None
    assert ready["message"] == (
        f"User '{bob}' can use secret://testcluster/{alice}/k in 0 namespaces (1 namespace of "
        f"theirs does not take shares from '{alice}')"
    )
    wait_reason(as_carol, SECRETGRANTS, carols, "to-bob", "Granted", copies=1)
    wait_copy(admin, bobs, carol, "k", b"carol's")
    assert (bobs, "k") not in managed_copies(admin, alice)
    client.CoreV1Api(admin).patch_namespace(
        bobs, {"metadata": {"annotations": {"usersecrets.io/accept-shares-from": "*"}}}
    )
    wait_copy(admin, bobs, alice, "k", b"alice's")
