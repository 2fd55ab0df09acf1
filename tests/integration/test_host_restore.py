"""A node's harness that dies leaves the host changed; the next start puts it back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_or_fail, wait_for
from usersecrets_dev.controlplane import REPO
from usersecrets_dev.host import HostRecord, links, mount_points, read_sysctl
from usersecrets_dev.node import NodeHost

pytestmark = pytest.mark.integration

BRIDGE, ADDRESS, LOCK = "ustest0", "10.244.9.1", b"\0usersecrets-host-test"
SYSCTL = "kernel.keys.root_maxkeys"
FIXED_ENTRY = Path("/var/lib/cni/usersecrets-host-test")

#: A harness that starts a NodeHost, changes the host the ways a node does, and is killed.
CRASHER = f"""
import subprocess, sys, time
from pathlib import Path
from usersecrets_dev.host import read_sysctl, write_sysctl
from usersecrets_dev.node import NodeHost

root, state, cgroup = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
NodeHost(root, state, {BRIDGE!r}, {ADDRESS!r}, cgroup, {LOCK!r}).start()
(root / "mnt").mkdir(parents=True)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "mnt")], check=True)
group = Path("/sys/fs/cgroup/pids") / cgroup / "pod"
group.mkdir(parents=True)
pod = subprocess.Popen(["sleep", "600"], start_new_session=True)
(group / "cgroup.procs").write_text(str(pod.pid))
Path({str(FIXED_ENTRY)!r}).parent.mkdir(parents=True, exist_ok=True)
Path({str(FIXED_ENTRY)!r}).write_text("left")
write_sysctl({SYSCTL!r}, str(int(read_sysctl({SYSCTL!r})) + 1))
print(pod.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_the_next_start_restores_what_a_killed_run_changed(
    tmp_path: Path, node_host: NodeHost | str
) -> None:
    if isinstance(node_host, str):
        skip_or_fail(f"no node on this machine: {node_host}")
    root, state, cgroup = tmp_path / "node", tmp_path / "state.json", "usersecrets-host-test"
    before = HostRecord.take(root, BRIDGE, cgroup)
    sysctl = read_sysctl(SYSCTL)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'dev'}:{REPO / 'operator'}"}
    crasher = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(root), str(state), cgroup],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert crasher.stdout is not None
    pod = int(crasher.stdout.readline())
    crasher.send_signal(signal.SIGKILL)
    crasher.wait()

    assert BRIDGE in links()
    assert str(root / "mnt") in mount_points()
    assert alive(pod)
    assert FIXED_ENTRY.exists()
    assert read_sysctl(SYSCTL) == str(int(sysctl) + 1)
    assert state.exists()

    host = NodeHost(root, state, BRIDGE, ADDRESS, cgroup, LOCK).start()
    wait_for(lambda: not alive(pod), timeout=10, what=f"the left-over process {pod} to be gone")
    assert host.stop() == []
    assert before.differences() == []
    assert read_sysctl(SYSCTL) == sysctl
    assert not state.exists()
