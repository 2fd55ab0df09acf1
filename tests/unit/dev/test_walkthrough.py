"""The walkthrough `make run` prints is the one the README shows."""

from __future__ import annotations

from pathlib import Path

from usersecrets_dev.controlplane import REPO
from usersecrets_dev.walkthrough import Person, commands


def test_the_readme_shows_the_walkthrough_make_run_prints() -> None:
    printed = commands(
        Person("alice", Path("/tmp/usersecrets-cp-1a2b3c/alice.kubeconfig")),
        Person("bob", Path("/tmp/usersecrets-cp-1a2b3c/bob.kubeconfig")),
        node=True,
    )
    assert f"```sh\n{printed}```\n" in (REPO / "README.md").read_text()


def test_a_node_that_takes_only_some_pods_gets_the_tolerations_it_needs() -> None:
    toleration = {"key": "usersecrets.io/e2e", "operator": "Exists", "effect": "NoSchedule"}
    printed = commands(
        Person("a", Path("a")), Person("b", Path("b")), node=False, tolerations=[toleration]
    )
    assert (
        '      tolerations: [{"key": "usersecrets.io/e2e", "operator": "Exists", '
        '"effect": "NoSchedule"}]\n'
    ) in printed
