"""`usersecrets-operator` as a local process, installed by the chart and running as its identity."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from usersecrets_dev.chart import (
    chart_environment,
    chart_identity,
    install_chart,
    lease_holder,
    uninstall_chart,
)
from usersecrets_dev.controlplane import ControlPlane, ControlPlaneError, free_port
from usersecrets_dev.processes import die_with_parent


def spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m module`, its output appended to `log`; it dies with us."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )


def wait_ready(
    process: subprocess.Popen[bytes], log: Path, ready_url: str, what: str, timeout: float
) -> None:
    """Returns once `ready_url` answers 200; fails with the log's end if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise ControlPlaneError(f"{what} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError), urllib.request.urlopen(ready_url, timeout=1) as answer:  # noqa: S310
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise ControlPlaneError(f"{what} was not ready after {timeout}s; see {log}")


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
        self.values = list(values)
        self.overrides = overrides
        self.log = plane.logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._install()

    def _install(self) -> None:
        objects = install_chart(self.plane, self.webhook_port, *self.values)
        self.objects = objects
        self.kubeconfig = chart_identity(self.plane, objects)
        self.env = {
            **os.environ,
            **chart_environment(objects),
            "KUBECONFIG": str(self.kubeconfig),
            "USERSECRETS_WEBHOOK_HOST": "127.0.0.1",
            "USERSECRETS_WEBHOOK_PORT": str(self.webhook_port),
            "USERSECRETS_WEBHOOK_EXTRA_HOSTS": '["127.0.0.1"]',
            "USERSECRETS_METRICS_PORT": str(self.metrics_port),
            **self.overrides,
        }

    def uninstall(self) -> None:
        """Stops the operator and `helm uninstall`s its release: makes way for another one."""
        self.stop()
        uninstall_chart(self.plane)

    def reinstall(self, timeout: float = 60.0) -> OperatorProcess:
        """Installs the release again and starts the operator; returns once it leads."""
        self._install()
        self.start(timeout)
        assert self.process is not None
        identity = f"{socket.gethostname()}-{self.process.pid}"
        deadline = time.monotonic() + timeout
        while lease_holder(self.plane) != identity:
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"the operator did not lead after {timeout}s")
            time.sleep(0.5)
        return self

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        self.launch()
        return self.ready(timeout)

    def launch(self) -> None:
        """Starts the process, not waiting: several start at once (`ready` for each after)."""
        # Set before it is ready: the fault tests kill it at any moment, startup included.
        self.process = spawn("usersecrets.main", self.env, self.log)

    def ready(self, timeout: float = 60.0) -> OperatorProcess:
        assert self.process is not None, "launch() first"
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        wait_ready(self.process, self.log, url, "the operator", timeout)
        return self

    def memory_mib(self) -> tuple[float, float]:
        """Its resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
        assert self.process is not None, "launch() first"
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        kib = {line.split(":")[0]: int(line.split()[1]) for line in status if line.endswith("kB")}
        return round(kib["VmRSS"] / 1024, 1), round(kib["VmHWM"] / 1024, 1)

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
