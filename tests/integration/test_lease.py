"""Leader election on the real apiserver with two electors, one of whose wall clocks is skewed.

The electors are the operator's own `LeaderElector`, talking to the real apiserver as admin;
only their wall clocks differ. The Lease lasts 2 s so that the takeover is quick; nothing here
depends on how fast the machine is: each step that must not take the Lease happens right
after that elector has seen the record change.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

import pytest
from kubernetes import client

from conftest import wait_for
from usersecrets.kube.client import from_kubeconfig
from usersecrets.kube.lease import LeaderElector
from usersecrets_dev.controlplane import ControlPlane

pytestmark = pytest.mark.integration

LEASE = "skewed-election"
SECONDS = 2


def skewed(by: datetime.timedelta) -> Callable[[], datetime.datetime]:
    return lambda: datetime.datetime.now(datetime.UTC) + by


def test_a_standby_an_hour_ahead_waits_for_the_leader_to_stop_renewing(
    admin: client.ApiClient, cluster: ControlPlane, namespace: str
) -> None:
    api, _ = from_kubeconfig(str(cluster.kubeconfig), None)
    leader = LeaderElector(api, namespace, LEASE, "on-time", lease_seconds=SECONDS)
    ahead = LeaderElector(
        api,
        namespace,
        LEASE,
        "an-hour-ahead",
        lease_seconds=SECONDS,
        wall=skewed(datetime.timedelta(hours=1)),
    )
    leases = client.CoordinationV1Api(admin)

    assert leader.try_acquire()
    # Its renewTime is an hour in the standby's past: the old rule took the Lease here.
    assert not ahead.try_acquire()
    for _ in range(3):
        assert leader.try_acquire()
        assert not ahead.try_acquire()
    assert leases.read_namespaced_lease(LEASE, namespace).spec.holder_identity == "on-time"

    # The leader stops renewing: the standby takes over once the record has stood still for
    # the Lease's duration on its own clock, counted from when it last saw it change.
    last_change_seen = time.monotonic()
    wait_for(ahead.try_acquire, timeout=SECONDS + 15, interval=0.1, what="the takeover")
    assert time.monotonic() - last_change_seen >= SECONDS
    lease = leases.read_namespaced_lease(LEASE, namespace).spec
    assert lease.holder_identity == "an-hour-ahead"
    assert lease.lease_transitions == 1
    in_the_future = lease.renew_time - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=59) < in_the_future <= datetime.timedelta(hours=1)

    # The replica on time sees a renewTime an hour ahead; it waits for the record to stand
    # still, not for that hour, and takes it back once the new holder stops renewing.
    assert ahead.try_acquire()
    assert not leader.try_acquire()
    wait_for(leader.try_acquire, timeout=SECONDS + 15, interval=0.1, what="the takeback")
    assert leases.read_namespaced_lease(LEASE, namespace).spec.holder_identity == "on-time"
