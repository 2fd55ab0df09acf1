"""`usersecrets-operator` as a local process, installed by the chart and running as its identity."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence

from usersecrets_dev.chart import chart_environment, chart_identity, install_chart
from usersecrets_dev.controlplane import ControlPlane, ControlPlaneError, die_with_parent, free_port


class OperatorProcess:
    """`usersecrets-operator` on loopback with the chart's identity and settings."""

    def __init__(
        self,
        plane: ControlPlane,
        name: str = "operator",
        values: Sequence[str] = (),
        **overrides: str,
    ) -> None:
        self.plane = plane
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        objects = install_chart(plane, self.webhook_port, *values)
        self.objects = objects
        self.kubeconfig = chart_identity(plane, objects)
        self.log = plane.logs / f"{name}.log"
        self.env = {
            **os.environ,
            **chart_environment(objects),
            "KUBECONFIG": str(self.kubeconfig),
            "USERSECRETS_WEBHOOK_HOST": "127.0.0.1",
            "USERSECRETS_WEBHOOK_PORT": str(self.webhook_port),
            "USERSECRETS_WEBHOOK_EXTRA_HOSTS": '["127.0.0.1"]',
            "USERSECRETS_METRICS_PORT": str(self.metrics_port),
            **overrides,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        self.plane.logs.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "usersecrets.main"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise ControlPlaneError(
                    f"the operator exited with {self.process.returncode}:\n{tail}"
                )
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{self.metrics_port}/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return self
            time.sleep(0.1)
        raise ControlPlaneError(f"the operator was not ready after {timeout}s; see {self.log}")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
