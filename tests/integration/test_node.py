"""Jobs on a real node read their secrets: as files and variables, as root and as other users.

Containers print digests of what they read (never a value); each is compared with the digest
of the value the test stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from conftest import CLUSTER_NAME, api_client, wait_for
from kube import create_grant, create_usersecret, delete_object, set_value, wait_copy
from pods import REPORT, digest, job_body, kubectl_exec, name, refusal, run_job, wait_running
from usersecrets.rules import naming
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.images import BUSYBOX_NONROOT
from usersecrets_dev.node import Node
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

FILE = "/etc/app/token"
READ_ONLY = f"write=sh: can't create {FILE}: Read-only file system"
ANNOTATIONS = {
    "usersecrets.io/volumes": f"secret:token:{FILE}",
    "usersecrets.io/env": "VALUE=secret:token",
}


@pytest.fixture
def alice(
    node: Node,
    operator: OperatorProcess,
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
) -> tuple[client.ApiClient, str, bytes]:
    """Alice's namespace with her secret `token` (a fresh random value) copied into it."""
    user = users("alice")
    namespace = user_namespace(user)
    api = user_client(user)
    value = secrets.token_hex(16).encode()
    create_usersecret(api, namespace, "token", value)
    wait_copy(api, namespace, user, "token", value)
    return api, namespace, value


CASES = [
    # id, pod securityContext, image, what the container reports about itself and the file
    ("root", {"runAsUser": 0}, None, "uid=0 gid=0", "400 0:0"),
    ("image-user-unknown", {}, None, "uid=0 gid=0", "444 0:0"),
    ("runAsUser", {"runAsUser": 1000}, None, "uid=1000 gid=0", "444 0:0"),
    (
        "runAsUser-fsGroup",
        {"runAsUser": 1000, "fsGroup": 2000},
        None,
        "uid=1000 gid=0",
        "440 0:2000",
    ),
    (
        "runAsNonRoot-image-USER",
        {"runAsNonRoot": True},
        BUSYBOX_NONROOT,
        "uid=1001 gid=1001",
        "444 0:0",
    ),
    ("runAsGroup", {"runAsUser": 1000, "runAsGroup": 3000}, None, "uid=1000 gid=3000", "444 0:0"),
]


@pytest.mark.parametrize(
    ("pod_context", "image", "identity", "file"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_job_reads_its_secret_as_file_and_variable(
    alice: tuple[client.ApiClient, str, bytes],
    pod_context: dict[str, Any],
    image: str | None,
    identity: str,
    file: str,
) -> None:
    api, namespace, value = alice
    body = job_body(
        name("reads"),
        REPORT,
        ANNOTATIONS,
        pod_context=pod_context,
        env={"FILE": FILE},
        **({"image": image} if image else {}),
    )
    assert run_job(api, namespace, body) == [
        identity,
        f"file={file} {digest(value)}",
        f"env={digest(value)}",
        READ_ONLY,
    ]


def test_bob_reads_alices_shared_secret_until_she_revokes_it(
    alice: tuple[client.ApiClient, str, bytes],
    users: Callable[[str], str],
    user_namespace: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
) -> None:
    alice_api, alice_namespace, value = alice
    owner, bob = users("alice"), users("bob")
    bob_namespace = user_namespace(bob)
    bob_api = user_client(bob)
    create_grant(alice_api, alice_namespace, "token-to-bob", "token", bob)
    wait_copy(bob_api, bob_namespace, owner, "token", value)
    shared = {
        "usersecrets.io/volumes": f"secret:/{owner}/token:{FILE}",
        "usersecrets.io/env": f"VALUE=secret:/{owner}/token",
    }
    body = job_body(
        name("bob"), REPORT, shared, env={"FILE": FILE}, pod_context={"runAsUser": 1000}
    )
    assert run_job(bob_api, bob_namespace, body)[1:3] == [
        f"file=444 0:0 {digest(value)}",
        f"env={digest(value)}",
    ]

    delete_object(alice_api, "secretgrants", alice_namespace, "token-to-bob")
    wait_copy(bob_api, bob_namespace, owner, "token", None)
    refused = name("bob")
    client.BatchV1Api(bob_api).create_namespaced_job(
        bob_namespace, job_body(refused, REPORT, shared, env={"FILE": FILE})
    )
    uri = naming.secret_uri(CLUSTER_NAME, owner, "token")
    assert refusal(bob_api, bob_namespace, refused) == (
        'Error creating: admission webhook "pods.usersecrets.io" denied the request: '
        f"Secret '{uri}' is not shared with user '{bob}'"
    )


def test_a_running_container_keeps_what_it_read_at_start(
    cluster: ControlPlane,
    alice: tuple[client.ApiClient, str, bytes],
    users: Callable[[str], str],
    user_namespace: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
) -> None:
    """A value change or a revoke reaches no running container: the variable was set at its
    start, the file is a subPath mount (a copy kubelet never updates). A plain volume of the
    same Secret, mounted alongside, shows that kubelet did sync the new value meanwhile."""
    alice_api, alice_namespace, old = alice
    owner, bob = users("alice"), users("bob")
    bob_namespace = user_namespace(bob)
    bob_api = user_client(bob)
    create_grant(alice_api, alice_namespace, "token-to-bob", "token", bob)
    wait_copy(bob_api, bob_namespace, owner, "token", old)
    pod = name("long")
    core = client.CoreV1Api(api_client(cluster.kubeconfig))
    body = job_body(
        pod,
        "sleep 3600",
        {
            "usersecrets.io/volumes": f"secret:/{owner}/token:{FILE}",
            "usersecrets.io/env": f"VALUE=secret:/{owner}/token",
        },
    )["spec"]["template"]
    body["metadata"]["name"] = pod
    body["spec"]["volumes"] = [
        {"name": "control", "secret": {"secretName": naming.copy_name(owner, "token")}}
    ]
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "control", "mountPath": "/control"}]
    core.create_namespaced_pod(bob_namespace, {"apiVersion": "v1", "kind": "Pod", **body})
    wait_running(bob_api, bob_namespace, pod)
    read = f'sha256sum < {FILE}; printf %s "$VALUE" | sha256sum; sha256sum < /control/value'
    assert kubectl_exec(cluster, bob_namespace, pod, read) == [digest(old)] * 3

    new = secrets.token_hex(16).encode()
    set_value(alice_api, alice_namespace, "token", new)
    wait_copy(bob_api, bob_namespace, owner, "token", new)

    def synced() -> list[str] | None:
        seen = kubectl_exec(cluster, bob_namespace, pod, read)
        return seen if seen[2] == digest(new) else None

    assert wait_for(synced, timeout=120, interval=2, what="kubelet to sync /control") == [
        digest(old),
        digest(old),
        digest(new),
    ]

    delete_object(alice_api, "secretgrants", alice_namespace, "token-to-bob")
    wait_copy(bob_api, bob_namespace, owner, "token", None)
    assert kubectl_exec(cluster, bob_namespace, pod, read)[:2] == [digest(old), digest(old)]
