"""The local control plane is a real one: each test here would fail against a fake."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import policy_webhook
from conftest import bind_user, wait_for
from usersecrets_dev.controlplane import REPO, ControlPlane

pytestmark = pytest.mark.integration


def pinned_release() -> str:
    for line in (REPO / "hack" / "controlplane" / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["k8s.io/kubernetes"]:
            return parts[1]
    raise AssertionError("k8s.io/kubernetes is not pinned in hack/controlplane/go.mod")


def test_version_is_the_pinned_release(cluster: ControlPlane) -> None:
    status, body = cluster.get("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"] == pinned_release()


def test_rbac_denies_bob_until_a_role_binding(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> None:
    alice_ns = user_namespace("alice")
    client.CoreV1Api(admin).create_namespaced_secret(
        alice_ns, client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"})
    )
    bob = client.CoreV1Api(user_client("bob"))
    with pytest.raises(ApiException) as refused:
        bob.read_namespaced_secret("s", alice_ns)
    assert refused.value.status == 403

    # `edit` is an aggregated ClusterRole: its rules come from the aggregation controller.
    bind_user(admin, alice_ns, "bob", "edit")

    def bob_can_read() -> bool:
        try:
            bob.read_namespaced_secret("s", alice_ns)
        except ApiException as error:
            if error.status != 403:
                raise
            return False
        return True

    wait_for(bob_can_read, what="bob's access through the aggregated edit role")


def test_garbage_collector_removes_owned_objects(admin: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(admin)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="child", owner_references=[reference])
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        return not any(
            cm.metadata.name == "child" for cm in core.list_namespaced_config_map(namespace).items
        )

    wait_for(child_gone, what="the garbage collector to delete the child")


def test_namespace_deletion_completes(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.create_namespaced_config_map(
        "doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"))
    )
    core.delete_namespace("doomed")

    def gone() -> bool:
        return "doomed" not in {ns.metadata.name for ns in core.list_namespace().items}

    wait_for(gone, what="the namespace controller to finish deleting the namespace")


def test_job_controller_creates_a_pod(admin: client.ApiClient, namespace: str) -> None:
    container = client.V1Container(name="main", image="busybox", command=["true"])
    client.BatchV1Api(admin).create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="job"),
            spec=client.V1JobSpec(
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(containers=[container], restart_policy="Never")
                )
            ),
        ),
    )
    core = client.CoreV1Api(admin)
    wait_for(
        lambda: core.list_namespaced_pod(namespace, label_selector="job-name=job").items,
        what="the job controller to create a pod",
    )


def test_apiserver_calls_an_https_webhook(admin: client.ApiClient, namespace: str) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    with (
        policy_webhook.serving(lambda _: policy_webhook.refuse("refused by the test webhook")) as (
            port,
            ca_pem,
        ),
        policy_webhook.registered(
            admin,
            f"refuse-{namespace}",
            port,
            ca_pem,
            resource="pods",
            namespace=namespace,
            mutating=True,
        ),
        pytest.raises(ApiException) as refused,
    ):
        client.CoreV1Api(admin).create_namespaced_pod(namespace, pod)
    assert "refused by the test webhook" in refused.value.body


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_nothing_survives_a_crashed_test_process(cluster: ControlPlane, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from usersecrets_dev.controlplane import ControlPlane
        plane = ControlPlane(Path({str(cluster.bin_dir)!r}), Path({str(tmp_path)!r})).start()
        print(plane.port, flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'operator'}:{REPO / 'dev'}"},
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    assert _port_open(port)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    def all_gone() -> bool:
        leftovers = subprocess.run(
            ["pgrep", "-f", str(tmp_path)], check=False, capture_output=True, text=True
        ).stdout.split()
        return not leftovers and not _port_open(port)

    wait_for(all_gone, timeout=20, what="the control plane of a SIGKILLed process to go away")
