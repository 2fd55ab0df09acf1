"""Two shards, each a replica of the chart installed with `shards=2`, running as its identity.

The test switches the session's cluster from one leader to two, with objects made before the
switch, and back. Which shard an owner is in is worked out here from the documented hash
(`fakes.slot`: sha256 of the name, its first 4 bytes modulo 64; even slots are shard 0's).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from conftest import wait_for
from fakes import copy_name, slot
from kube import (
    SECRETGRANTS,
    USERSECRETS,
    create_grant,
    create_usersecret,
    custom,
    get_object,
    metric,
    read_copy,
    set_value,
    wait_copy,
    wait_reason,
)
from usersecrets import GROUP, VERSION
from usersecrets_dev.chart import RELEASE_NAMESPACE, install_chart
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

SLOT = "usersecrets.io/slot"


def user_in_shard(shard: int, name: str) -> str:
    """A fresh user name whose slot is in `shard` of two."""
    suffix = uuid.uuid4().hex[:6]
    names = (f"{name}-{suffix}{i}" for i in itertools.count())
    return next(user for user in names if int(slot(user)) % 2 == shard)


def leading(process: OperatorProcess) -> bool:
    try:
        return metric(process.metrics_port, "usersecrets_leader") == 1
    except OSError:
        return False


def lease_holders(admin: client.ApiClient) -> dict[str, str]:
    leases = client.CoordinationV1Api(admin).list_namespaced_lease(RELEASE_NAMESPACE).items
    return {lease.metadata.name: lease.spec.holder_identity for lease in leases}


def lease_of(admin: client.ApiClient, replica: OperatorProcess) -> str:
    """The Lease this replica holds."""
    assert replica.process is not None
    suffix = f"-{replica.process.pid}"
    return next(
        name for name, holder in lease_holders(admin).items() if (holder or "").endswith(suffix)
    )


def existing_copy(admin: client.ApiClient, namespace: str, owner: str, key: str) -> client.V1Secret:
    """The copy of (owner, key) in `namespace`, which the test expects there."""
    copy = read_copy(admin, namespace, owner, key)
    assert copy is not None, f"no copy of {owner}/{key} in {namespace}"
    return copy


def slot_of_object(admin: client.ApiClient, namespace: str, name: str) -> str | None:
    labels = get_object(admin, USERSECRETS, namespace, name)["metadata"].get("labels") or {}
    return labels.get(SLOT)


@pytest.fixture
def two_shards(
    cluster: ControlPlane, operator: OperatorProcess
) -> Iterator[Callable[[], list[OperatorProcess]]]:
    """When called, stops the session's operator and starts two replicas with `shards=2`;
    after the test, the session's operator alone again."""
    started: list[OperatorProcess] = []

    def start() -> list[OperatorProcess]:
        operator.stop()
        values = [*operator.values, "shards=2", "replicaCount=2"]
        # Each constructor points the chart's webhooks at its own replica: the second one wins.
        started.extend(OperatorProcess(cluster, name=f"shard-{i}", values=values) for i in (0, 1))
        for replica in started:
            replica.start()
        return started

    try:
        yield start
    finally:
        for replica in started:
            replica.stop()  # SIGTERM: each hands its Lease back
        install_chart(cluster, operator.webhook_port, *operator.values)
        if operator.process is None:
            operator.start()
        wait_for(lambda: leading(operator), timeout=40, what="the session's operator to lead")


@pytest.mark.slow
def test_two_shards_share_the_owners_and_a_namespace_takes_its_secrets_to_its_new_owner(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    operator: OperatorProcess,
    two_shards: Callable[[], list[OperatorProcess]],
) -> None:
    core = client.CoreV1Api(admin)
    alice, bob = user_in_shard(1, "alice"), user_in_shard(0, "bob")
    alices, bobs = user_namespace(alice), user_namespace(bob)
    as_alice, as_bob = user_client(alice), user_client(bob)

    # Under one leader, before shards: a secret shared with bob, with no slot of its own.
    create_usersecret(as_alice, alices, "before", b"v1")
    create_grant(as_alice, alices, "before-to-bob", "before", bob)
    wait_copy(admin, bobs, alice, "before", b"v1")
    assert slot_of_object(admin, alices, "before") is None
    # A copy as an older version wrote it, without a slot (the operator stopped, or it would
    # put the label back).
    operator.stop()
    core.patch_namespaced_secret(
        copy_name(alice, "before"), bobs, {"metadata": {"labels": {SLOT: None}}}
    )
    uids = {ns: existing_copy(admin, ns, alice, "before").metadata.uid for ns in (alices, bobs)}

    shards = two_shards()
    wait_for(lambda: all(map(leading, shards)), timeout=60, what="both shards to lead")
    leases = [lease_of(admin, replica) for replica in shards]
    assert sorted(leases) == ["usersecrets-leader-0-of-2", "usersecrets-leader-1-of-2"]

    # What came before is labelled with its owner's slot, and kept: no copy went or came back.
    wait_for(
        lambda: slot_of_object(admin, alices, "before") == slot(alice),
        what="the UserSecret from before shards to have its owner's slot",
    )
    wait_for(
        lambda: (
            (existing_copy(admin, bobs, alice, "before").metadata.labels or {}).get(SLOT)
            == slot(alice)
        ),
        what="the copy from before slots to have one",
    )
    assert {ns: existing_copy(admin, ns, alice, "before").metadata.uid for ns in uids} == uids
    set_value(as_alice, alices, "before", b"v2")
    wait_copy(admin, bobs, alice, "before", b"v2")

    # A new one has its owner's slot from the webhook as it is written; its shard makes its
    # copies and writes its statuses, and the other shard's leader never touches it.
    created = create_usersecret(as_bob, bobs, "fresh", b"bobs")
    assert created["metadata"]["labels"] == {SLOT: slot(bob)}
    create_grant(as_bob, bobs, "fresh-to-alice", "fresh", alice)
    wait_copy(admin, alices, bob, "fresh", b"bobs")
    wait_reason(admin, USERSECRETS, bobs, "fresh", "Materialized", copies=2)
    wait_reason(admin, SECRETGRANTS, bobs, "fresh-to-alice", "Granted", copies=1)
    logs = {
        lease: r.log.read_text(errors="replace") for lease, r in zip(leases, shards, strict=True)
    }
    assert f"secret {bob}/fresh:" in logs["usersecrets-leader-0-of-2"]
    assert f"secret {bob}/fresh:" not in logs["usersecrets-leader-1-of-2"]
    assert f"secret {alice}/before:" in logs["usersecrets-leader-1-of-2"]

    # A slot set by hand to the other shard's: that shard sends it back. (Meanwhile its own
    # shard saw it go, and its copies with it: only its owner can do this to it.)
    custom(as_alice).patch_namespaced_custom_object(
        GROUP, VERSION, alices, USERSECRETS, "before", {"metadata": {"labels": {SLOT: slot(bob)}}}
    )
    wait_for(
        lambda: slot_of_object(admin, alices, "before") == slot(alice),
        what="a UserSecret labelled for another shard to be sent back to its owner's",
    )
    wait_copy(admin, bobs, alice, "before", b"v2")
    wait_reason(admin, USERSECRETS, alices, "before", "Materialized", copies=2)

    # A namespace that changes hands takes its secrets to the new owner's shard.
    moving = user_namespace(alice)
    create_usersecret(as_alice, moving, "moving", b"m")
    wait_copy(admin, alices, alice, "moving", b"m")
    core.patch_namespace(moving, {"metadata": {"labels": {"usersecrets.io/user": bob}}})
    wait_for(
        lambda: slot_of_object(admin, moving, "moving") == slot(bob),
        what="the UserSecret to move to its namespace's new owner's slot",
    )
    wait_copy(admin, bobs, bob, "moving", b"m")
    wait_copy(admin, moving, bob, "moving", b"m")
    wait_copy(admin, alices, alice, "moving", None)
    wait_copy(admin, moving, alice, "moving", None)
