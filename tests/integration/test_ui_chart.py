"""The chart's web UI (`ui.enabled`): its objects accepted by the apiserver, a ServiceAccount
that may do nothing more than any unbound ServiceAccount (asked with `kubectl auth can-i`),
and a pod that the Pod Security "restricted" level admits."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import create_namespace, delete_namespace
from usersecrets_dev import chart
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

UI_VALUES = (
    "--set=ui.enabled=true",
    "--set=ui.ingress.enabled=true",
    "--set=ui.ingress.host=secrets.example.com",
    "--set=ui.ingress.className=nginx",
    "--set=ui.ingress.tls[0].secretName=ui-tls",
    "--set=ui.ingress.tls[0].hosts[0]=secrets.example.com",
    "--set=ui.ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/auth-url=https://auth/oauth2/auth",
)


def run(cluster: ControlPlane, tool: str, *args: str, check: bool = True) -> Any:
    result = subprocess.run(
        [str(cluster.bin_dir / tool), *args], capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        pytest.fail(f"{tool} {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result


def render(cluster: ControlPlane, namespace: str, *values: str) -> list[dict[str, Any]]:
    out = run(
        cluster, "helm", "template", "uitest", str(chart.CHART), f"--namespace={namespace}", *values
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def ui_objects(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs if chart.component(d) == chart.UI_COMPONENT}


def test_ui_objects_are_accepted_by_the_apiserver(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    docs = render(cluster, namespace, *UI_VALUES)
    ui = ui_objects(docs)
    assert sorted(ui) == ["Deployment", "Ingress", "Service", "ServiceAccount"]
    path = tmp_path / "ui.yaml"
    path.write_text(yaml.safe_dump_all(list(ui.values())))
    result = run(
        cluster,
        "kubectl",
        f"--kubeconfig={cluster.kubeconfig}",
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        str(path),
    )
    assert result.stdout.count("(server dry run)") == 4, result.stdout
    assert "Warning" not in result.stderr, result.stderr
    # No selector of the operator's matches a UI pod, and the reverse.
    operator = chart.operator_object(docs, "Deployment")
    ui_labels = ui["Deployment"]["spec"]["template"]["metadata"]["labels"]
    operator_selector = operator["spec"]["selector"]["matchLabels"]
    assert not operator_selector.items() <= ui_labels.items()
    # Nothing in the release binds the UI's ServiceAccount to anything.
    account = ui["ServiceAccount"]["metadata"]["name"]
    for doc in docs:
        for subject in doc.get("subjects") or []:
            assert subject.get("name") != account, doc["metadata"]["name"]
    pod = ui["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert ui["ServiceAccount"]["automountServiceAccountToken"] is False
    rule = ui["Ingress"]["spec"]["rules"][0]
    assert rule["host"] == "secrets.example.com"
    assert ui["Ingress"]["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/auth-url": "https://auth/oauth2/auth"
    }


def test_an_ingress_without_a_host_is_refused(cluster: ControlPlane) -> None:
    result = run(
        cluster,
        "helm",
        "template",
        "x",
        str(chart.CHART),
        "--set=ui.enabled=true",
        "--set=ui.ingress.enabled=true",
        check=False,
    )
    assert result.returncode != 0
    assert "ui.ingress.enabled needs ui.ingress.host" in result.stderr


def test_the_ui_is_off_by_default(cluster: ControlPlane) -> None:
    assert ui_objects(render(cluster, "x")) == {}


def can_i_list(cluster: ControlPlane, namespace: str, account: str) -> str:
    """`kubectl auth can-i --list` as `account`, with a token of its own (TokenRequest)."""
    admin = f"--kubeconfig={cluster.kubeconfig}"
    token = run(cluster, "kubectl", admin, "create", "token", account, "-n", namespace).stdout
    kubeconfig = cluster.token_kubeconfig(f"{namespace}-{account}", token.strip())
    answer = run(
        cluster,
        "kubectl",
        f"--kubeconfig={kubeconfig}",
        "auth",
        "can-i",
        "--list",
        "-n",
        "usersecrets-system",
    ).stdout
    return "\n".join(sorted(set(answer.splitlines())))


def test_the_ui_service_account_may_do_nothing_an_unbound_one_may_not(
    cluster: ControlPlane, operator: OperatorProcess, admin: client.ApiClient
) -> None:
    """The `operator` fixture's release has the UI on, and its RBAC is in the cluster. What the
    UI's ServiceAccount may do there is compared with a ServiceAccount nobody bound to anything.
    (Other tests upgrade the release with values of their own, so the account is applied again
    from the fixture's manifest: nothing binds it either way, see the test above.)"""
    account = chart.ui_object(operator.objects, "ServiceAccount")
    assert account is not None
    name = account["metadata"]["name"]
    body = {k: v for k, v in account.items() if k != "metadata"}
    body["metadata"] = {"name": name, "labels": account["metadata"]["labels"]}
    try:
        client.CoreV1Api(admin).create_namespaced_service_account(chart.RELEASE_NAMESPACE, body)
    except ApiException as error:
        if error.status != 409:
            raise
    ui_can = can_i_list(cluster, chart.RELEASE_NAMESPACE, name)
    bare_ns = create_namespace(admin)
    try:
        client.CoreV1Api(admin).create_namespaced_service_account(
            bare_ns, {"metadata": {"name": "nobody"}}
        )
        assert ui_can == can_i_list(cluster, bare_ns, "nobody")
    finally:
        delete_namespace(admin, bare_ns)
    resources = sorted(
        line.split()[0] for line in ui_can.splitlines() if line and not line.startswith(("[", " "))
    )
    assert resources == [
        "Resources",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
    ]
    admin_kubeconfig = f"--kubeconfig={cluster.kubeconfig}"
    who = f"--as=system:serviceaccount:{chart.RELEASE_NAMESPACE}:{name}"
    for question in (
        ("get", "secrets", "-A"),
        ("list", "usersecrets.usersecrets.io", "-A"),
        ("create", "pods", "-n", "default"),
        ("create", "serviceaccounts/token", "-n", chart.RELEASE_NAMESPACE),
        ("impersonate", "users"),
    ):
        answer = run(
            cluster, "kubectl", admin_kubeconfig, "auth", "can-i", *question, who, check=False
        )
        assert answer.stdout.strip() == "no", question


def test_the_ui_pod_meets_pod_security_restricted(
    cluster: ControlPlane, operator: OperatorProcess, admin: client.ApiClient
) -> None:
    deployment = chart.ui_object(operator.objects, "Deployment")
    assert deployment is not None
    template = deployment["spec"]["template"]
    namespace = create_namespace(admin, {"pod-security.kubernetes.io/enforce": "restricted"})
    core = client.CoreV1Api(admin)
    try:
        account = {"metadata": {"name": template["spec"]["serviceAccountName"]}}
        core.create_namespaced_service_account(namespace, account)
        pod = {
            "metadata": {"generateName": "ui-", "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }
        core.create_namespaced_pod(namespace, pod, dry_run="All")
        # The check can fail: the same pod without its security context is refused.
        loose = yaml.safe_load(yaml.safe_dump(pod))
        del loose["spec"]["containers"][0]["securityContext"]
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(namespace, loose, dry_run="All")
        assert refused.value.status == 403
        message = json.loads(refused.value.body)["message"]
        assert 'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false' in (
            message
        )
    finally:
        delete_namespace(admin, namespace)
