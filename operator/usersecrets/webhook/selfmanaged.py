"""Self-managed certificates: the webhook's CA and certificate in a Secret, and the caBundle.

Without cert-manager, the replicas share one bundle in a Secret of the operator's namespace,
rotate it before it expires, and write its CA into our MutatingWebhookConfiguration. Blocking
API calls: run these in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from usersecrets.kube import paths
from usersecrets.kube.client import JSON_PATCH, ApiError, KubeApi
from usersecrets.settings import Settings
from usersecrets.webhook.certificates import Bundle, is_consistent, issue_bundle, needs_rotation
from usersecrets.webhook.tls import CA_FILE, CERT_FILE, KEY_FILE, load_pair

log = logging.getLogger(__name__)


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the kube-apiserver may use for a Service-backed webhook."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _describe(error: Exception) -> str:
    # An ApiError's text carries the response body; status and reason are enough.
    if isinstance(error, ApiError):
        return f"HTTP {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bundle_from_secret(secret: Mapping[str, Any]) -> Bundle | None:
    data = secret.get("data") or {}
    try:
        return Bundle(
            ca_pem=base64.b64decode(data[CA_FILE]),
            cert_pem=base64.b64decode(data[CERT_FILE]),
            key_pem=base64.b64decode(data[KEY_FILE]),
        )
    except (KeyError, ValueError, TypeError):
        return None


def _secret_body(
    settings: Settings, bundle: Bundle, secret_type: str, resource_version: str | None = None
) -> dict[str, Any]:
    # Deliberately not labelled managed-by=usersecrets: that selector means "a materialized
    # copy", which the reconciler deletes when it is not desired.
    metadata: dict[str, Any] = {
        "name": settings.webhook_cert_secret,
        "namespace": settings.operator_namespace,
        "labels": {
            "app.kubernetes.io/name": "usersecrets",
            "app.kubernetes.io/component": "webhook",
        },
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret_type,
        "data": {
            CA_FILE: _b64(bundle.ca_pem),
            CERT_FILE: _b64(bundle.cert_pem),
            KEY_FILE: _b64(bundle.key_pem),
        },
    }


def ensure_bundle(
    core: KubeApi,
    settings: Settings,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    now: datetime,
    attempts: int = 5,
) -> Bundle:
    """The webhook's bundle from its Secret, created or rotated as needed.

    Writes are optimistic (create, or replace at the resourceVersion we read), so when replicas
    race exactly one wins and the others adopt its bundle on the re-read.
    """
    name, namespace = settings.webhook_cert_secret, settings.operator_namespace
    names = [*dns_names, *ip_addresses]
    path = f"{paths.secrets_in(namespace)}/{name}"
    for _ in range(attempts):
        try:
            secret = core.json("GET", path)
        except ApiError as error:
            if error.status != 404:
                raise
            bundle = issue_bundle(dns_names, ip_addresses, now)
            try:
                core.call(
                    "POST",
                    paths.secrets_in(namespace),
                    body=_secret_body(settings, bundle, "kubernetes.io/tls"),
                )
            except ApiError as error:
                if error.status == 409:  # another replica created it first: use theirs
                    continue
                raise
            log.info("created webhook certificate Secret %s/%s", namespace, name)
            return bundle
        current = _bundle_from_secret(secret)
        if (
            current is not None
            and is_consistent(current)
            and not needs_rotation(current.cert_pem, now, names)
        ):
            return current
        bundle = issue_bundle(dns_names, ip_addresses, now, previous=current)
        body = _secret_body(
            settings,
            bundle,
            secret.get("type") or "kubernetes.io/tls",  # type is immutable; keep what exists
            resource_version=secret["metadata"]["resourceVersion"],
        )
        try:
            core.call("PUT", path, body=body)
        except ApiError as error:
            if error.status == 409:  # another replica rotated first: use theirs
                continue
            raise
        log.info("rotated webhook certificate in Secret %s/%s", namespace, name)
        return bundle
    raise RuntimeError(f"webhook certificate Secret {namespace}/{name} kept changing under us")


def patch_ca_bundle(api: KubeApi, settings: Settings, ca_pem: bytes) -> bool:
    """Make every webhook of our configurations (mutating for pods, validating for UserSecrets
    and grants; one name) trust `ca_pem`; True when something changed."""
    changed = [
        _patch_one(api, paths.webhook_configuration(settings.webhook_config_name, kind), ca_pem)
        for kind in paths.WEBHOOK_CONFIGURATIONS
    ]
    return any(changed)


def _patch_one(api: KubeApi, path: str, ca_pem: bytes) -> bool:
    """A JSON patch that first tests each webhook's name, so a concurrent edit of the list fails
    the patch instead of putting the bundle on the wrong entry."""
    wanted = _b64(ca_pem)
    for _ in range(3):
        try:
            config = api.json("GET", path)
        except ApiError as error:
            if error.status != 404:
                raise
            log.warning("%s not found; caBundle not set", path)
            return False
        ops: list[dict[str, Any]] = []
        for i, hook in enumerate(config.get("webhooks") or []):
            if (hook.get("clientConfig") or {}).get("caBundle") != wanted:
                ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook["name"]})
                ops.append(
                    {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": wanted}
                )
        if not ops:
            return False
        try:
            api.call("PATCH", path, body=ops, content_type=JSON_PATCH)
        except ApiError as error:
            if error.status in (409, 422):  # the list changed under us: look again
                continue
            raise
        log.info("updated the caBundle of %s", path)
        return True
    raise RuntimeError(f"{path} kept changing under us")


def refresh_self_managed(
    core: KubeApi,
    settings: Settings,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
) -> Bundle:
    """One full pass of the self-managed mode: the bundle, and the apiserver trusting it."""
    bundle = ensure_bundle(core, settings, dns_names, ip_addresses, datetime.now(UTC))
    patch_ca_bundle(core, settings, bundle.ca_pem)
    return bundle


async def keep_bundle_current(
    context: ssl.SSLContext,
    refresh: Callable[[], Bundle],
    current: Bundle,
    interval: float = 3600.0,
) -> None:
    """Every `interval`, run `refresh` (blocking; in a thread) and serve what it returns if it
    changed. Errors are logged and retried next time: the served certificate has a third of its
    lifetime left when rotation starts. Runs until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            bundle = await asyncio.to_thread(refresh)
            if bundle.cert_pem != current.cert_pem:
                load_pair(context, bundle.cert_pem, bundle.key_pem)
                current = bundle
                log.info("webhook now serves the rotated certificate")
        except Exception as error:
            log.warning("webhook certificate check failed (%s); retrying later", _describe(error))
