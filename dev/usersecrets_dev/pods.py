"""Pods that ask for user secrets, and the AdmissionReviews that carry them to the webhook: one
builder for the unit tests, the integration tests and the bench, written out as the
apiserver sends them (never built with the operator's own code)."""

from __future__ import annotations

import uuid
from typing import Any

VOLUMES = "usersecrets.io/volumes"
ENV = "usersecrets.io/env"
CONTAINERS = "usersecrets.io/containers"


def asking(
    volumes: str | None = None, env: str | None = None, containers: str | None = None
) -> dict[str, str]:
    """The annotations a pod asks with; those given as None are left out."""
    found = {VOLUMES: volumes, ENV: env, CONTAINERS: containers}
    return {name: value for name, value in found.items() if value is not None}


def unique_name() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def pod(
    *,
    env: str | None = None,
    volumes: str | None = None,
    name: str = "p",
    asks: dict[str, Any] | None = None,
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod whose annotations ask for `env` and `volumes` (and whatever `asks` adds), with one
    busybox container "main" unless `containers` says otherwise; `spec` adds to its spec."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {**asking(volumes, env), **(asks or {})}},
        "spec": {"containers": containers or [{"name": "main", "image": "busybox"}], **spec},
    }


def review(namespace: object, obj: object, **request: Any) -> dict[str, Any]:
    """An AdmissionReview of the CREATE of `obj` in `namespace`, with a fresh uid; `request`
    adds fields to the request or replaces them."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": obj,
            **request,
        },
    }
