"""What a node changes on this machine, recorded before the change and put back after.

kubelet and containerd change host-wide state that outlives them: kernel settings, cgroups,
mounts, network links and files at fixed paths. A `HostRecord` is taken before the node touches
anything and written to a state file first, so that a run that crashed (SIGKILL, a reboot of
the test process) is put right by the next start as well as by a normal stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Kernel settings kubelet sets at start (pkg/kubelet/cm: setupKernelTunables).
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
#: Places kubelet, containerd and the CNI plugins write to whatever their configured roots:
#: their entries that were not there before go.
FIXED_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/run/netns",
    "/var/lib/cni",
    "/opt/containerd",
    "/etc/cni",
    "/usr/libexec/kubernetes",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
IPTABLES_TABLES = ("filter", "nat", "mangle")


@dataclass
class HostRecord:
    """The host as it was before the node, and the names the node uses on it."""

    #: The node's own directory (configs, state, logs): removed whole.
    node_root: str
    #: The bridge the node adds: removed.
    bridge: str
    #: The cgroup (under every hierarchy) the node's pods live in: emptied and removed.
    cgroup: str
    sysctls: dict[str, str] = field(default_factory=dict)
    #: Fixed path -> its entries before (None: it did not exist).
    paths: dict[str, list[str] | None] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    #: `iptables -t TABLE -S` lines about KUBE- chains, per table (empty without iptables).
    iptables: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def take(cls, node_root: Path, bridge: str, cgroup: str) -> HostRecord:
        return cls(
            node_root=str(node_root),
            bridge=bridge,
            cgroup=cgroup,
            sysctls={name: read_sysctl(name) for name in SYSCTLS},
            paths={path: _entries(Path(path)) for path in FIXED_PATHS},
            mounts=mount_points(),
            links=links(),
            iptables=kube_iptables(),
        )

    def save(self, path: Path) -> None:
        """Written (and synced) before the first change, so a crash cannot lose it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as file:
            json.dump(asdict(self), file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> HostRecord:
        return cls(**json.loads(path.read_text()))

    def differences(self) -> list[str]:
        """What is not as recorded now; empty when the host is as it was."""
        now = HostRecord.take(Path(self.node_root), self.bridge, self.cgroup)
        found = [
            f"sysctl {name} is {now.sysctls[name]}, was {value}"
            for name, value in self.sysctls.items()
            if now.sysctls.get(name) != value
        ]
        found += [
            f"{path}: {before} -> {now.paths[path]}"
            for path, before in self.paths.items()
            if now.paths.get(path) != before
        ]
        found += [f"new mount {m}" for m in sorted(set(now.mounts) - set(self.mounts))]
        found += [f"new link {n}" for n in sorted(set(now.links) - set(self.links))]
        for table, rules in now.iptables.items():
            found += [
                f"iptables -t {table}: {r}" for r in rules if r not in self.iptables.get(table, [])
            ]
        if Path(self.node_root).exists():
            found.append(f"{self.node_root} exists")
        found += [f"cgroup {c}" for c in self.cgroups()]
        return found

    def cgroups(self) -> list[Path]:
        """The node's cgroup in every hierarchy where it exists."""
        if not CGROUP_ROOT.is_dir():
            return []
        return [
            hierarchy / self.cgroup.strip("/")
            for hierarchy in sorted(CGROUP_ROOT.iterdir())
            if (hierarchy / self.cgroup.strip("/")).is_dir()
        ]

    def restore(self, extra_processes: Sequence[str] = ()) -> None:
        """Puts the host back as recorded: processes, mounts, cgroups, links, files, sysctls.

        `extra_processes`: strings that only the command lines of the node's own processes
        contain (its containerd socket, say): containerd's shims outlive containerd.
        """
        self._kill(extra_processes)
        roots = [self.node_root, *(p for p, before in self.paths.items() if before is None)]
        roots += [f"{p}/{name}" for p, new in self._new_entries() for name in new]
        _unmount_under(roots, keep=set(self.mounts))
        for group in self.cgroups():
            _remove_cgroup(group)
        if self.bridge in links():
            subprocess.run(["ip", "link", "delete", self.bridge], check=False)
        for path, new in self._new_entries():
            for name in new:
                _remove(Path(path) / name)
        for path, before in self.paths.items():
            if before is None:
                _remove(Path(path))
        _remove(Path(self.node_root))
        for name, value in self.sysctls.items():
            if read_sysctl(name) != value:
                write_sysctl(name, value)
        _undo_iptables(self.iptables)

    def _new_entries(self) -> list[tuple[str, list[str]]]:
        result = []
        for path, before in self.paths.items():
            now = _entries(Path(path))
            if before is not None and now is not None:
                result.append((path, sorted(set(now) - set(before))))
        return result

    def _kill(self, extra: Sequence[str]) -> None:
        """SIGKILL every process in the node's cgroups and every one naming the node's root."""
        marks = [self.node_root, *extra]
        for _ in range(50):
            pids = {pid for group in self.cgroups() for pid in _cgroup_pids(group)}
            pids |= set(processes_mentioning(marks))
            pids.discard(os.getpid())
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value)


def _entries(path: Path) -> list[str] | None:
    if path.is_dir() and not path.is_symlink():
        return sorted(os.listdir(path))
    return [] if path.exists() or path.is_symlink() else None


def mount_points() -> list[str]:
    """Every mount point, outermost first (/proc/self/mountinfo escapes spaces as \\040)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), point))
    return points


def links() -> list[str]:
    return sorted(os.listdir("/sys/class/net"))


def kube_iptables() -> dict[str, list[str]]:
    """kubelet's KUBE- chains and the rules jumping to them; {} where iptables is absent."""
    if shutil.which("iptables") is None:
        return {}
    rules = {}
    for table in IPTABLES_TABLES:
        listed = subprocess.run(
            ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout
        rules[table] = [line for line in listed.splitlines() if "KUBE-" in line]
    return rules


def _undo_iptables(before: dict[str, list[str]]) -> None:
    for table, rules in kube_iptables().items():
        new = [r for r in rules if r not in before.get(table, [])]
        for rule in (r for r in new if r.startswith("-A ")):
            subprocess.run(["iptables", "-w", "-t", table, "-D", *rule.split()[1:]], check=False)
        for rule in (r for r in new if r.startswith("-N ")):
            chain = rule.split()[1]
            subprocess.run(["iptables", "-w", "-t", table, "-F", chain], check=False)
            subprocess.run(["iptables", "-w", "-t", table, "-X", chain], check=False)


def processes_mentioning(marks: Iterable[str]) -> list[int]:
    """Pids whose command line contains one of `marks`."""
    wanted = [m.encode() for m in marks if m]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cmdline for mark in wanted):
            found.append(int(entry.name))
    return found


def _cgroup_pids(group: Path) -> set[int]:
    pids: set[int] = set()
    for procs in group.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids |= {int(p) for p in procs.read_text().split()}
    return pids


def _remove_cgroup(group: Path) -> None:
    """rmdir, deepest first: a cgroup directory is removed by rmdir only, once empty."""
    for directory in sorted(
        (d for d in group.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True
    ):
        with contextlib.suppress(OSError):
            directory.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()


def _unmount_under(roots: Iterable[str], keep: set[str]) -> None:
    """Unmounts, innermost first, every mount at or under `roots` that was not in `keep`."""
    prefixes = [r.rstrip("/") for r in roots]
    for _ in range(5):
        points = [
            p
            for p in mount_points()
            if p not in keep and any(p == r or p.startswith(r + "/") for r in prefixes)
        ]
        if not points:
            return
        for point in reversed(points):
            # Detached (MNT_DETACH) when busy: gone from the tree at once, freed when unused.
            subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
