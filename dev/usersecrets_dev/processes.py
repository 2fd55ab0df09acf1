"""Child processes of the local cluster: each in its own process group, with its own log."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO


def die_with_parent() -> None:
    """Runs in the child: the kernel kills it if the test process dies, even by SIGKILL."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


class Processes:
    """Named children with their logs in one folder, checked and stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._running: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def spawn(
        self, name: str, command: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,
            env=env,
        )
        self._running.append((name, process, log))
        return process

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process, _ in self._running}

    def exited(self) -> str | None:
        """Which one exited, with the tail of its log; None while all run."""
        for name, process, _ in self._running:
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                return f"{name} exited with {process.returncode}:\n{tail}"
        return None

    def stop(
        self,
        names: Collection[str] | None = None,
        signum: signal.Signals = signal.SIGTERM,
        timeout: float = 10.0,
    ) -> None:
        """Signals the process groups of `names` (all by default), last started first, then
        waits for each; SIGKILL for those still there after `timeout`."""
        chosen = [e for e in self._running if names is None or e[0] in names]
        for _name, process, _log in reversed(chosen):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
        for _name, process, log in reversed(chosen):
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
        self._running = [e for e in self._running if e not in chosen]
