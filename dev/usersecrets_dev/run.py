"""`make run`: a local control plane with the chart, the operator and the web UI, until
interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from kubernetes import config

from usersecrets_dev.controlplane import running
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.sample_users import sample_user
from usersecrets_dev.ui_process import UiProcess

SAMPLE_USERS = ("alice", "bob")


def main(argv: Sequence[str] | None = None) -> None:
    """`make run`: against $KUBECONFIG if set, else a local control plane with the chart."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the control plane's state here")
    args = parser.parse_args(argv)
    if os.environ.get("KUBECONFIG"):
        os.execvp(sys.executable, [sys.executable, "-m", "usersecrets.main"])  # noqa: S606
    with running(args.workdir) as plane:
        operator = OperatorProcess(plane, values=["ui.enabled=true"]).start()
        ui = UiProcess(plane, operator.objects).start()
        admin = config.new_client_from_config(config_file=str(plane.kubeconfig))
        tokens = {user: sample_user(admin, user) for user in SAMPLE_USERS}
        (plane.workdir / "tokens").mkdir(exist_ok=True)
        lines = []
        for user, (namespace, token) in tokens.items():
            path = plane.workdir / "tokens" / user
            path.write_text(token + "\n")
            path.chmod(0o600)
            lines.append(f"    {user:6} namespace {namespace}, token in {path}")
        print(
            f"The operator runs as the chart's ServiceAccount; logs in {plane.logs}.\n"
            f"Point kubectl at the cluster with:\n\n    export KUBECONFIG={plane.kubeconfig}\n\n"
            f"The web UI: {ui.url}/\n"
            "Sign in as a sample user by pasting their token (a ServiceAccount token that may\n"
            "act only in that user's namespace):\n\n" + "\n".join(lines) + "\n\n"
            f"    e.g. xclip -selection clipboard < {plane.workdir / 'tokens' / 'alice'}\n"
            "Or, as an authenticating proxy would, send it as a header:\n\n"
            f'    curl -H "Authorization: Bearer $(cat {plane.workdir / "tokens" / "alice"})" '
            f"{ui.url}/n/alice/secrets\n",
            flush=True,
        )
        signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            signal.sigwait(signals)
        finally:
            ui.stop()
            operator.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
