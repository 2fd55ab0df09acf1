"""Installing our Helm chart into a local control plane, and running as its ServiceAccount."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from usersecrets_dev.controlplane import REPO, ControlPlane

RELEASE = "usersecrets"
RELEASE_NAMESPACE = "usersecrets-system"
CHART = REPO / "charts" / "usersecrets"


def install_chart(plane: ControlPlane, webhook_port: int, *values: str) -> list[dict[str, Any]]:
    """`helm upgrade --install` of our chart, its webhook pointed at an operator on loopback.

    Pods do not run on this control plane (no kubelet): the chart's objects are what we need,
    above all its RBAC, so that the operator can run here as the chart's ServiceAccount.
    """
    url = f"https://127.0.0.1:{webhook_port}/mutate-pods"
    command = [
        str(plane.bin_dir / "helm"),
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        f"--kubeconfig={plane.kubeconfig}",
        f"--namespace={RELEASE_NAMESPACE}",
        "--create-namespace",
        f"--set=webhook.url={url}",
        *(f"--set={value}" for value in values),
    ]
    subprocess.run(command, check=True, capture_output=True)
    manifest = subprocess.run(
        [
            str(plane.bin_dir / "helm"),
            "get",
            "manifest",
            RELEASE,
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={RELEASE_NAMESPACE}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


UI_COMPONENT = "ui"


def component(obj: dict[str, Any]) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return str(labels.get("app.kubernetes.io/component", ""))


def operator_object(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The operator's object of `kind` (not the web UI's, when the chart has that on)."""
    return next(o for o in objects if o["kind"] == kind and component(o) != UI_COMPONENT)


def ui_object(objects: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and component(o) == UI_COMPONENT), None)


def chart_identity(plane: ControlPlane, objects: list[dict[str, Any]]) -> Path:
    """A kubeconfig with a TokenRequest token of the chart's ServiceAccount."""
    account = operator_object(objects, "ServiceAccount")["metadata"]["name"]
    kubectl = [str(plane.bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
    token = subprocess.run(
        [
            *kubectl,
            "create",
            "token",
            account,
            f"--namespace={RELEASE_NAMESPACE}",
            "--duration=24h",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return plane.token_kubeconfig(f"{RELEASE_NAMESPACE}-{account}", token)


def chart_environment(
    objects: list[dict[str, Any]], deployment: dict[str, Any] | None = None
) -> dict[str, str]:
    """The settings exactly as the chart's Deployment (by default the operator's) sets them."""
    deployment = deployment or operator_object(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {env["name"]: env["value"] for env in container.get("env", []) if "value" in env}


def helm(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """helm on our release's namespace; raises with helm's own words when it fails."""
    command = [
        str(plane.bin_dir / "helm"),
        f"--kubeconfig={plane.kubeconfig}",
        f"--namespace={RELEASE_NAMESPACE}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, command, result.stdout, result.stderr[-3000:]
        )
    return result


def uninstall_chart(plane: ControlPlane, hooks: bool = False) -> None:
    """`helm uninstall` of our release, waiting until its objects are gone. Without `hooks`
    the copies stay: the uninstall hook's Job cannot run where no node runs pods."""
    helm(plane, "uninstall", RELEASE, "--wait", *([] if hooks else ["--no-hooks"]))


def lease_holder(plane: ControlPlane) -> str | None:
    """Who holds the operator's leader Lease (the chart's name for it), if anyone."""
    status, body = plane.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{RELEASE_NAMESPACE}/leases/{RELEASE}-leader"
    )
    if status != 200:
        return None
    holder: str | None = json.loads(body).get("spec", {}).get("holderIdentity")
    return holder


def default_image() -> str:
    """The image the chart's defaults run: `image.repository:appVersion`."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
