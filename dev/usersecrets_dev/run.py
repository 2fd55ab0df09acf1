"""`make run`: a local control plane with the chart and the operator, until interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from usersecrets_dev.controlplane import running
from usersecrets_dev.operator_process import OperatorProcess


def main(argv: Sequence[str] | None = None) -> None:
    """`make run`: against $KUBECONFIG if set, else a local control plane with the chart."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the control plane's state here")
    args = parser.parse_args(argv)
    if os.environ.get("KUBECONFIG"):
        os.execvp(sys.executable, [sys.executable, "-m", "usersecrets.main"])  # noqa: S606
    with running(args.workdir) as plane:
        operator = OperatorProcess(plane).start()
        print(
            f"The operator runs as the chart's ServiceAccount; logs in {plane.logs}.\n"
            f"Point kubectl at the cluster with:\n\n    export KUBECONFIG={plane.kubeconfig}\n",
            flush=True,
        )
        signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            signal.sigwait(signals)
        finally:
            operator.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
