"""Leader election on a coordination.k8s.io Lease: one replica reconciles, all serve the webhook.

A Lease (not kopf's peering) because it is what every Kubernetes controller uses, needs only a
namespaced Role on one object, and brings no extra CRD into the cluster.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.rest import ApiException

logger = logging.getLogger(__name__)


class LeadershipLost(RuntimeError):
    """The Lease could not be renewed in time; another replica may be reconciling now."""


@dataclass(frozen=True)
class LeaseState:
    holder: str | None
    renewed: datetime.datetime | None
    duration_seconds: int


def can_take(state: LeaseState, identity: str, now: datetime.datetime) -> bool:
    """Free, ours, or expired: a holder that stopped renewing has given it up."""
    if state.holder in (None, "", identity) or state.renewed is None:
        return True
    return now >= state.renewed + datetime.timedelta(seconds=state.duration_seconds)


def _state(lease: client.V1Lease) -> LeaseState:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseState(
        holder=spec.holder_identity,
        renewed=spec.renew_time or spec.acquire_time,
        duration_seconds=spec.lease_duration_seconds or 0,
    )


class LeaderElector:
    """Takes and keeps one Lease; `keep()` raises LeadershipLost when it cannot."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds

    def _spec(self, now: datetime.datetime, acquired: datetime.datetime) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.lease_seconds,
            acquire_time=acquired,
            renew_time=now,
        )

    def try_acquire(self) -> bool:
        """One attempt: create the Lease, or take or renew it when `can_take` allows."""
        now = datetime.datetime.now(datetime.UTC)
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name), spec=self._spec(now, now)
            )
            try:
                self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            return True
        state = _state(lease)
        if not can_take(state, self.identity, now):
            return False
        acquired = lease.spec.acquire_time if state.holder == self.identity else now
        lease.spec = self._spec(now, acquired or now)
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:  # someone else renewed or took it in between
                return False
            raise
        return True

    async def acquire(self) -> None:
        logger.info("waiting to lead through Lease %s/%s", self.namespace, self.name)
        while not await self._attempt():
            await asyncio.sleep(self.renew_seconds)
        logger.info("leading as %s", self.identity)

    async def _attempt(self) -> bool:
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
            if await self._attempt():
                last = now
            elif now - last > self.lease_seconds - self.renew_seconds:
                raise LeadershipLost(f"could not renew Lease {self.namespace}/{self.name}")

    def release(self) -> None:
        """Hands the Lease over at once on a clean shutdown instead of letting it expire."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            logger.warning("could not release the Lease: %s", error.reason)
