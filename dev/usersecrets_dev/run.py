"""`make run`: a local control plane and node with the chart, the operator and the web UI,
until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from kubernetes import config

from usersecrets_dev.controlplane import ControlPlane, find_binaries
from usersecrets_dev.node import (
    BRIDGE_ADDRESS,
    Node,
    NodeError,
    NodeHost,
    node_bin_dir,
    unavailable_reason,
)
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.sample_users import sample_user, user_kubeconfig
from usersecrets_dev.ui_process import UiProcess
from usersecrets_dev.walkthrough import Person, commands

SAMPLE_USERS = ("alice", "bob")


@contextlib.contextmanager
def cluster(workdir: Path | None) -> Iterator[tuple[ControlPlane, bool, str]]:
    """The control plane, with a node when this machine can run one; whether it has one, and
    what to tell."""
    bin_dir = find_binaries()
    node_bins = node_bin_dir()
    reason = unavailable_reason(node_bins)
    host = None
    if reason is None and node_bins is not None:
        try:
            host = NodeHost().start()
        except NodeError as error:
            reason = str(error)
    if host is None or node_bins is None:
        with ControlPlane(bin_dir, workdir) as plane:
            yield plane, False, f"No node (pods are admitted, never run): {reason}."
        return
    try:
        with ControlPlane(bin_dir, workdir, BRIDGE_ADDRESS) as plane:
            node = Node(plane, node_bins).start()
            try:
                yield (
                    plane,
                    True,
                    (
                        f"A node runs pods; its images: {', '.join(node.image_names)} "
                        "(imagePullPolicy: Never; nothing is pulled)."
                    ),
                )
            finally:
                node.stop()
    finally:
        left = host.stop()
        if left:
            print("The host is not as it was:\n" + "\n".join(left), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    """`make run`: against $KUBECONFIG if set, else a local cluster with the chart."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the control plane's state here")
    args = parser.parse_args(argv)
    if os.environ.get("KUBECONFIG"):
        os.execvp(sys.executable, [sys.executable, "-m", "usersecrets.main"])  # noqa: S606
    signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked from the start: an interrupt while starting up still tears everything down.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    with cluster(args.workdir) as (plane, node, about_node):
        operator = OperatorProcess(plane, values=["ui.enabled=true"]).start()
        ui = UiProcess(plane, operator.objects).start()
        admin = config.new_client_from_config(config_file=str(plane.kubeconfig))
        people: list[Person] = []
        lines: list[str] = []
        (plane.workdir / "tokens").mkdir(exist_ok=True)
        for user in SAMPLE_USERS:
            namespace, token = sample_user(admin, user)
            people.append(Person(user, user_kubeconfig(admin, plane, user, namespace)))
            path = plane.workdir / "tokens" / user
            path.write_text(token + "\n")
            path.chmod(0o600)
            lines.append(f"    {user:6} namespace {namespace}, token in {path}")
        alice, bob = people
        # `usersecrets` is the console script beside this python.
        scripts = Path(sys.executable).parent
        print(
            f"The operator runs as the chart's ServiceAccount; logs in {plane.logs}.\n"
            f"{about_node}\n"
            "Point kubectl (the one built with the cluster, or yours) and the CLI at it with:\n\n"
            f"    export KUBECONFIG={plane.kubeconfig} PATH={plane.bin_dir}:{scripts}:$PATH\n\n"
            "Then, as the sample users alice and bob (each with the built-in `edit` role in their\n"
            "own namespace only), alice adds a secret and shares it, and bob lists it and runs a\n"
            "Job that uses it. Paste:\n\n"
            f"{commands(alice, bob, node=node)}\n"
            f"The web UI: {ui.url}/\n"
            "Sign in as a sample user by pasting their token (a ServiceAccount token that may\n"
            "act only in that user's namespace):\n\n" + "\n".join(lines) + "\n\n"
            f"    e.g. xclip -selection clipboard < {plane.workdir / 'tokens' / 'alice'}\n"
            "Or, as an authenticating proxy would, send it as a header:\n\n"
            f'    curl -H "Authorization: Bearer $(cat {plane.workdir / "tokens" / "alice"})" '
            f"{ui.url}/n/alice/secrets\n",
            flush=True,
        )
        try:
            signal.sigwait(signals)
        finally:
            ui.stop()
            operator.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
