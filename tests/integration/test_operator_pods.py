"""The operator as pods on the node: the chart with its defaults and the image built here.

The session's operator (a local process) and its release make way for this module's release
and come back after it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import CLUSTER_NAME, NODE_TOLERATION, wait_for
from kube import create_grant, create_usersecret, managed_copies, wait_copy
from pods import REPORT, digest, job_body, kubectl_exec, name, run_job
from usersecrets_dev import images
from usersecrets_dev.chart import (
    CHART,
    RELEASE,
    RELEASE_NAMESPACE,
    default_image,
    helm,
    lease_holder,
)
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.node import Node
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
SELECTOR = "app.kubernetes.io/name=usersecrets"


@pytest.fixture(scope="module")
def release(
    cluster: ControlPlane, node: Node, operator: OperatorProcess, admin: client.ApiClient
) -> Iterator[client.CoreV1Api]:
    """`helm install` with the chart's defaults but three: the cluster's name, where pods reach
    the apiserver (no kube-proxy here), and the test node's toleration."""
    archive = images.operator_image(default_image(), node.root / "images" / "operator.tar")
    node.import_image(archive)
    core = client.CoreV1Api(admin)
    operator.uninstall()
    core.patch_namespace(RELEASE_NAMESPACE, {"metadata": {"labels": RESTRICTED}})
    try:
        helm(
            cluster,
            "install",
            RELEASE,
            str(CHART),
            f"--set=clusterName={CLUSTER_NAME}",
            f"--set=apiServer.host={cluster.address}",
            f"--set=apiServer.port={cluster.port}",
            f"--set-json=tolerations=[{json.dumps(NODE_TOLERATION)}]",
            "--wait",
            "--timeout=5m",
        )
        yield core
    finally:
        if RELEASE in helm(cluster, "list", "--short").stdout.split():
            helm(cluster, "uninstall", RELEASE, "--wait", "--timeout=5m")
        unlabel = {"metadata": {"labels": dict.fromkeys(RESTRICTED)}}
        core.patch_namespace(RELEASE_NAMESPACE, unlabel)
        operator.reinstall()


def operator_pods(core: client.CoreV1Api) -> list[client.V1Pod]:
    pods: list[client.V1Pod] = core.list_namespaced_pod(
        RELEASE_NAMESPACE, label_selector=SELECTOR
    ).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_two_replicas_of_the_image_built_here_are_ready_through_their_probes(
    release: client.CoreV1Api,
    cluster: ControlPlane,
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
) -> None:
    # One of them leads and reconciles (kopf included) before their restarts are counted.
    holder = wait_for(lambda: lease_holder(cluster), timeout=60, what="a leader")
    assert isinstance(holder, str)
    assert any(holder.startswith(f"{p.metadata.name}-") for p in operator_pods(release))
    alice = users("alice")
    namespace, api = user_namespace(alice), user_client(alice)
    create_usersecret(api, namespace, "first", b"reconciled")
    wait_copy(api, namespace, alice, "first", b"reconciled", timeout=60)
    pods = operator_pods(release)
    assert len(pods) == 2
    for pod in pods:
        assert ready(pod)
        container = pod.spec.containers[0]
        assert container.image == default_image()
        assert container.readiness_probe.http_get.path == "/readyz"
        assert container.liveness_probe.http_get.path == "/healthz"
        status = pod.status.container_statuses[0]
        if status.restart_count:
            log = release.read_namespaced_pod_log(
                pod.metadata.name, RELEASE_NAMESPACE, previous=True, tail_lines=30
            )
            pytest.fail(
                f"{pod.metadata.name} restarted {status.restart_count} times, last "
                f"{status.last_state.terminated}; its log before that:\n{log}"
            )


def test_restricted_pod_security_and_a_read_only_root_hold_at_run_time(
    cluster: ControlPlane, release: client.CoreV1Api
) -> None:
    labels = release.read_namespace(RELEASE_NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = operator_pods(release)[0].metadata.name
    assert kubectl_exec(cluster, RELEASE_NAMESPACE, pod, "id -u; touch /opt/x 2>&1; true") == [
        "65532",
        "touch: cannot touch '/opt/x': Read-only file system",
    ]
    # The same pod without its restrictions is refused in this namespace.
    body = {
        "metadata": {"name": "unrestricted"},
        "spec": {
            "containers": [{"name": "c", "image": default_image()}],
            "tolerations": [NODE_TOLERATION],
        },
    }
    with pytest.raises(ApiException) as refused:
        release.create_namespaced_pod(RELEASE_NAMESPACE, body)
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]


def test_the_apiserver_calls_the_webhook_through_its_service_and_a_job_runs(
    release: client.CoreV1Api,
    admin: client.ApiClient,
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
) -> None:
    webhook = client.AdmissionregistrationV1Api(admin).read_mutating_webhook_configuration(
        "usersecrets"
    )
    config = webhook.webhooks[0].client_config
    assert config.url is None
    assert (config.service.namespace, config.service.name) == (
        RELEASE_NAMESPACE,
        "usersecrets-webhook",
    )
    alice = users("alice")
    namespace, api = user_namespace(alice), user_client(alice)
    value = secrets.token_hex(16).encode()
    create_usersecret(api, namespace, "token", value)
    wait_copy(api, namespace, alice, "token", value, timeout=60)
    body = job_body(
        name("pods"),
        REPORT,
        {
            "usersecrets.io/volumes": "secret:token:/etc/app/token",
            "usersecrets.io/env": "VALUE=secret:token",
        },
        env={"FILE": "/etc/app/token"},
        pod_context={"runAsUser": 1000},
    )
    assert run_job(api, namespace, body)[1:3] == [
        f"file=444 0:0 {digest(value)}",
        f"env={digest(value)}",
    ]


def test_when_the_leader_pod_is_deleted_the_other_one_takes_over(
    release: client.CoreV1Api,
    cluster: ControlPlane,
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
) -> None:
    pods = {p.metadata.name for p in operator_pods(release)}
    holder = wait_for(lambda: lease_holder(cluster), what="a leader")
    assert isinstance(holder, str)
    leader = next(p for p in pods if holder.startswith(f"{p}-"))
    release.delete_namespaced_pod(leader, RELEASE_NAMESPACE)
    seen: list[str | None] = []

    def new_holder() -> str | None:
        """The standby, or the Deployment's new replica if it won the race: not the leader."""
        now = lease_holder(cluster)
        seen.append(now)
        live = {p.metadata.name for p in operator_pods(release)} - {leader}
        return now if now and any(now.startswith(f"{p}-") for p in live) else None

    # A leader that does not get to release it holds the Lease until it expires (15 s) after
    # its grace period (30 s); the standby polls every 5 s.
    deadline = time.monotonic() + 120
    while not new_holder():
        live = [p.metadata.name for p in operator_pods(release)]
        assert time.monotonic() < deadline, f"no other pod leads: {set(seen)}, pods {live}"
        time.sleep(0.5)
    alice = users("alice")
    namespace, api = user_namespace(alice), user_client(alice)
    create_usersecret(api, namespace, "after", b"reconciled by the new leader")
    wait_copy(api, namespace, alice, "after", b"reconciled by the new leader", timeout=60)


def test_helm_uninstall_deletes_every_copy_and_keeps_the_usersecrets(
    release: client.CoreV1Api,
    cluster: ControlPlane,
    admin: client.ApiClient,
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
) -> None:
    alice, bob = users("alice"), users("bob")
    alice_namespace, bob_namespace = user_namespace(alice), user_namespace(bob)
    api = user_client(alice)
    create_usersecret(api, alice_namespace, "shared", b"v")
    create_grant(api, alice_namespace, "to-bob", "shared", bob)
    wait_copy(admin, bob_namespace, alice, "shared", b"v", timeout=60)
    assert set(managed_copies(admin, alice)) == {
        (alice_namespace, "shared"),
        (bob_namespace, "shared"),
    }

    helm(cluster, "uninstall", RELEASE, "--wait", "--timeout=5m")

    assert managed_copies(admin, alice) == {}
    assert (
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            "usersecrets.io", "v1alpha1", alice_namespace, "usersecrets", "shared"
        )["metadata"]["name"]
        == "shared"
    )
    assert lease_holder(cluster) is None
    # `helm uninstall --wait` waits for what it deleted (the Deployment), not for its pods'
    # grace period: they end soon after, and nothing of the operator is left.
    wait_for(lambda: operator_pods(release) == [], timeout=90, what="the operator pods to end")
