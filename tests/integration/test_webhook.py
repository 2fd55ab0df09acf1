"""The mutating webhook as the real kube-apiserver calls it: patches, denials, routing.

Pods stay Pending (no scheduler, no kubelet): what is checked is the pod object the API server
stored after admission, and the error body it returned when the webhook refused.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import (
    CLUSTER_NAME,
    api_client,
    bind_user,
    create_namespace,
    delete_namespace,
    wait_for,
)
from fakes import copy_name
from usersecrets import GROUP, VERSION
from usersecrets.rules.references import key_error
from usersecrets_dev import pods
from usersecrets_dev.chart import RELEASE_NAMESPACE
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.pods import asking

pytestmark = pytest.mark.integration

ALICE, BOB = "alice", "bob"
WEBHOOK = "pods.usersecrets.io"
DENIED = f'admission webhook "{WEBHOOK}" denied the request: '
VOLUMES, ENV, CONTAINERS = (
    "usersecrets.io/volumes",
    "usersecrets.io/env",
    "usersecrets.io/containers",
)
OURS = "usersecrets-"  # prefix of the volumes the webhook adds
MODE = 0o444  # no securityContext: the image's USER decides, so readable by any user
# Alice's secrets, created once for the module; each test that needs its own creates it.
KEYS = ("secret-password", "wandb-token", "aws-key")
OWN_ENV = [{"name": "PLAIN", "value": "not a secret"}]


# -- helpers ------------------------------------------------------------------------------


def uid() -> str:
    return uuid.uuid4().hex[:8]


def container(name: str = "main", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sleep", "3600"], **extra}


def pod_body(
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    name: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod that keeps running, with a variable of its own, as a user's job would be."""
    return pods.pod(
        asks=annotations,
        name=name or f"p-{uid()}",
        containers=containers or [container(env=list(OWN_ENV))],
        restartPolicy="Never",
        **spec,
    )


def as_dict(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = client.ApiClient().sanitize_for_serialization(obj)
    return result


def create_pod(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return as_dict(core.create_namespaced_pod(namespace, body))


def denial(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> ApiException:
    """The API error for a pod create that must fail; the pod must not exist afterwards."""
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, body)
    with pytest.raises(ApiException) as absent:
        core.read_namespaced_pod(body["metadata"]["name"], namespace)
    assert absent.value.status == 404
    return refused.value


def message(error: ApiException) -> str:
    text: str = json.loads(error.body)["message"]
    return text


def assert_denied(error: ApiException, problem: str) -> None:
    assert error.status == 403, error.body
    assert message(error) == DENIED + problem


def user_secret_body(key: str, value: bytes) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UserSecret",
        "metadata": {"name": key},
        "spec": {"value": base64.b64encode(value).decode()},
    }


def copy_exists(core: client.CoreV1Api, namespace: str, owner: str, key: str) -> bool:
    try:
        core.read_namespaced_secret(copy_name(owner, key), namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def wait_for_copy(core: client.CoreV1Api, namespace: str, owner: str, key: str) -> None:
    wait_for(
        lambda: copy_exists(core, namespace, owner, key),
        what=f"the copy of {owner}/{key} in {namespace}",
    )


def webhook_answers(core: client.CoreV1Api, namespace: str) -> bool:
    """Whether the webhook itself (not the failure policy) answers for `namespace`."""
    body = pod_body(asking(env=f"X=secret:probe-{uid()}"))
    try:
        core.create_namespaced_pod(namespace, body, dry_run="All")
    except ApiException as error:
        text = message(error)
    else:
        raise AssertionError("a pod asking for a missing secret was admitted")
    if "failed calling webhook" in text:
        return False
    assert text.startswith(DENIED), text
    return True


def our_volumes(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in pod["spec"].get("volumes") or [] if v["name"].startswith(OURS)]


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def assert_injected(
    pod: dict[str, Any],
    files: list[tuple[str, str, str]],
    env: list[tuple[str, str, str]],
    into: tuple[str, ...] = ("main",),
    own_env: list[dict[str, Any]] | None = None,
    mode: int = MODE,
) -> None:
    """`files` are (owner, key, path), `env` (name, owner, key), in annotation order."""
    volumes = our_volumes(pod)
    secrets = list(dict.fromkeys(copy_name(owner, key) for owner, key, _ in files))
    # One volume per Secret, however many files and containers use it.
    assert [v["secret"]["secretName"] for v in volumes] == secrets
    for volume in volumes:
        assert volume["secret"] == {
            "secretName": volume["secret"]["secretName"],
            "defaultMode": mode,
            "items": [{"key": "value", "path": "value", "mode": mode}],
        }
        assert set(volume) == {"name", "secret"}
    secret_of = {v["name"]: v["secret"]["secretName"] for v in volumes}
    own = OWN_ENV if own_env is None else own_env
    for c in all_containers(pod):
        mounts = [m for m in c.get("volumeMounts") or [] if m["name"].startswith(OURS)]
        ours = [e for e in c.get("env") or [] if "valueFrom" in e]
        if c["name"] not in into:
            assert mounts == [], c["name"]
            assert ours == [], c["name"]
            continue
        assert [(secret_of[m["name"]], m["mountPath"]) for m in mounts] == [
            (copy_name(owner, key), path) for owner, key, path in files
        ]
        for mount in mounts:
            assert mount == {
                "name": mount["name"],
                "mountPath": mount["mountPath"],
                "subPath": "value",
                "readOnly": True,
            }
        # Ours first, so that the pod's own variables may use them in $(NAME).
        assert (c.get("env") or []) == [
            {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": copy_name(owner, key), "key": "value"}},
            }
            for name, owner, key in env
        ] + (own if c["name"] == "main" else [])


def assert_untouched(pod: dict[str, Any]) -> None:
    assert our_volumes(pod) == []
    for c in all_containers(pod):
        assert not any(m["name"].startswith(OURS) for m in c.get("volumeMounts") or [])
        assert not any("valueFrom" in e for e in c.get("env") or [])


# -- fixtures -----------------------------------------------------------------------------


@dataclass
class User:
    name: str
    namespace: str
    api: client.ApiClient
    kubeconfig: Path
    core: client.CoreV1Api = field(init=False)
    batch: client.BatchV1Api = field(init=False)
    custom: client.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def create_secret(self, key: str, value: bytes = b"value\xff\x00") -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "usersecrets", user_secret_body(key, value)
        )

    def grant(self, key: str, grantee: str) -> str:
        name = f"{key}-to-{grantee}"
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "secretgrants",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "SecretGrant",
                "metadata": {"name": name},
                "spec": {"secretName": key, "user": grantee},
            },
        )
        return name

    def revoke(self, grant: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "secretgrants", grant
        )


@pytest.fixture(scope="module")
def alice(
    cluster: ControlPlane, admin: client.ApiClient, user_role: str, operator: OperatorProcess
) -> Iterator[User]:
    """Alice's namespace with her secrets materialized, shared by the module's tests."""
    namespace = create_namespace(admin, {"usersecrets.io/user": ALICE})
    try:
        bind_user(admin, namespace, ALICE, user_role)
        kubeconfig = cluster.user_kubeconfig(ALICE)
        user = User(ALICE, namespace, api_client(kubeconfig), kubeconfig)
        for key in KEYS:
            user.create_secret(key)
        core = client.CoreV1Api(admin)
        for key in KEYS:
            wait_for_copy(core, namespace, ALICE, key)
        wait_for(lambda: webhook_answers(core, namespace), what="the webhook to answer")
        yield user
    finally:
        delete_namespace(admin, namespace)


# -- what the pod gets --------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    id: str
    volumes: str | None = None
    env: str | None = None
    files: list[tuple[str, str]] = field(default_factory=list)  # (key, path)
    variables: list[tuple[str, str]] = field(default_factory=list)  # (name, key)
    owner: str = ALICE


SCENARIOS = [
    Scenario(
        "one-env-var",
        env="mypass:secret:secret-password",
        variables=[("mypass", "secret-password")],
    ),
    Scenario(
        "one-file",
        volumes="secret:secret-password:/var/secrets/secret-password.txt",
        files=[("secret-password", "/var/secrets/secret-password.txt")],
    ),
    Scenario(
        "env-and-file",
        volumes="secret:secret-password:/var/secrets/secret-password.txt",
        env="WANDB_API_KEY=secret:wandb-token",
        files=[("secret-password", "/var/secrets/secret-password.txt")],
        variables=[("WANDB_API_KEY", "wandb-token")],
    ),
    Scenario(
        "same-secret-as-env-and-file",
        volumes="secret:secret-password:/var/secrets/password",
        env="PASSWORD=secret:secret-password",
        files=[("secret-password", "/var/secrets/password")],
        variables=[("PASSWORD", "secret-password")],
    ),
    Scenario(
        "same-secret-in-two-env-vars",
        env="ONE=secret:secret-password\nTWO=secret:secret-password",
        variables=[("ONE", "secret-password"), ("TWO", "secret-password")],
    ),
    Scenario(
        "same-secret-in-two-files-in-two-directories",
        volumes="secret:secret-password:/etc/one/password\nsecret:secret-password:/opt/two/pw",
        files=[("secret-password", "/etc/one/password"), ("secret-password", "/opt/two/pw")],
    ),
    Scenario(
        "nested-directories",
        volumes=(
            "secret:secret-password:/var/secrets/password\n"
            "secret:aws-key:/var/secrets/nested/deeper/aws-key\n"
            "secret:wandb-token:/var/secrets/nested/token"
        ),
        files=[
            ("secret-password", "/var/secrets/password"),
            ("aws-key", "/var/secrets/nested/deeper/aws-key"),
            ("wandb-token", "/var/secrets/nested/token"),
        ],
    ),
    Scenario(
        "same-file-name-in-different-directories",
        volumes="secret:aws-key:/root/.aws/credentials\nsecret:wandb-token:/etc/wandb/credentials",
        files=[("aws-key", "/root/.aws/credentials"), ("wandb-token", "/etc/wandb/credentials")],
    ),
    Scenario(
        "colon-and-equals-env-forms",
        env="COLON:secret:secret-password\nEQUALS=secret:wandb-token",
        variables=[("COLON", "secret-password"), ("EQUALS", "wandb-token")],
    ),
    Scenario(
        "user-and-cluster-uris",
        volumes=f"secret:/{ALICE}/aws-key:/root/.aws/credentials",
        env=(
            f"WANDB_API_KEY=secret://{CLUSTER_NAME}/{ALICE}/wandb-token,"
            f"PASSWORD:secret:/{ALICE}/secret-password"
        ),
        files=[("aws-key", "/root/.aws/credentials")],
        variables=[("WANDB_API_KEY", "wandb-token"), ("PASSWORD", "secret-password")],
    ),
    Scenario(
        "commas-blank-lines-and-path-spelling",
        volumes=" secret:secret-password:/var//./secrets/password/ ,\n\n  secret:aws-key:/k ",
        env="\n A = secret:wandb-token ,\n",
        files=[("secret-password", "/var/secrets/password"), ("aws-key", "/k")],
        variables=[("A", "wandb-token")],
    ),
]


def assert_scenario(pod: dict[str, Any], scenario: Scenario) -> None:
    assert_injected(
        pod,
        files=[(scenario.owner, key, path) for key, path in scenario.files],
        env=[(name, scenario.owner, key) for name, key in scenario.variables],
    )
    # The annotations stay as the user wrote them.
    assert pod["metadata"]["annotations"] == asking(scenario.volumes, scenario.env)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_pod_created_by_the_user(alice: User, scenario: Scenario) -> None:
    pod = create_pod(alice.core, alice.namespace, pod_body(asking(scenario.volumes, scenario.env)))
    assert_scenario(pod, scenario)


def job_body(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": pod["metadata"] | {"name": None}, "spec": pod["spec"]},
        },
    }


def job_pods(core: client.CoreV1Api, namespace: str, job: str) -> list[dict[str, Any]]:
    listing = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}")
    return [as_dict(p) for p in listing.items]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_pod_created_by_the_job_controller(
    alice: User, admin: client.ApiClient, scenario: Scenario
) -> None:
    name = f"j-{uid()}"
    body = job_body(pod_body(asking(scenario.volumes, scenario.env)), name)
    alice.batch.create_namespaced_job(alice.namespace, body)
    core = client.CoreV1Api(admin)
    pods = wait_for(
        lambda: job_pods(core, alice.namespace, name),
        what=f"the job controller to create the pod of {name}",
    )
    assert isinstance(pods, list)
    [pod] = pods
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert_scenario(pod, scenario)


def test_job_whose_pod_is_refused_says_why(alice: User, admin: client.ApiClient) -> None:
    name = f"j-{uid()}"
    body = job_body(pod_body(asking(env="A=secret:not-there")), name)
    alice.batch.create_namespaced_job(alice.namespace, body)
    core = client.CoreV1Api(admin)

    def failed_create() -> list[str]:
        events = core.list_namespaced_event(
            alice.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [e.message for e in events if e.reason == "FailedCreate"]

    messages = wait_for(failed_create, what=f"a FailedCreate event on {name}")
    assert isinstance(messages, list)
    assert messages[0].endswith(DENIED + "Missing secrets: 'not-there'")
    assert job_pods(core, alice.namespace, name) == []


def test_every_container_and_init_container_gets_them(alice: User) -> None:
    containers = [container("main", env=list(OWN_ENV)), container("sidecar")]
    body = pod_body(
        asking("secret:aws-key:/root/.aws/credentials", "TOKEN=secret:wandb-token"),
        containers=containers,
        initContainers=[container("init")],
    )
    pod = create_pod(alice.core, alice.namespace, body)
    assert_injected(
        pod,
        files=[(ALICE, "aws-key", "/root/.aws/credentials")],
        env=[("TOKEN", ALICE, "wandb-token")],
        into=("init", "main", "sidecar"),
    )


def test_the_containers_annotation_narrows_the_injection(alice: User) -> None:
    meta = asking("secret:aws-key:/root/.aws/credentials", "TOKEN=secret:wandb-token")
    body = pod_body(
        meta | {CONTAINERS: "sidecar"},
        containers=[container("main", env=list(OWN_ENV)), container("sidecar")],
        initContainers=[container("init")],
    )
    pod = create_pod(alice.core, alice.namespace, body)
    assert_injected(
        pod,
        files=[(ALICE, "aws-key", "/root/.aws/credentials")],
        env=[("TOKEN", ALICE, "wandb-token")],
        into=("sidecar",),
    )


def test_non_root_with_fs_group_gets_group_readable_files(alice: User) -> None:
    body = pod_body(
        asking("secret:aws-key:/home/user/.aws/credentials"),
        securityContext={"runAsUser": 1000, "runAsNonRoot": True, "fsGroup": 2000},
    )
    pod = create_pod(alice.core, alice.namespace, body)
    assert_injected(
        pod, files=[(ALICE, "aws-key", "/home/user/.aws/credentials")], env=[], mode=0o440
    )


# -- denials ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Denial:
    id: str
    problem: str
    volumes: str | None = None
    env: str | None = None
    main: dict[str, Any] = field(default_factory=dict)  # extra fields of the container
    spec: dict[str, Any] = field(default_factory=dict)  # extra fields of the pod spec
    extra: dict[str, str] = field(default_factory=dict)  # extra annotations


DENIALS = [
    Denial(
        "file-entry-without-path",
        "Invalid secret file specification 'secret:secret-password'",
        volumes="secret:secret-password",
    ),
    Denial(
        "file-entry-without-scheme",
        "Invalid secret file specification 'secret-password:/var/secrets/password'",
        volumes="secret-password:/var/secrets/password",
    ),
    Denial(
        "env-entry-without-reference",
        "Invalid secret environment variable specification 'PASSWORD': "
        "expected NAME=secret:KEY or NAME:secret:KEY",
        env="PASSWORD",
    ),
    Denial(
        "bad-env-name",
        "Invalid environment variable name '1PASSWORD' in '1PASSWORD=secret:secret-password': "
        "letters, digits, '_', '-' and '.', not starting with a digit",
        env="1PASSWORD=secret:secret-password",
    ),
    Denial(
        "read-only-suffix",
        "Invalid secret file specification 'secret:secret-password:/var/secrets/pw:ro': "
        "secret files are always read-only, remove the ':ro'/':rw' suffix",
        volumes="secret:secret-password:/var/secrets/pw:ro",
    ),
    Denial(
        "relative-path",
        "Mount path must be absolute: 'var/secrets/password'",
        volumes="secret:secret-password:var/secrets/password",
    ),
    Denial(
        "dot-dot-path",
        "Invalid path: '/var/secrets/../password'",
        volumes="secret:secret-password:/var/secrets/../password",
    ),
    Denial(
        "root-path",
        "Mount path must name a file, not the root directory: '/'",
        volumes="secret:secret-password:/",
    ),
    Denial(
        "duplicate-paths",
        "destination path '/var/secrets/password' was encountered multiple times",
        volumes="secret:secret-password:/var/secrets/password\nsecret:aws-key://var/./secrets/password/",
    ),
    Denial(
        "file-inside-a-file",
        "destination path '/var/secrets/password/x' is inside the secret file "
        "'/var/secrets/password'",
        volumes="secret:secret-password:/var/secrets/password\nsecret:aws-key:/var/secrets/password/x",
    ),
    Denial(
        "duplicate-env-names",
        "environment variable 'PASSWORD' was encountered multiple times",
        env="PASSWORD=secret:secret-password\nPASSWORD:secret:wandb-token",
    ),
    Denial(
        "collision-with-a-mount-of-the-pod",
        "Container 'main' already mounts a volume at '/var/secrets'",
        volumes="secret:secret-password:/var/secrets/",
        main={"volumeMounts": [{"name": "scratch", "mountPath": "/var/secrets"}]},
        spec={"volumes": [{"name": "scratch", "emptyDir": {}}]},
    ),
    Denial(
        "collision-with-an-env-var-of-the-pod",
        "Container 'main' already has environment variable 'PLAIN'",
        env="PLAIN=secret:secret-password",
    ),
    Denial(
        "unknown-container",
        "Unknown container 'trainer' in usersecrets.io/containers (the pod has 'main')",
        env="PASSWORD=secret:secret-password",
        extra={CONTAINERS: "trainer"},
    ),
    Denial(
        "missing-secrets-all-sorted",
        "Missing secrets: 'missing-a', 'missing-b'",
        volumes="secret:missing-b:/var/b\nsecret:secret-password:/var/secrets/password",
        env=f"A=secret:/{ALICE}/missing-a\nB=secret://{CLUSTER_NAME}/{ALICE}/missing-b",
    ),
    Denial(
        "another-users-secret-not-shared",
        f"Secret 'secret://{CLUSTER_NAME}/{BOB}/token' is not shared with user '{ALICE}'",
        env=f"TOKEN=secret:/{BOB}/token",
    ),
    Denial(
        "wrong-cluster",
        f"Invalid URI cluster: 'other-cluster' != '{CLUSTER_NAME}'",
        env=f"TOKEN=secret://other-cluster/{ALICE}/wandb-token",
    ),
    Denial(
        "wrong-scheme-in-a-file",
        "Invalid URI scheme: 'storage' != 'secret'",
        volumes="storage:secret-password:/var/secrets/password",
    ),
    Denial(
        "wrong-scheme-in-an-env-var",
        "Invalid URI scheme: 'storage' != 'secret'",
        env="TOKEN=storage:/alice/wandb-token",
    ),
    Denial(
        "fragment-in-reference",
        "Invalid secret reference 'secret:wandb-token#x': '#' and '?' are not allowed",
        env="TOKEN=secret:wandb-token#x",
    ),
    Denial(
        "incomplete-uri",
        "Invalid secret reference 'secret://testcluster/wandb-token': expected secret:KEY, "
        "secret:/USER/KEY or secret://CLUSTER/USER/KEY",
        env="TOKEN=secret://testcluster/wandb-token",
    ),
    Denial(
        "key-that-cannot-be-a-kubernetes-name",
        str(key_error("Wandb_Token")),
        env="TOKEN=secret:Wandb_Token",
    ),
    Denial(
        "every-problem-at-once",
        "; ".join(
            [
                "Mount path must be absolute: 'relative'",
                f"Invalid URI cluster: 'elsewhere' != '{CLUSTER_NAME}'",
                "Container 'main' already has environment variable 'PLAIN'",
                "Missing secrets: 'gone', 'lost'",
                f"Secret 'secret://{CLUSTER_NAME}/{BOB}/token' is not shared with user '{ALICE}'",
            ]
        ),
        volumes="secret:secret-password:relative\nsecret:lost:/lost",
        env=(
            f"PLAIN=secret:secret-password\nX=secret://elsewhere/{ALICE}/k\n"
            f"T=secret:/{BOB}/token\nG=secret:gone"
        ),
    ),
]


@pytest.mark.parametrize("case", DENIALS, ids=lambda d: d.id)
def test_denied_with_a_message_a_person_can_act_on(alice: User, case: Denial) -> None:
    body = pod_body(
        asking(case.volumes, case.env) | case.extra,
        containers=[container(env=list(OWN_ENV), **case.main)],
        **case.spec,
    )
    assert_denied(denial(alice.core, alice.namespace, body), case.problem)


def test_a_namespace_without_any_copy_is_answered_too(
    alice: User, admin: client.ApiClient, namespace: str
) -> None:
    """No copy at all is an empty list to the webhook (the API server sends `items: null`),
    and an unlabelled namespace belongs to the user of its name."""
    core = client.CoreV1Api(admin)
    body = pod_body(asking(env="A=secret:nothing-here"))
    assert_denied(denial(core, namespace, body), "Missing secrets: 'nothing-here'")
    body = pod_body(asking(env=f"A=secret:/{namespace}/mine\nB=secret:/{ALICE}/secret-password"))
    assert_denied(
        denial(core, namespace, body),
        f"Missing secrets: 'mine'; Secret 'secret://{CLUSTER_NAME}/{ALICE}/secret-password' "
        f"is not shared with user '{namespace}'",
    )


def test_a_secret_is_usable_by_another_user_exactly_while_granted(
    alice: User,
    admin: client.ApiClient,
    cluster: ControlPlane,
    user_namespace: Callable[[str], str],
) -> None:
    key = f"shared-{uid()}"
    alice.create_secret(key)
    bob_namespace = user_namespace(BOB)
    bob = client.CoreV1Api(api_client(cluster.user_kubeconfig(BOB)))
    core = client.CoreV1Api(admin)
    uri = f"secret://{CLUSTER_NAME}/{ALICE}/{key}"
    refs = asking(f"secret:/{ALICE}/{key}:/etc/alice/{key}", f"KEY={uri}")
    not_shared = f"Secret '{uri}' is not shared with user '{BOB}'"
    wait_for_copy(core, alice.namespace, ALICE, key)

    assert_denied(denial(bob, bob_namespace, pod_body(refs)), not_shared)
    # Bob learns nothing about which keys alice has: an absent key reads the same.
    absent = f"secret://{CLUSTER_NAME}/{ALICE}/no-such-key"
    assert_denied(
        denial(bob, bob_namespace, pod_body(asking(env=f"K={absent}"))),
        f"Secret '{absent}' is not shared with user '{BOB}'",
    )

    grant = alice.grant(key, BOB)
    wait_for_copy(core, bob_namespace, ALICE, key)
    pod = create_pod(bob, bob_namespace, pod_body(refs))
    assert_injected(pod, files=[(ALICE, key, f"/etc/alice/{key}")], env=[("KEY", ALICE, key)])

    alice.revoke(grant)
    wait_for(
        lambda: not copy_exists(core, bob_namespace, ALICE, key),
        what=f"the copy of {key} to leave {bob_namespace}",
    )
    assert_denied(denial(bob, bob_namespace, pod_body(refs)), not_shared)


# -- what is left alone -------------------------------------------------------------------


@pytest.mark.parametrize(
    "asked",
    [
        pytest.param({VOLUMES: "", ENV: ""}, id="empty"),
        pytest.param({VOLUMES: "  \n\t\n", ENV: " "}, id="whitespace"),
        pytest.param({VOLUMES: " , ,\n,", ENV: ",\r\n,"}, id="separators-only"),
        pytest.param({ENV: "\n", CONTAINERS: "main"}, id="only-containers"),
    ],
)
def test_an_annotation_that_asks_for_nothing_changes_nothing(
    alice: User, asked: dict[str, str]
) -> None:
    body = pod_body(asked)
    pod = create_pod(alice.core, alice.namespace, body)
    assert_untouched(pod)
    assert pod["spec"]["containers"][0]["env"] == OWN_ENV
    assert pod["metadata"]["annotations"] == asked


def test_a_pod_copied_from_a_mutated_pod_is_admitted_unchanged(alice: User) -> None:
    """What `kubectl get pod -o yaml | kubectl create -f -` does, and what a reinvocation sees:
    the second pass finds everything in place and adds nothing."""
    asked = asking(
        "secret:secret-password:/var/secrets/password\nsecret:aws-key:/root/.aws/credentials",
        "PASSWORD=secret:secret-password\nTOKEN=secret:wandb-token",
    )
    first = create_pod(alice.core, alice.namespace, pod_body(asked))
    again = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{uid()}", "annotations": first["metadata"]["annotations"]},
        "spec": first["spec"],
    }
    second = create_pod(alice.core, alice.namespace, again)
    assert second["spec"]["volumes"] == first["spec"]["volumes"]
    assert second["spec"]["containers"] == first["spec"]["containers"]
    assert_injected(
        second,
        files=[
            (ALICE, "secret-password", "/var/secrets/password"),
            (ALICE, "aws-key", "/root/.aws/credentials"),
        ],
        env=[("PASSWORD", ALICE, "secret-password"), ("TOKEN", ALICE, "wandb-token")],
    )


@pytest.mark.parametrize("namespace_name", ["kube-system", RELEASE_NAMESPACE])
def test_system_namespaces_are_not_sent_to_the_webhook(
    alice: User, admin: client.ApiClient, namespace_name: str
) -> None:
    # Were it sent, this pod would be refused: the namespace has no user, the secret no copy.
    core = client.CoreV1Api(admin)
    body = pod_body(asking("secret:nowhere:/var/secrets/x", "X=secret:nowhere"))
    pod = create_pod(core, namespace_name, body)
    try:
        assert_untouched(pod)
    finally:
        core.delete_namespaced_pod(body["metadata"]["name"], namespace_name)


def test_server_side_dry_run_shows_the_mutation_and_creates_nothing(
    alice: User, cluster: ControlPlane
) -> None:
    scenario = SCENARIOS[2]  # env and file
    body = pod_body(asking(scenario.volumes, scenario.env))
    kubectl = [
        str(cluster.bin_dir / "kubectl"),
        f"--kubeconfig={alice.kubeconfig}",
        f"--namespace={alice.namespace}",
    ]
    result = subprocess.run(
        [*kubectl, "apply", "--dry-run=server", "-o", "yaml", "-f", "-"],
        input=yaml.safe_dump(body),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert_injected(
        shown,
        files=[(ALICE, key, path) for key, path in scenario.files],
        env=[(name, ALICE, key) for name, key in scenario.variables],
    )
    with pytest.raises(ApiException) as absent:
        alice.core.read_namespaced_pod(body["metadata"]["name"], alice.namespace)
    assert absent.value.status == 404

    # A refusal reads the same through kubectl.
    refused = pod_body(asking(env="A=secret:missing-a"))
    result = subprocess.run(
        [*kubectl, "apply", "--dry-run=server", "-f", "-"],
        input=yaml.safe_dump(refused),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert DENIED + "Missing secrets: 'missing-a'" in result.stderr


def test_only_writes_that_may_expose_a_value_depend_on_the_webhook(
    alice: User, admin: client.ApiClient, operator: OperatorProcess
) -> None:
    """With the operator down, an inline UserSecret and a grant's label edit are admitted; a
    new grant, which may share what its author may not read, is not."""
    core = client.CoreV1Api(admin)
    grant: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SecretGrant",
        "metadata": {"name": f"to-bob-{uid()}"},
        "spec": {"secretName": "secret-password", "user": "bob"},
    }
    name = grant["metadata"]["name"]
    alice.custom.create_namespaced_custom_object(
        GROUP, VERSION, alice.namespace, "secretgrants", grant
    )
    operator.stop()
    try:
        alice.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            alice.namespace,
            "usersecrets",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "UserSecret",
                "metadata": {"name": f"inline-{uid()}"},
                "spec": {"value": "eA=="},
            },
        )
        alice.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            alice.namespace,
            "secretgrants",
            name,
            {"metadata": {"labels": {"team": "ml"}}},
        )
        with pytest.raises(ApiException) as refused:
            alice.custom.patch_namespaced_custom_object(
                GROUP, VERSION, alice.namespace, "secretgrants", name, {"spec": {"user": "carol"}}
            )
        assert refused.value.status == 500, refused.value.body
        assert 'failed calling webhook "secretgrants.usersecrets.io"' in message(refused.value)
    finally:
        operator.start()
        wait_for(lambda: webhook_answers(core, alice.namespace), what="the webhook to answer")


def test_only_pods_that_ask_depend_on_the_webhook(
    alice: User, admin: client.ApiClient, operator: OperatorProcess
) -> None:
    core = client.CoreV1Api(admin)
    operator.stop()
    try:
        plain = create_pod(alice.core, alice.namespace, pod_body())
        assert_untouched(plain)
        other = create_pod(
            alice.core, alice.namespace, pod_body({"example.com/volumes": "secret:x:/x"})
        )
        assert_untouched(other)

        asked = pod_body(asking("secret:secret-password:/var/secrets/password"))
        error = denial(alice.core, alice.namespace, asked)
        assert error.status == 500, error.body
        assert f'failed calling webhook "{WEBHOOK}"' in message(error)
    finally:
        operator.start()
        wait_for(lambda: webhook_answers(core, alice.namespace), what="the webhook to answer")
    pod = create_pod(alice.core, alice.namespace, asked)
    assert_injected(pod, files=[(ALICE, "secret-password", "/var/secrets/password")], env=[])
