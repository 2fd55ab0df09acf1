"""Leader election on a coordination.k8s.io Lease: one replica reconciles, all serve the webhook.

A Lease (not kopf's peering) because it is what every Kubernetes controller uses, needs only a
namespaced Role on one object, and brings no extra CRD into the cluster.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import ApiException

from usersecrets.kube import paths
from usersecrets.kube.client import KubeApi

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


def _time(value: object) -> datetime.datetime | None:
    """A MicroTime as the apiserver writes it, or None."""
    try:
        return datetime.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _micro_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _state(lease: dict[str, Any]) -> LeaseState:
    spec = lease.get("spec") or {}
    return LeaseState(
        holder=spec.get("holderIdentity"),
        renewed=_time(spec.get("renewTime")) or _time(spec.get("acquireTime")),
        duration_seconds=spec.get("leaseDurationSeconds") or 0,
    )


class LeaderElector:
    """Takes and keeps one Lease; `keep()` raises LeadershipLost when it cannot."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.path = f"{paths.leases_in(namespace)}/{name}"

    def _spec(self, now: datetime.datetime, acquired: str) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": acquired,
            "renewTime": _micro_time(now),
        }

    def try_acquire(self) -> bool:
        """One attempt: create the Lease, or take or renew it when `can_take` allows."""
        now = datetime.datetime.now(datetime.UTC)
        try:
            lease = self.api.json("GET", self.path)
        except ApiException as error:
            if error.status != 404:
                raise
            body = {"metadata": {"name": self.name}, "spec": self._spec(now, _micro_time(now))}
            try:
                self.api.call("POST", paths.leases_in(self.namespace), body=body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            return True
        state = _state(lease)
        if not can_take(state, self.identity, now):
            return False
        ours = state.holder == self.identity
        acquired = (lease.get("spec") or {}).get("acquireTime") if ours else None
        lease["spec"] = self._spec(now, acquired or _micro_time(now))
        try:  # at the resourceVersion read: whoever renewed or took it in between wins
            self.api.call("PUT", self.path, body=lease)
        except ApiException as error:
            if error.status == 409:
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
            lease = self.api.json("GET", self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                spec["holderIdentity"] = None
                lease["spec"] = spec
                self.api.call("PUT", self.path, body=lease)
        except ApiException as error:
            logger.warning("could not release the Lease: %s", error.reason)
