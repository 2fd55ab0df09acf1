"""Fixtures on a real local control plane: one per test session, users under real RBAC."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from usersecrets_dev.controlplane import ControlPlane, cached_binaries
from usersecrets_dev.node import (
    BRIDGE_ADDRESS,
    Node,
    NodeError,
    NodeHost,
    node_bin_dir,
    unavailable_reason,
)
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.sample_users import ensure_role, service_account_token
from usersecrets_dev.ui_process import UiProcess

HOW_TO_GET_BINARIES = (
    "the local control plane binaries are missing: run `make test` (it builds them from the "
    "pinned Kubernetes modules into ~/.cache/usersecrets) or set KUBEBUILDER_ASSETS to a "
    "directory with etcd, kube-apiserver, kube-controller-manager, kubectl and helm"
)


def skip_or_fail(reason: str) -> None:
    """Outside CI a missing prerequisite skips with its reason; in CI it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_host() -> Iterator[NodeHost | str]:
    """The host's side of the node (its bridge, the record of the host), or why there is none.

    At the end the host is put back, and the session errs if anything differs from the record.
    """
    reason = unavailable_reason(node_bin_dir())
    if reason is not None:
        yield reason
        return
    try:
        host = NodeHost().start()
    except NodeError as error:
        yield str(error)
        return
    try:
        yield host
    finally:
        left = host.stop()
        if left:
            pytest.fail("the node left the host changed:\n" + "\n".join(left))


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, node_host: NodeHost | str
) -> Iterator[ControlPlane]:
    """The control plane: on the node's bridge address when a node can run, else loopback."""
    bin_dir = cached_binaries()
    if bin_dir is None:
        skip_or_fail(HOW_TO_GET_BINARIES)
        raise AssertionError("unreachable")
    address = BRIDGE_ADDRESS if isinstance(node_host, NodeHost) else "127.0.0.1"
    plane = ControlPlane(bin_dir, tmp_path_factory.mktemp("controlplane"), address).start()
    try:
        yield plane
    finally:
        plane.stop()


#: Only pods that tolerate it run on the test node: the other integration tests create pods
#: to see what the webhook does to them, and need not run them.
NODE_TAINT = {"key": "usersecrets.io/e2e", "value": "true", "effect": "NoSchedule"}
NODE_TOLERATION = {"key": NODE_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="session")
def node(cluster: ControlPlane, node_host: NodeHost | str) -> Iterator[Node]:
    """kubelet and containerd on the session's control plane; skipped (failed in CI) without."""
    bin_dir = node_bin_dir()
    if isinstance(node_host, str) or bin_dir is None:
        skip_or_fail(f"no node on this machine: {node_host}")
        raise AssertionError("unreachable")
    started = Node(cluster, bin_dir, taints=[NODE_TAINT]).start()
    try:
        yield started
    finally:
        started.stop()


CLUSTER_NAME = "testcluster"
#: The operator's per-user limits in the tests: small enough for a test to reach, above what
#: every other test's users need (test_reconciler's burst makes 200 UserSecrets).
LIMITS = {"secretsPerUser": 250, "valueMiBPerUser": 8, "sharesPerUser": 12}


@pytest.fixture(scope="session")
def operator(cluster: ControlPlane) -> Iterator[OperatorProcess]:
    """The operator, installed by the chart and running as the chart's ServiceAccount, at DEBUG.

    Every integration test that depends on it therefore also proves the chart's RBAC enough.
    The chart's web UI is on too (its objects are created; `ui` runs it as a process).
    """
    process = OperatorProcess(
        cluster,
        values=[
            f"clusterName={CLUSTER_NAME}",
            "logLevel=DEBUG",
            "ui.enabled=true",
            *(f"limits.{name}={value}" for name, value in LIMITS.items()),
        ],
    ).start()
    try:
        yield process
    finally:
        process.stop()


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def admin(cluster: ControlPlane) -> client.ApiClient:
    return api_client(cluster.kubeconfig)


@pytest.fixture(scope="session")
def user_client(cluster: ControlPlane) -> Callable[[str], client.ApiClient]:
    """An API client that authenticates as the named user, with only that user's rights."""
    return lambda user: api_client(cluster.user_kubeconfig(user))


def wait_for(
    condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> object:
    """Polls until `condition()` is truthy and returns it; fails the test with `what` if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def create_namespace(admin: client.ApiClient, labels: dict[str, str] | None = None) -> str:
    core = client.CoreV1Api(admin)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )

    def has_default_service_account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    wait_for(has_default_service_account, what=f"the default ServiceAccount in {name}")
    return name


def delete_namespace(admin: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(admin).delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def namespace(admin: client.ApiClient) -> Iterator[str]:
    """A fresh namespace, deleted after the test."""
    name = create_namespace(admin)
    yield name
    delete_namespace(admin, name)


USER_ROLE = "usersecrets-test-user"


@pytest.fixture(scope="session")
def user_role(admin: client.ApiClient) -> str:
    """What a user may do in their own namespaces: Secrets, pods, Jobs and our resources."""
    rbac = client.RbacAuthorizationV1Api(admin)
    rules = [
        client.V1PolicyRule(
            api_groups=[""],
            resources=["secrets", "pods", "pods/log", "configmaps", "events"],
            verbs=["*"],
        ),
        client.V1PolicyRule(api_groups=["batch"], resources=["jobs"], verbs=["*"]),
        client.V1PolicyRule(
            api_groups=["usersecrets.io"], resources=["usersecrets", "secretgrants"], verbs=["*"]
        ),
    ]
    try:
        rbac.create_cluster_role(
            client.V1ClusterRole(metadata=client.V1ObjectMeta(name=USER_ROLE), rules=rules)
        )
    except ApiException as error:
        if error.status != 409:
            raise
    return USER_ROLE


RBAC_GROUP = "rbac.authorization.k8s.io"


def role_binding(name: str, cluster_role: str, subject: dict[str, str]) -> dict[str, Any]:
    """The body of a RoleBinding or ClusterRoleBinding granting `cluster_role` to `subject`."""
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [subject],
    }


def bind_user(
    admin: client.ApiClient,
    namespace: str,
    user: str,
    role: str = USER_ROLE,
    proof: tuple[str, str, str] = ("get", "", "secrets"),
) -> None:
    """Let `user` act in `namespace` with the rights of the ClusterRole `role`; `proof` is
    (verb, group, resource) of a right it gives, to wait for."""
    subject = {"kind": "User", "name": user, "apiGroup": RBAC_GROUP}
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(
        namespace, role_binding(f"{user}-{role}", role, subject)
    )
    # The authorizer learns of new bindings from a watch: wait until it has, like a user would.
    review = {
        "spec": {
            "user": user,
            "resourceAttributes": {
                "namespace": namespace,
                "verb": proof[0],
                "group": proof[1],
                "resource": proof[2],
            },
        }
    }
    authorization = client.AuthorizationV1Api(admin)
    wait_for(
        lambda: authorization.create_subject_access_review(review).status.allowed,
        what=f"RBAC to let {user} act in {namespace}",
    )


@pytest.fixture
def users() -> Callable[[str], str]:
    """Per-test user names: `users("alice")` is the same name for the whole test.

    Copies go to every namespace of a user, so tests that share the session's cluster must not
    share users either.
    """
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"


@pytest.fixture
def user_namespace(
    admin: client.ApiClient, user_role: str, cluster: ControlPlane
) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh namespace of `user`, where only that user (and admins) may act."""
    created: list[str] = []

    def make(user: str, label: str = "usersecrets.io/user") -> str:
        name = create_namespace(admin, {label: user})
        created.append(name)
        bind_user(admin, name, user, user_role)
        return name

    yield make
    for name in created:
        delete_namespace(admin, name)


@pytest.fixture(scope="session")
def ui(cluster: ControlPlane, operator: OperatorProcess) -> Iterator[UiProcess]:
    """`usersecrets-ui` configured as the chart's UI Deployment, with no credentials at all."""
    process = UiProcess(cluster, operator.objects).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def ui_user(
    admin: client.ApiClient, user_namespace: Callable[[str], str]
) -> Callable[[str], tuple[str, str]]:
    """Factory: (namespace, bearer token) of `user`, who signs in to the UI with the token.

    The token is a ServiceAccount's in a fresh namespace of `user`, bound there to a role that
    lets it manage secrets, jobs and pods: what the Dashboard and Headlamp document for
    signing in, and, like an OIDC token from a proxy, a bearer token the apiserver checks.
    """
    role = ensure_role(admin)

    def make(user: str) -> tuple[str, str]:
        namespace = user_namespace(user)
        return namespace, service_account_token(admin, namespace, user, role)

    return make
