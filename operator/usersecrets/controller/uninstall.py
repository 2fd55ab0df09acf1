"""`usersecrets-operator delete-copies`: what the chart's uninstall hook runs.

Once the operator is gone nobody revokes a share any more: a grantee would keep a usable copy
that deleting the SecretGrant no longer removes. The hook deletes every copy instead. It first
takes the leader Lease (every shard's) for good, so that no replica still shutting down writes a
copy again.
"""

from __future__ import annotations

import logging
import socket
import time

from usersecrets.kube import paths
from usersecrets.kube.client import ApiError, KubeApi
from usersecrets.kube.lease import LeaderElector
from usersecrets.rules import naming
from usersecrets.rules.sharding import all_shards
from usersecrets.settings import Settings

logger = logging.getLogger(__name__)
#: Held by the hook until it deletes the Lease: longer than any shutdown of a replica.
HOLD_SECONDS = 3600


def _delete(api: KubeApi, path: str) -> None:
    try:
        api.call("DELETE", path)
    except ApiError as error:
        if error.status != 404:
            raise


def delete_copies(api: KubeApi, settings: Settings, poll_seconds: float = 1.0) -> int:
    """Deletes every Secret labelled as ours in every namespace; returns how many."""
    leases = [shard.lease_name(settings.lease_name) for shard in all_shards(settings.shards)]
    identity = f"uninstall-{socket.gethostname()}"
    waiting = [
        LeaderElector(api, settings.operator_namespace, lease, identity, HOLD_SECONDS)
        for lease in leases
    ]
    while waiting := [elector for elector in waiting if not elector.try_acquire()]:
        time.sleep(poll_seconds)
    deleted = 0
    query: dict[str, str] = {"labelSelector": naming.MANAGED_SELECTOR, "limit": "500"}
    while True:
        listed = api.json("GET", paths.SECRETS, query=query)
        for item in listed.get("items") or []:
            meta = item["metadata"]
            _delete(api, f"{paths.secrets_in(meta['namespace'])}/{meta['name']}")
            deleted += 1
        token = (listed.get("metadata") or {}).get("continue")
        if not token:
            break
        query = {**query, "continue": token}
    _delete(api, f"{paths.secrets_in(settings.operator_namespace)}/{settings.webhook_cert_secret}")
    for lease in leases:
        _delete(api, f"{paths.leases_in(settings.operator_namespace)}/{lease}")
    logger.info("deleted %d copies", deleted)
    return deleted
