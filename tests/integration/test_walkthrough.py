"""The walkthrough `make run` prints works as pasted: the same sample users, made the same way,
and its very lines run by bash against the test cluster."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from commands import SCRIPTS
from conftest import NODE_TOLERATION, delete_namespace
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.node import Node
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.sample_users import sample_user, user_kubeconfig
from usersecrets_dev.walkthrough import Person, commands

pytestmark = pytest.mark.integration

#: `printf %s s3cr3t | sha256sum`
DIGEST = "4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd  -"


@pytest.fixture
def people(
    cluster: ControlPlane,
    operator: OperatorProcess,
    admin: client.ApiClient,
    users: Callable[[str], str],
) -> Iterator[tuple[Person, Person]]:
    """alice and bob as `make run` makes them (with names of this test's own)."""
    made, namespaces = [], []
    for name in ("alice", "bob"):
        user = users(name)
        namespace, _token = sample_user(admin, user)
        namespaces.append(namespace)
        made.append(Person(user, user_kubeconfig(admin, cluster, user, namespace)))
    yield made[0], made[1]
    for namespace in namespaces:
        delete_namespace(admin, namespace)


def paste(text: str, cluster: ControlPlane, tmp_path: Path) -> list[str]:
    """The lines run as a shell runs what is pasted into it, stopping at the first failure."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        "PATH": os.pathsep.join([str(SCRIPTS), str(cluster.bin_dir), os.environ["PATH"]]),
        "KUBECACHEDIR": str(tmp_path / "kube-cache"),
    }
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", text],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_the_walkthrough_on_the_node(
    people: tuple[Person, Person], node: Node, cluster: ControlPlane, tmp_path: Path
) -> None:
    alice, bob = people
    text = commands(alice, bob, node=True, tolerations=[NODE_TOLERATION])
    assert paste(text, cluster, tmp_path) == [
        f"secret:/{alice.name}/wandb-token",
        "job.batch/hello created",
        "job.batch/hello condition met",
        DIGEST,
        DIGEST,
        DIGEST,
    ]


def test_the_walkthrough_without_a_node(
    people: tuple[Person, Person], cluster: ControlPlane, tmp_path: Path
) -> None:
    alice, bob = people
    *said, env = paste(commands(alice, bob, node=False), cluster, tmp_path)
    assert said == [
        f"secret:/{alice.name}/wandb-token",
        "job.batch/hello created",
        "job.batch/hello condition met",
    ]
    (variable,) = json.loads(env)
    assert variable["name"] == "WANDB_API_KEY"
    assert variable["valueFrom"]["secretKeyRef"]["name"].startswith(
        f"usec-{alice.name}-wandb-token-"
    )
