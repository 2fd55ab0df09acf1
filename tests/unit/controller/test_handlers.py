"""kopf's login in a pod goes where the rest of the operator goes: KUBERNETES_SERVICE_HOST/PORT."""

from __future__ import annotations

import pytest

from usersecrets.controller.handlers import in_cluster_server

DEFAULT = "https://kubernetes.default.svc"


@pytest.mark.parametrize(
    ("environ", "server"),
    [
        (
            {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            "https://10.96.0.1:443",
        ),
        (
            {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"},
            "https://[fd00::1]:6443",
        ),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, DEFAULT),
        ({"KUBERNETES_SERVICE_PORT": "443"}, DEFAULT),
        ({}, DEFAULT),
    ],
)
def test_the_server_comes_from_the_pods_variables(environ: dict[str, str], server: str) -> None:
    assert in_cluster_server(environ, DEFAULT) == server
