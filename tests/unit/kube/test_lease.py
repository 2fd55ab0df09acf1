"""When a replica may take the Lease: judged on its own monotonic clock, as client-go does.

The electors run against an in-memory Lease that keeps resourceVersions as the apiserver does
(a PUT at a stale one is a 409), with a clock and a wall clock of their own each, so that a
replica's wall clock can be skewed against the other's.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
from dataclasses import dataclass, field
from typing import Any, cast

from fakes import FakeApi, Request, refusal
from usersecrets.kube.client import KubeApi
from usersecrets.kube.lease import LeaderElector, LeaseRecord, Observed, acquire_one, can_take

NAMESPACE, NAME = "usersecrets-system", "usersecrets-leader"
PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{NAME}"
WALL = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def record(holder: str | None, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder, "2026-11-28T12:00:00.000000Z", None, duration, 0)


def test_free_or_ours_at_once() -> None:
    assert can_take(Observed(record(None), since=100.0), "me", 100.0)
    assert can_take(Observed(record(""), since=100.0), "me", 100.0)
    assert can_take(Observed(record("me"), since=100.0), "me", 100.0)


def test_another_holder_once_unchanged_for_its_duration_since_seen() -> None:
    assert not can_take(Observed(record("other"), since=100.0), "me", 114.999)
    assert can_take(Observed(record("other"), since=100.0), "me", 115.0)
    assert not can_take(Observed(record("other", duration=60), since=100.0), "me", 159.0)


@dataclass
class LeaseServer:
    """One Lease, stored as the apiserver stores it: created once, replaced at its version."""

    lease: dict[str, Any] | None = None
    version: int = 0
    puts: list[dict[str, Any]] = field(default_factory=list)
    path: str = PATH

    def answer(self, request: Request) -> Any:
        if request.method == "GET" and request.path == self.path:
            if self.lease is None:
                raise refusal(404)
            return copy.deepcopy(self.lease)
        if request.method == "POST" and request.path == self.path.rsplit("/", 1)[0]:
            if self.lease is not None:
                raise refusal(409)
            return self._store(request.body)
        if request.method == "PUT" and request.path == self.path:
            assert self.lease is not None
            if (
                request.body["metadata"]["resourceVersion"]
                != self.lease["metadata"]["resourceVersion"]
            ):
                raise refusal(409)
            self.puts.append(copy.deepcopy(request.body["spec"]))
            return self._store(request.body)
        raise AssertionError(f"unexpected {request.method} {request.path}")

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    @property
    def holder(self) -> str | None:
        assert self.lease is not None
        holder: str | None = self.lease["spec"]["holderIdentity"]
        return holder


@dataclass
class Replica:
    """A process with clocks of its own: monotonic seconds, and a wall clock `skew` off."""

    server: LeaseServer
    identity: str
    skew: datetime.timedelta = datetime.timedelta(0)
    monotonic: float = 1000.0
    elector: LeaderElector = field(init=False)

    def __post_init__(self) -> None:
        api = cast(KubeApi, FakeApi(self.server.answer))
        self.elector = LeaderElector(
            api, NAMESPACE, NAME, self.identity, clock=lambda: self.monotonic, wall=self.wall
        )

    def wall(self) -> datetime.datetime:
        return WALL + datetime.timedelta(seconds=self.monotonic - 1000.0) + self.skew

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds


def test_a_standby_whose_clock_runs_ahead_never_takes_a_lease_being_renewed() -> None:
    """The bug: the standby saw renewTime + 15 s in its past and took the Lease from a live
    leader. Now the leader's renewals, every 5 s for ten minutes, keep it off."""
    server = LeaseServer()
    leader = Replica(server, "leader")
    standby = Replica(server, "standby", skew=datetime.timedelta(hours=1))
    assert leader.elector.try_acquire()
    for _ in range(120):
        assert not standby.elector.try_acquire()
        for replica in (leader, standby):
            replica.advance(5)
        assert leader.elector.try_acquire()
    assert server.holder == "leader"


def test_a_standby_whose_clock_runs_behind_takes_over_on_time() -> None:
    """The other skew: a wall clock an hour behind would have waited an hour past the leader's
    death. On its own monotonic clock it waits the Lease's duration from the last change."""
    server = LeaseServer()
    leader = Replica(server, "leader")
    standby = Replica(server, "standby", skew=-datetime.timedelta(hours=1), monotonic=50.0)
    assert leader.elector.try_acquire()
    assert not standby.elector.try_acquire()
    standby.advance(5)
    leader.advance(5)
    assert leader.elector.try_acquire()  # the leader's last renewal; then it dies
    assert not standby.elector.try_acquire()  # sees the change: 15 s from now
    standby.advance(14.9)
    assert not standby.elector.try_acquire()
    standby.advance(0.1)
    assert standby.elector.try_acquire()
    assert server.holder == "standby"


def test_a_new_replica_waits_a_whole_duration_whatever_the_renew_time_says() -> None:
    """A replica that has just started cannot tell how long the record has been as it is, so
    it waits the whole duration, as client-go does, even for a renewTime an hour old."""
    server = LeaseServer()
    dead = Replica(server, "dead", skew=-datetime.timedelta(hours=1))
    assert dead.elector.try_acquire()
    newcomer = Replica(server, "newcomer", monotonic=7.0)
    assert not newcomer.elector.try_acquire()
    newcomer.advance(14.5)
    assert not newcomer.elector.try_acquire()
    newcomer.advance(0.5)
    assert newcomer.elector.try_acquire()


def test_a_released_lease_is_taken_at_once() -> None:
    server = LeaseServer()
    leader, standby = Replica(server, "leader"), Replica(server, "standby")
    assert leader.elector.try_acquire()
    assert not standby.elector.try_acquire()
    leader.elector.release()
    assert server.holder is None
    assert standby.elector.try_acquire()
    assert server.holder == "standby"


def test_the_lease_records_the_holder_its_wall_clock_and_each_transition() -> None:
    server = LeaseServer()
    first, second = Replica(server, "first"), Replica(server, "second")
    assert first.elector.try_acquire()
    assert server.lease is not None
    assert server.lease["spec"] == {
        "holderIdentity": "first",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-28T12:00:00.000000Z",
        "renewTime": "2026-11-28T12:00:00.000000Z",
        "leaseTransitions": 0,
    }
    first.advance(5)
    assert first.elector.try_acquire()
    assert server.puts[-1] == {
        "holderIdentity": "first",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-28T12:00:00.000000Z",
        "renewTime": "2026-11-28T12:00:05.000000Z",
        "leaseTransitions": 0,
    }
    assert not second.elector.try_acquire()
    second.advance(15)
    assert second.elector.try_acquire()
    assert server.puts[-1] == {
        "holderIdentity": "second",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-28T12:00:15.000000Z",
        "renewTime": "2026-11-28T12:00:15.000000Z",
        "leaseTransitions": 1,
    }


def test_who_renews_or_takes_first_wins_the_race() -> None:
    """Both read the same version; the second PUT is a 409 and that replica does not lead."""
    server = LeaseServer()
    a, b = Replica(server, "a"), Replica(server, "b")
    assert a.elector.try_acquire()
    a.advance(20)
    b.advance(20)
    assert not b.elector.try_acquire()  # first sight of the record
    b.advance(15)
    stale = copy.deepcopy(server.lease)
    assert a.elector.try_acquire()  # the holder renews first
    assert stale is not None
    assert server.version == 2
    # b read the record before a's renewal: its PUT at that version is refused.
    original = server.answer

    def stale_get(request: Request) -> Any:
        if request.method == "GET":
            return copy.deepcopy(stale)
        return original(request)

    b.elector.api = cast(KubeApi, FakeApi(stale_get))
    assert not b.elector.try_acquire()
    assert server.holder == "a"


def test_with_shards_a_replica_leads_the_first_shard_without_a_leader() -> None:
    servers = [LeaseServer(path=f"{PATH}-{shard}") for shard in (0, 1)]

    def electors(identity: str) -> list[LeaderElector]:
        return [
            LeaderElector(
                cast(KubeApi, FakeApi(server.answer)), NAMESPACE, f"{NAME}-{shard}", identity
            )
            for shard, server in enumerate(servers)
        ]

    first = asyncio.run(acquire_one(electors("first")))
    second = asyncio.run(acquire_one(electors("second")))
    assert (first.name, second.name) == (f"{NAME}-0", f"{NAME}-1")
    assert [server.holder for server in servers] == ["first", "second"]
