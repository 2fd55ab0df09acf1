"""Faults under the operator: kill -9 mid-burst, an apiserver and etcd restart, two replicas.

The expected state is computed here from what the test did, never by the operator's code: a copy
of each live UserSecret in each of its owner's namespaces and, while granted, in the grantee's,
holding the current value; nothing else labelled as ours; no finalizer; every status Ready for
the current generation.

A killed replica leaves its Lease held: a replica takes it once it has seen the record stand
still for 15 s on its own clock (whatever its renewTime says, as client-go judges it). There is
no setting to shorten that, so instead of waiting in each round the test releases the dead
holder's Lease, as a clean shutdown would have; the restarted operator takes it at once. The
takeover of a Lease that stopped being renewed is shown by the two-replica test here and by
test_lease.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import CLUSTER_NAME, wait_for
from kube import (
    SECRETGRANTS,
    USERSECRETS,
    create_grant,
    create_usersecret,
    delete_object,
    managed_copies,
    metric,
    objects,
    post_review,
    probe_status,
    set_value,
    settled,
    wait_converged,
    wait_copy,
    webhook_ca,
    webhook_healthy,
)
from usersecrets.settings import Settings
from usersecrets_dev import pods
from usersecrets_dev.chart import RELEASE_NAMESPACE, install_chart
from usersecrets_dev.controlplane import ControlPlane, ControlPlaneError
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

#: The values the session's `operator` fixture installs the chart with.
CHART_VALUES = (f"clusterName={CLUSTER_NAME}", "logLevel=DEBUG")
LEASE = "usersecrets-leader"
LEADER = "usersecrets_leader"
QUEUE_DEPTH = "usersecrets_work_queue_depth"

ROUNDS = 20
KEYS = 8


@pytest.fixture
def restartable(operator: OperatorProcess, admin: client.ApiClient) -> Iterator[OperatorProcess]:
    """The session's operator, running and leading again after the test, whatever happened."""
    yield operator
    if operator.process is None or operator.process.poll() is not None:
        operator.process = None
        expire_lease(admin)
        operator.start()
    wait_leading(operator)


def leading(process: OperatorProcess) -> bool:
    try:
        return metric(process.metrics_port, LEADER) == 1
    except OSError:
        return False


def wait_leading(process: OperatorProcess, timeout: float = 40.0) -> None:
    wait_for(lambda: leading(process), timeout=timeout, what="the operator to lead")


def expire_lease(admin: client.ApiClient) -> None:
    """Frees the Lease of a dead holder, without waiting for the next one to see it expire."""
    leases = client.CoordinationV1Api(admin)
    try:
        lease = leases.read_namespaced_lease(LEASE, RELEASE_NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return
        raise
    lease.spec.holder_identity = None
    leases.replace_namespaced_lease(LEASE, RELEASE_NAMESPACE, lease)


def lease_holder(admin: client.ApiClient) -> str:
    lease = client.CoordinationV1Api(admin).read_namespaced_lease(LEASE, RELEASE_NAMESPACE)
    holder: str = lease.spec.holder_identity or ""
    return holder


def no_operator_metadata(meta: dict[str, Any]) -> bool:
    """No finalizer, and none of kopf's bookkeeping annotations (which could hold a spec)."""
    annotations = meta.get("annotations") or {}
    return not meta.get("finalizers") and not any("kopf" in name for name in annotations)


def retrying(call: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """`call()` until it does not raise: the apiserver may just have come back."""

    def attempt() -> Any:
        try:
            return call() or True
        except (ApiException, OSError, urllib3.exceptions.HTTPError):
            return None

    return wait_for(attempt, timeout=timeout, interval=0.5, what=what)


# -- kill -9 during bursts ------------------------------------------------------------------


def webhook_down(error: ApiException) -> bool:
    """The apiserver could not call our validating webhook: no replica answered."""
    return error.status == 500 and "failed calling webhook" in str(error.body or "")


@pytest.mark.slow
def test_kill_9_at_random_moments_during_bursts_converges_exactly(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    restartable: OperatorProcess,
) -> None:
    seed = int(os.environ.get("USERSECRETS_FAULT_SEED", random.randrange(2**32)))  # noqa: S311
    print(f"USERSECRETS_FAULT_SEED={seed}")
    rng = random.Random(seed)  # noqa: S311  (reproducible fault timing, not cryptography)
    alice, bob = users("alice"), users("bob")
    home, other = user_namespace(alice), user_namespace(alice)
    bobs = user_namespace(bob)
    as_alice = user_client(alice)
    prefix = f"f{uuid.uuid4().hex[:6]}"
    keys = [f"{prefix}-{i}" for i in range(KEYS)]
    values: dict[str, bytes] = {}
    granted: set[str] = set()
    done: Counter[str] = Counter()
    kills: Counter[str] = Counter()

    def grant_name(key: str) -> str:
        return f"g-{key}"

    def one_operation() -> None:
        key = rng.choice(keys)
        if key not in values:
            values[key] = f"{key}-{uuid.uuid4().hex}".encode()
            create_usersecret(as_alice, home, key, values[key])
            done["create"] += 1
            return
        draw = rng.random()
        if draw < 0.4:
            values[key] = f"{key}-{uuid.uuid4().hex}".encode()
            set_value(as_alice, home, key, values[key])
            done["update"] += 1
        elif draw < 0.75 and key not in granted:
            # A grant is checked by the validating webhook, which fails closed while the only
            # replica is down: then it did not happen (a user would try again later).
            try:
                create_grant(as_alice, home, grant_name(key), key, bob)
            except ApiException as error:
                if not webhook_down(error):
                    raise
                done["grant refused while down"] += 1
                return
            granted.add(key)
            done["grant"] += 1
        elif draw < 0.75:
            delete_object(as_alice, SECRETGRANTS, home, grant_name(key))
            granted.discard(key)
            done["revoke"] += 1
        else:
            if key in granted:  # a grant of a deleted secret could never be Ready
                delete_object(as_alice, SECRETGRANTS, home, grant_name(key))
                granted.discard(key)
                done["revoke"] += 1
            delete_object(as_alice, USERSECRETS, home, key)
            del values[key]
            done["delete"] += 1

    def kill() -> None:
        process = restartable.process
        assert process is not None
        kills["while leading" if leading(restartable) else "before leading"] += 1
        process.send_signal(signal.SIGKILL)

    def reap() -> None:
        assert restartable.process is not None
        assert restartable.process.wait(timeout=10) == -signal.SIGKILL
        restartable.process = None
        expire_lease(admin)

    started = time.monotonic()
    for round_ in range(ROUNDS):
        wait_leading(restartable)
        timer = threading.Timer(rng.uniform(0, 0.3), kill)
        timer.start()
        for _ in range(rng.randint(10, 20)):
            one_operation()
        timer.join()
        reap()
        if round_ % 4 == 3:
            # Every fourth round also kills the next process while it starts: importing,
            # taking the Lease, loading the world, or just after.
            timer = threading.Timer(rng.uniform(0.3, 2.0), kill)
            timer.start()
            with contextlib.suppress(ControlPlaneError):  # killed before it was ready
                restartable.start()
            timer.join()
            reap()
        restartable.start()
    print(
        f"{ROUNDS} rounds, {sum(kills.values())} kill -9 ({dict(kills)}), "
        f"{sum(done.values())} operations ({dict(done)}) in {time.monotonic() - started:.1f}s"
    )
    assert sum(kills.values()) == ROUNDS + ROUNDS // 4

    copies = {
        (namespace, key): value
        for key, value in values.items()
        for namespace in [home, other] + ([bobs] if key in granted else [])
    }
    expected = wait_converged(admin, alice, copies, timeout=60, what=f"after {ROUNDS} kills")
    # alice's namespaces by name; bob's only counted.
    secrets = {
        key: {"namespaces": sorted([home, other]), "copies": 3 if key in granted else 2}
        for key in values
    }
    grants = {grant_name(key): {"copies": 1} for key in granted}
    wait_for(
        lambda: (
            settled(as_alice, home, USERSECRETS, secrets)
            and settled(as_alice, home, SECRETGRANTS, grants)
        ),
        timeout=30,
        interval=0.25,
        what="every status Ready and current",
    )
    assert managed_copies(admin, alice) == expected  # and it stays so
    for obj in objects(as_alice, home, USERSECRETS) + objects(as_alice, home, SECRETGRANTS):
        assert no_operator_metadata(obj["metadata"]), obj["metadata"]
    copies = client.CoreV1Api(admin).list_secret_for_all_namespaces(
        label_selector=f"app.kubernetes.io/managed-by=usersecrets,usersecrets.io/owner={alice}"
    )
    for copy in copies.items:
        assert no_operator_metadata(admin.sanitize_for_serialization(copy.metadata))
    wait_for(lambda: metric(restartable.metrics_port, QUEUE_DEPTH) == 0, what="an empty work queue")


# -- kube-apiserver and etcd restart ----------------------------------------------------------


def review_allowed(port: int, ca: str, namespace: str, env: str) -> bool | None:
    """The webhook's answer for a pod asking for `env`; None when it did not answer."""
    review = pods.review(namespace, pods.pod(env=env))
    try:
        status, body = post_review(port, ca, json.dumps(review).encode())
    except OSError:
        return None
    assert status == 200, body
    allowed: bool = json.loads(body)["response"]["allowed"]
    return allowed


@pytest.mark.slow
def test_apiserver_and_etcd_restart_under_the_running_operator(
    cluster: ControlPlane,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    restartable: OperatorProcess,
) -> None:
    alice = users("alice")
    home, other = user_namespace(alice), user_namespace(alice)
    as_alice = user_client(alice)
    before, after = f"before-{uuid.uuid4().hex[:6]}", f"after-{uuid.uuid4().hex[:6]}"
    create_usersecret(as_alice, home, before, b"v1")
    wait_copy(admin, other, alice, before, b"v1")
    wait_leading(restartable)
    process = restartable.process
    assert process is not None

    started = time.monotonic()
    cluster.restart("etcd", "kube-apiserver")
    print(f"etcd and kube-apiserver down and back in {time.monotonic() - started:.1f}s")

    # Changes made after the restart, with fresh clients (the old connections are gone).
    as_alice = user_client(alice)
    retrying(lambda: set_value(as_alice, home, before, b"v2"), "an update after the restart")
    retrying(lambda: create_usersecret(as_alice, home, after, b"new"), "a create after it")
    for namespace in (home, other):
        wait_copy(admin, namespace, alice, before, b"v2", timeout=60)
        wait_copy(admin, namespace, alice, after, b"new", timeout=60)
    # The same process did it: it reconnected by itself, nobody restarted it.
    assert restartable.process is process
    assert process.poll() is None
    assert leading(restartable)
    ca = webhook_ca(admin)
    wait_for(
        lambda: review_allowed(restartable.webhook_port, ca, home, f"X=secret:{after}"),
        what="the webhook to admit a pod using the secret made after the restart",
    )


def test_after_sigterm_the_webhook_answers_until_the_process_ends(
    restartable: OperatorProcess, admin: client.ApiClient
) -> None:
    """Not ready at once, so the Service stops sending admissions here; still answering those
    already on their way for the shutdown delay; then the port closes and the process exits."""
    ca = webhook_ca(admin)
    wait_leading(restartable)
    process = restartable.process
    assert process is not None
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    wait_for(
        lambda: probe_status(restartable.metrics_port, "/readyz") != 200,
        timeout=5,
        what="/readyz to fail",
    )
    answered = signalled
    while webhook_healthy(restartable.webhook_port, ca) and time.monotonic() < signalled + 30:
        answered = time.monotonic()
        time.sleep(0.1)
    assert answered - signalled >= Settings().shutdown_delay_seconds - 0.5
    assert process.wait(timeout=30) == 0
    restartable.process = None  # the fixture starts it again


# -- two replicas ---------------------------------------------------------------------------


@pytest.mark.slow
def test_two_replicas_one_leads_both_answer_and_the_standby_takes_over(
    cluster: ControlPlane,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    restartable: OperatorProcess,
) -> None:
    first = restartable
    alice = users("alice")
    home = user_namespace(alice)
    as_alice = user_client(alice)
    shared = f"both-{uuid.uuid4().hex[:6]}"
    create_usersecret(as_alice, home, shared, b"either replica")
    wait_copy(admin, home, alice, shared, b"either replica")
    wait_leading(first)

    # Its constructor points the chart's webhook at it; the finally restores the first one.
    second = OperatorProcess(cluster, name="operator-b", values=CHART_VALUES)
    try:
        second.start()
        assert metric(second.metrics_port, LEADER) == 0
        ca = webhook_ca(admin)
        for replica in (first, second):
            assert review_allowed(replica.webhook_port, ca, home, f"X=secret:{shared}") is True
            assert review_allowed(replica.webhook_port, ca, home, "X=secret:nope") is False

        # Only the leader reconciles: a new secret is materialized, and only the first
        # replica's log tells of it.
        only_first = f"first-{uuid.uuid4().hex[:6]}"
        create_usersecret(as_alice, home, only_first, b"by the leader")
        wait_copy(admin, home, alice, only_first, b"by the leader")
        wait_for(
            lambda: f"secret {alice}/{only_first}:" in first.log.read_text(errors="replace"),
            what="the leader's log to tell of the new copy",
        )
        assert f"{alice}/{only_first}" not in second.log.read_text(errors="replace")
        assert metric(second.metrics_port, LEADER) == 0
        assert metric(first.metrics_port, LEADER) == 1
        assert first.process is not None
        assert lease_holder(admin).endswith(f"-{first.process.pid}")

        # The leader dies without a word: the standby takes over once the Lease expires.
        killed = time.monotonic()
        first.stop(kill=True)
        after = f"after-{uuid.uuid4().hex[:6]}"
        create_usersecret(as_alice, home, after, b"by the new leader")
        wait_copy(admin, home, alice, after, b"by the new leader", timeout=40)
        took = time.monotonic() - killed
        print(f"the standby took over and materialized a new secret {took:.1f}s after kill -9")
        assert took < 30
        assert metric(second.metrics_port, LEADER) == 1
        assert second.process is not None
        assert lease_holder(admin).endswith(f"-{second.process.pid}")
        assert f"secret {alice}/{after}:" in second.log.read_text(errors="replace")
        assert review_allowed(second.webhook_port, ca, home, f"X=secret:{after}") is True
    finally:
        second.stop()  # SIGTERM: it hands the Lease back
        install_chart(cluster, first.webhook_port, *CHART_VALUES)
        if first.process is None:
            first.start()
    wait_leading(first, timeout=30)
