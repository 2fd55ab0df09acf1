"""Leader election on a coordination.k8s.io Lease: one replica reconciles, all serve the webhook.

A Lease (not kopf's peering) because it is what every Kubernetes controller uses, needs only a
namespaced Role on one object, and brings no extra CRD into the cluster.

Expiry is judged as client-go's leaderelection judges it: never by comparing the holder's
`renewTime` with this replica's wall clock (clocks of two nodes differ, and a standby whose
clock runs ahead would take a Lease that is still being renewed), but by how long ago, on this
replica's own monotonic clock, it last saw the Lease's record change. A holder that renews
changes the record; one that stopped leaves it as it was for `leaseDurationSeconds`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from usersecrets.kube import paths
from usersecrets.kube.client import ApiError, KubeApi

logger = logging.getLogger(__name__)


class LeadershipLost(RuntimeError):
    """The Lease could not be renewed in time; another replica may be reconciling now."""


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease's spec says; any change of it is a sign of life of its holder."""

    holder: str | None
    renew_time: str | None
    acquire_time: str | None
    duration_seconds: int
    transitions: int | None


@dataclass(frozen=True)
class Observed:
    """A record, and when (on this replica's monotonic clock) it was first seen as it is."""

    record: LeaseRecord
    since: float


def can_take(observed: Observed, identity: str, now: float) -> bool:
    """Free, ours, or unchanged for its whole duration since this replica first saw it so.

    `now` and `observed.since` are readings of the same monotonic clock: the holder's
    timestamps and this replica's wall clock play no part.
    """
    if observed.record.holder in (None, "", identity):
        return True
    return now >= observed.since + observed.record.duration_seconds


def _micro_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(lease: dict[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity"),
        renew_time=spec.get("renewTime"),
        acquire_time=spec.get("acquireTime"),
        duration_seconds=spec.get("leaseDurationSeconds") or 0,
        transitions=spec.get("leaseTransitions"),
    )


def _wall_clock() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElector:
    """Takes and keeps one Lease; `keep()` raises LeadershipLost when it cannot.

    `clock` (monotonic seconds) judges expiry; `wall` only writes the Lease's timestamps, which
    people and other tools read. Both are parameters so that tests can skew them.
    """

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _wall_clock,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.clock, self.wall = clock, wall
        self.path = f"{paths.leases_in(namespace)}/{name}"
        #: The record as last read or written, and since when it has been so.
        self.observed: Observed | None = None

    def _spec(self, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": acquired,
            "renewTime": _micro_time(self.wall()),
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: dict[str, Any], now: float) -> Observed:
        record = _record(lease)
        if self.observed is None or self.observed.record != record:
            self.observed = Observed(record, now)
        return self.observed

    def try_acquire(self) -> bool:
        """One attempt: create the Lease, or take or renew it when `can_take` allows."""
        now = self.clock()
        try:
            lease = self.api.json("GET", self.path)
        except ApiError as error:
            if error.status != 404:
                raise
            created = _micro_time(self.wall())
            body = {"metadata": {"name": self.name}, "spec": self._spec(created, 0)}
            return self._write("POST", paths.leases_in(self.namespace), body, now)
        if not can_take(self._observe(lease, now), self.identity, now):
            return False
        spec = lease.get("spec") or {}
        ours = spec.get("holderIdentity") == self.identity
        transitions = spec.get("leaseTransitions") or 0
        lease["spec"] = self._spec(
            (spec.get("acquireTime") if ours else None) or _micro_time(self.wall()),
            transitions if ours else transitions + 1,
        )
        # At the resourceVersion read: whoever renewed or took it in between wins.
        return self._write("PUT", self.path, lease, now)

    def _write(self, method: str, path: str, lease: dict[str, Any], now: float) -> bool:
        """Creates or replaces the Lease; False if another replica wrote it first (409)."""
        try:
            written = self.api.json(method, path, body=lease)
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        self._observe(written, now)
        return True

    async def attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire)
        except Exception as error:  # the API may be briefly unreachable
            logger.warning("lease attempt failed: %s", type(error).__name__)
            return False

    async def keep(self) -> None:
        """Renews until cancelled; gives up leadership by raising when renewals keep failing."""
        last = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.renew_seconds)
            now = asyncio.get_running_loop().time()
            if await self.attempt():
                last = now
            elif now - last > self.lease_seconds - self.renew_seconds:
                raise LeadershipLost(f"could not renew Lease {self.namespace}/{self.name}")

    def release(self) -> None:
        """Hands the Lease over at once on a clean shutdown instead of letting it expire."""
        try:
            lease = self.api.json("GET", self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                spec["holderIdentity"] = None
                lease["spec"] = spec
                self.api.call("PUT", self.path, body=lease)
        except ApiError as error:
            logger.warning("could not release the Lease: %s", error.reason)


async def acquire_one(electors: Sequence[LeaderElector]) -> LeaderElector:
    """Waits until one of these Leases is ours, trying each in turn: with shards, a replica
    leads the first shard it finds without a leader, and stands by for all of them."""
    names = ", ".join(elector.name for elector in electors)
    logger.info("waiting to lead through one of the Leases %s", names)
    while True:
        for elector in electors:
            if await elector.attempt():
                logger.info("leading through Lease %s as %s", elector.name, elector.identity)
                return elector
        await asyncio.sleep(min(elector.renew_seconds for elector in electors))
