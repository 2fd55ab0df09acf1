"""The `usersecrets` command in a subprocess, exactly as a user runs it, and its verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OPERATOR_SRC = Path(__file__).resolve().parents[1] / "operator"
#: Where `pip install` put the console scripts (`usersecrets`, `kubectl-usersecrets`, ...).
SCRIPTS = Path(sys.executable).parent


def usersecrets(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environ = {**os.environ, **(env or {})}
    path = [str(OPERATOR_SRC), environ.get("PYTHONPATH")]
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    return subprocess.run(
        [sys.executable, "-m", "usersecrets.cli", *args],
        input=input,
        capture_output=True,
        env=environ,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    """Its output, once it has succeeded without a traceback."""
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    assert b"Traceback" not in result.stderr
    return result.stdout.decode()
