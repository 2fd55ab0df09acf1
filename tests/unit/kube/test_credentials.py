"""Finding the apiserver and the credentials as kubectl would, without its client package."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from usersecrets.kube.credentials import (
    CredentialsError,
    UnknownContext,
    from_kubeconfig,
    in_cluster,
    in_cluster_server,
)
from usersecrets.webhook.certificates import issue_certificate, new_ca


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(
    path: Path, user: dict[str, Any], current: str | None = "c", name: str = "c"
) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                **({"current-context": current} if current else {}),
                "clusters": [{"name": name, "cluster": {"server": f"https://{name}.example:6443"}}],
                "users": [{"name": name, "user": user}],
                "contexts": [
                    {"name": name, "context": {"cluster": name, "user": name, "namespace": "alice"}}
                ],
            }
        )
    )
    return path


def test_a_client_certificate_inline_or_in_files(tmp_path: Path) -> None:
    ca = new_ca("test-ca")
    cert = issue_certificate(ca, common_name="alice", client=True)
    inline = {"client-certificate-data": b64(cert.cert_pem), "client-key-data": b64(cert.key_pem)}
    found = from_kubeconfig(str(kubeconfig(tmp_path / "one", inline)))
    assert (found.server, found.namespace, found.headers()) == (
        "https://c.example:6443",
        "alice",
        {},
    )
    (tmp_path / "crt").write_bytes(cert.cert_pem)
    (tmp_path / "key").write_bytes(cert.key_pem)
    files = {"client-certificate": "crt", "client-key": "key"}  # relative to the kubeconfig
    assert from_kubeconfig(str(kubeconfig(tmp_path / "two", files))).headers() == {}
    with pytest.raises(CredentialsError, match="cannot read client-certificate"):
        from_kubeconfig(
            str(kubeconfig(tmp_path / "three", {"client-certificate": "nope", "client-key": "key"}))
        )


def test_a_token_or_a_token_file(tmp_path: Path) -> None:
    found = from_kubeconfig(str(kubeconfig(tmp_path / "one", {"token": "t0k3n"})))
    assert found.headers() == {"Authorization": "Bearer t0k3n"}
    (tmp_path / "token").write_text("from-a-file\n")
    found = from_kubeconfig(str(kubeconfig(tmp_path / "two", {"tokenFile": "token"})))
    assert found.headers() == {"Authorization": "Bearer from-a-file"}


def test_an_exec_plugin_is_run_once_until_its_credential_expires(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plugin = tmp_path / "plugin.sh"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "exec-token", "expirationTimestamp": "2999-01-01T00:00:00Z"},
    }
    plugin.write_text(f"#!/bin/sh\necho run >> {runs}\necho '{json.dumps(credential)}'\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}
    found = from_kubeconfig(str(kubeconfig(tmp_path / "c", {"exec": spec})))
    assert found.headers() == {"Authorization": "Bearer exec-token"}
    assert found.headers() == {"Authorization": "Bearer exec-token"}
    assert runs.read_text() == "run\n"
    failing = tmp_path / "failing.sh"
    failing.write_text("#!/bin/sh\necho 'no login' >&2\nexit 1\n")
    failing.chmod(failing.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(CredentialsError, match="failed: no login"):
        from_kubeconfig(str(kubeconfig(tmp_path / "d", {"exec": {"command": str(failing)}})))


def test_kubeconfig_files_merge_as_kubectl_merges_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "first", {"token": "first"}, current=None, name="a")
    second = kubeconfig(tmp_path / "second", {"token": "second"}, current="a", name="a")
    kubeconfig(tmp_path / "third", {"token": "third"}, current="b", name="b")
    monkeypatch.setenv(
        "KUBECONFIG", os.pathsep.join([str(first), str(second), str(tmp_path / "third")])
    )
    found = from_kubeconfig()
    assert found.headers() == {"Authorization": "Bearer first"}  # the first to name "a"
    assert from_kubeconfig(context="b").headers() == {"Authorization": "Bearer third"}


def test_what_cannot_be_used_says_why(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "c", {"token": "t"})
    with pytest.raises(UnknownContext, match="Context 'nope' not found in the kubeconfig"):
        from_kubeconfig(str(config), "nope")
    provider = kubeconfig(tmp_path / "p", {"auth-provider": {"name": "oidc"}})
    with pytest.raises(CredentialsError, match="auth-provider plugins are not supported"):
        from_kubeconfig(str(provider))
    none = kubeconfig(tmp_path / "n", {"token": "t"}, current=None)
    with pytest.raises(CredentialsError, match="names no current context"):
        from_kubeconfig(str(none))


def test_in_a_pod_the_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = new_ca("cluster-ca")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("usersecrets-system")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert in_cluster(tmp_path) is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    found = in_cluster(tmp_path)
    assert found is not None
    assert (found.server, found.namespace) == ("https://10.0.0.1:443", "usersecrets-system")
    assert found.headers() == {"Authorization": "Bearer sa-token"}


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
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, None),
        ({"KUBERNETES_SERVICE_PORT": "443"}, None),
        ({}, None),
    ],
)
def test_in_a_pod_the_server_comes_from_its_variables(
    environ: dict[str, str], server: str | None
) -> None:
    """Where kopf's login goes too (it would ask DNS for kubernetes.default.svc, which the
    chart's apiServer.host is there to avoid)."""
    assert in_cluster_server(environ) == server
