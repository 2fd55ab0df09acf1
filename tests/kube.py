"""Small helpers shared by integration tests: UserSecrets, SecretGrants and their copies."""

from __future__ import annotations

import base64
import hashlib
import http.client
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import wait_for
from fakes import copy_name
from usersecrets import GROUP, VERSION

USERSECRETS = "usersecrets"
SECRETGRANTS = "secretgrants"


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def usersecret_body(
    key: str, value: bytes | None = None, source: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A UserSecret named `key`: inline `value`, or `source` = (Secret name, data key)."""
    spec: dict[str, Any] = {}
    if value is not None:
        spec["value"] = b64(value)
    if source is not None:
        spec["valueFrom"] = {"secretKeyRef": {"name": source[0], "key": source[1]}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UserSecret",
        "metadata": {"name": key},
        "spec": spec,
    }


def create_usersecret(
    api: client.ApiClient,
    namespace: str,
    key: str,
    value: bytes | None = None,
    source: tuple[str, str] | None = None,
) -> dict[str, Any]:
    created: dict[str, Any] = custom(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, USERSECRETS, usersecret_body(key, value, source)
    )
    return created


def set_value(api: client.ApiClient, namespace: str, key: str, value: bytes) -> None:
    custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, USERSECRETS, key, {"spec": {"value": b64(value)}}
    )


def create_grant(
    api: client.ApiClient, namespace: str, name: str, secret_name: str, user: str
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SecretGrant",
        "metadata": {"name": name},
        "spec": {"secretName": secret_name, "user": user},
    }
    created: dict[str, Any] = custom(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SECRETGRANTS, body
    )
    return created


def get_object(api: client.ApiClient, plural: str, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return found


def delete_object(api: client.ApiClient, plural: str, namespace: str, name: str) -> None:
    custom(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            found: dict[str, Any] = condition
            return found
    return None


def wait_reason(
    api: client.ApiClient,
    plural: str,
    namespace: str,
    name: str,
    reason: str,
    timeout: float = 30.0,
    **status: Any,
) -> dict[str, Any]:
    """Waits until the object's Ready condition has `reason` and its status has `status`."""

    def matches() -> dict[str, Any] | None:
        obj = get_object(api, plural, namespace, name)
        condition = ready_condition(obj)
        if condition is None or condition.get("reason") != reason:
            return None
        if condition.get("observedGeneration") != obj["metadata"].get("generation"):
            return None
        current = obj.get("status") or {}
        if any(current.get(field) != value for field, value in status.items()):
            return None
        return obj

    found = wait_for(
        matches, timeout=timeout, what=f"{plural} {namespace}/{name} to be {reason} {status}"
    )
    assert isinstance(found, dict)
    return found


def read_copy(
    api: client.ApiClient, namespace: str, owner: str, key: str
) -> client.V1Secret | None:
    try:
        secret: client.V1Secret = client.CoreV1Api(api).read_namespaced_secret(
            copy_name(owner, key), namespace
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return secret


def copy_value(api: client.ApiClient, namespace: str, owner: str, key: str) -> bytes | None:
    secret = read_copy(api, namespace, owner, key)
    if secret is None:
        return None
    return base64.b64decode((secret.data or {}).get("value", ""))


def wait_copy(
    api: client.ApiClient,
    namespace: str,
    owner: str,
    key: str,
    value: bytes | None,
    timeout: float = 30.0,
) -> None:
    """Waits until the copy of (owner, key) in `namespace` holds `value` (None: is absent)."""
    wait_for(
        lambda: copy_value(api, namespace, owner, key) == value,
        timeout=timeout,
        what=f"the copy of {owner}/{key} in {namespace} to be "
        + ("absent" if value is None else "current"),
    )


def managed_copies(api: client.ApiClient, owner: str) -> dict[tuple[str, str], str]:
    """Every copy of `owner`'s secrets in the cluster: (namespace, key) -> sha256 of the value."""
    secrets = client.CoreV1Api(api).list_secret_for_all_namespaces(
        label_selector=f"app.kubernetes.io/managed-by=usersecrets,usersecrets.io/owner={owner}"
    )
    return {
        (s.metadata.namespace, s.metadata.labels["usersecrets.io/key"]): hashlib.sha256(
            base64.b64decode((s.data or {}).get("value", ""))
        ).hexdigest()
        for s in secrets.items
    }


def objects(api: client.ApiClient, namespace: str, plural: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = custom(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, plural
    )["items"]
    return found


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready, for the object's current generation."""
    status = obj.get("status") or {}
    generation = obj["metadata"]["generation"]
    return status.get("observedGeneration") == generation and any(
        c["type"] == "Ready" and c["status"] == "True" and c.get("observedGeneration") == generation
        for c in status.get("conditions") or []
    )


def wait_converged(
    api: client.ApiClient,
    owner: str,
    values: Mapping[tuple[str, str], bytes],
    timeout: float,
    what: str,
) -> dict[tuple[str, str], str]:
    """Waits until `owner`'s copies in the whole cluster are exactly `values`, by (namespace,
    key): none missing, none stale, none left over. Returns them as `managed_copies` gives
    them, for checking that they stay so."""
    expected = {where: hashlib.sha256(value).hexdigest() for where, value in values.items()}
    wait_for(
        lambda: managed_copies(api, owner) == expected,
        timeout=timeout,
        interval=0.25,
        what=f"exactly {len(expected)} current copies {what}",
    )
    return expected


def settled(
    api: client.ApiClient, namespace: str, plural: str, expected: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Whether the objects of `plural` in `namespace` are those named in `expected`, no more,
    each Ready for its current generation with the status fields `expected` gives it."""
    found = objects(api, namespace, plural)
    return sorted(o["metadata"]["name"] for o in found) == sorted(expected) and all(
        is_ready(o)
        and all(o["status"].get(field) == value for field, value in expected[name].items())
        for o in found
        if (name := o["metadata"]["name"])
    )


def events_of(api: client.ApiClient, namespace: str, name: str) -> list[client.CoreV1Event]:
    events: list[client.CoreV1Event] = (
        client.CoreV1Api(api)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )
    return events


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text: str = response.read().decode()
        return text


def metric(port: int, name: str) -> float | None:
    """The value of an unlabelled metric on an operator's metrics port, None if it has none."""
    for line in scrape(port).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def webhook_ca(api: client.ApiClient) -> str:
    """The CA the webhooks serve under: the operator's self-managed bundle."""
    secret = client.CoreV1Api(api).read_namespaced_secret(
        "usersecrets-webhook-tls", "usersecrets-system"
    )
    return base64.b64decode(secret.data["ca.crt"]).decode()


def post_review(
    port: int, ca: str, body: bytes, path: str = "/mutate-pods", timeout: float = 10.0
) -> tuple[int, bytes]:
    """POSTs `body` to an operator's webhook over HTTPS, exactly as given (path included)."""
    context = ssl.create_default_context(cadata=ca)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def probe_status(port: int, path: str) -> int | None:
    """The HTTP status of a probe's GET on the metrics port, or None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def webhook_healthy(port: int, ca: str) -> bool:
    context = ssl.create_default_context(cadata=ca)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
