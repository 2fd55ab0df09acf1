"""`usersecrets-ui` as a local process, configured as the chart's UI Deployment configures it.

It gets the apiserver's URL and CA and nothing else: no kubeconfig, no ServiceAccount token,
an empty HOME. Whatever it does, it does with the token of the user who signed in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from typing import Any

from usersecrets_dev.chart import chart_environment, ui_object
from usersecrets_dev.controlplane import ControlPlane, free_port
from usersecrets_dev.operator_process import spawn, wait_ready

#: How the tests and `make ui-timing` start Debian's chromium (no sandbox as root in CI, nothing
#: that reaches the network on its own).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: What may not reach the UI from the developer's environment: credentials and the like.
WITHHELD = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HOME")


class UiProcess:
    def __init__(
        self,
        plane: ControlPlane,
        objects: list[dict[str, Any]] | None = None,
        name: str = "ui",
        host: str = "127.0.0.1",
        **overrides: str,
    ) -> None:
        self.plane = plane
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.log = plane.logs / f"{name}.log"
        self.home = tempfile.mkdtemp(prefix="usersecrets-ui-home-")
        deployment = ui_object(objects or [], "Deployment")
        chart_env = chart_environment(objects or [], deployment) if deployment else {}
        chart_env.pop("USERSECRETS_UI_API_CA_FILE", None)  # the in-cluster path
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in WITHHELD},
            **chart_env,
            "HOME": self.home,
            "USERSECRETS_UI_API_SERVER": plane.server,
            "USERSECRETS_UI_API_CA_FILE": str(plane.workdir / "pki" / "ca.crt"),
            "USERSECRETS_UI_HOST": host,
            "USERSECRETS_UI_PORT": str(self.port),
            # Plain HTTP on loopback: a Secure cookie would never come back.
            "USERSECRETS_UI_SECURE_COOKIES": "false",
            **overrides,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> UiProcess:
        self.process = spawn("usersecrets.ui.main", self.env, self.log)
        wait_ready(self.process, self.log, f"{self.url}/healthz", "the UI", timeout)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
