"""A real node for the local control plane: kubelet, containerd, runc and a CNI bridge.

Pods run in network namespaces that containerd makes for them, attached to a bridge that this
module makes, with no gateway, no default route and no NAT: a pod reaches only the bridge's
subnet, where the apiserver listens (on the bridge address) and where the other pods are.
Images never come from a registry: they are built here (usersecrets_dev.images) and imported,
and containerd's only registry endpoint is a closed loopback port, so nothing is pulled.

Everything the node changes on the host is recorded first (usersecrets_dev.host) and put back
by `NodeHost.stop()`, or by the next `NodeHost.start()` after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from usersecrets_dev import images
from usersecrets_dev.controlplane import REPO, ControlPlane, free_port
from usersecrets_dev.host import HostRecord
from usersecrets_dev.processes import Processes

NODE_NAME = "usersecrets-node"
BRIDGE = "usnode0"
BRIDGE_ADDRESS = "10.244.0.1"
SUBNET = "10.244.0.0/24"
#: Fixed, so that the leftovers of a crashed run are found by the next one; root's, not in a
#: world-writable directory where another user could plant a link.
NODE_ROOT = Path("/var/lib/usersecrets-node")
STATE_FILE = Path("/var/lib/usersecrets-node.json")
CGROUP = "usersecrets-node"
#: An abstract socket: held while a node runs on this host, released by the kernel at exit.
LOCK_NAME = b"\0usersecrets-node"
CNI_BIN = Path("/usr/lib/cni")
RUNTIME_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "ip")


class NodeError(RuntimeError):
    """The node could not be started."""


def unavailable_reason(bin_dir: Path | None) -> str | None:
    """Why this machine cannot run the node, or None when it can."""
    if os.geteuid() != 0:
        return "the node needs root (kubelet and containerd manage mounts, cgroups and links)"
    status = Path("/proc/self/status").read_text()
    effective = int(
        next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16
    )
    cap_sys_admin, cap_net_admin = 21, 12
    if not effective >> cap_sys_admin & 1 or not effective >> cap_net_admin & 1:
        return "the node needs CAP_SYS_ADMIN and CAP_NET_ADMIN (mounts, network namespaces)"
    if not os.access("/sys/fs/cgroup/memory", os.W_OK) and not os.access(
        "/sys/fs/cgroup/cgroup.procs", os.W_OK
    ):
        return "the node needs writable cgroups under /sys/fs/cgroup"
    if bin_dir is None or not (bin_dir / "kubelet").is_file():
        return "kubelet is not built: run `make test` (hack/node/build.sh)"
    missing = [b for b in RUNTIME_BINARIES if shutil.which(b) is None]
    missing += [p for p in ("bridge", "host-local", "loopback") if not (CNI_BIN / p).is_file()]
    if missing:
        return (
            f"the node needs {', '.join(missing)} (hack/node/build.sh installs Debian's packages)"
        )
    return None


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class NodeHost:
    """The host side of the node: the lock, the record of the host, the bridge.

    Started before the control plane, because the apiserver listens on the bridge's address.
    """

    def __init__(
        self,
        root: Path = NODE_ROOT,
        state_file: Path = STATE_FILE,
        bridge: str = BRIDGE,
        address: str = BRIDGE_ADDRESS,
        cgroup: str = CGROUP,
        lock: bytes = LOCK_NAME,
    ) -> None:
        """The defaults are the node's; a test of the restore itself uses names of its own."""
        self.root, self.state_file, self.bridge = root, state_file, bridge
        self.address, self.cgroup, self.lock_name = address, cgroup, lock
        self._lock: socket.socket | None = None
        self.record: HostRecord | None = None

    def start(self) -> NodeHost:
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lock.bind(self.lock_name)
        except OSError as error:
            lock.close()
            raise NodeError("another usersecrets node runs on this host") from error
        self._lock = lock
        try:
            if self.state_file.exists():
                # A run that crashed left its record: put the host back as that run found it.
                HostRecord.load(self.state_file).restore(extra_processes=[str(self.root)])
                self.state_file.unlink()
            self.record = HostRecord.take(self.root, self.bridge, self.cgroup)
            self.record.save(self.state_file)
            self._add_bridge()
        except BaseException:
            self.stop()
            raise
        return self

    def _add_bridge(self) -> None:
        for command in (
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.address}/24", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            subprocess.run(command, check=True, capture_output=True)

    def stop(self) -> list[str]:
        """Puts the host back as recorded; returns what still differs (nothing, we hope)."""
        left: list[str] = []
        if self.record is not None:
            self.record.restore(extra_processes=[str(self.root)])
            left = self.record.differences()
            self.state_file.unlink(missing_ok=True)
            self.record = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return left


class Node:
    """containerd and kubelet, registered with `plane` as NODE_NAME, with our images imported."""

    def __init__(
        self,
        plane: ControlPlane,
        bin_dir: Path,
        root: Path = NODE_ROOT,
        taints: Sequence[dict[str, str]] = (),
    ) -> None:
        """`taints`: the node registers with them, so only pods that tolerate them run on it."""
        if plane.address != BRIDGE_ADDRESS:
            raise NodeError(f"the apiserver must listen on {BRIDGE_ADDRESS}, where pods reach it")
        self.plane = plane
        self.bin_dir = bin_dir
        self.root = root
        self.logs = plane.logs
        self.socket = root / "containerd" / "containerd.sock"
        self.taints = list(taints)
        self.image_names: tuple[str, ...] = ()
        self._processes = Processes(self.logs)

    # -- configuration ----------------------------------------------------------------------

    def _containerd_config(self) -> Path:
        root = self.root
        hosts = root / "registry-hosts"
        # Every registry resolves to a closed loopback port: an image that is not imported
        # fails to pull at once, and no pull ever leaves the machine.
        _write(
            hosts / "_default" / "hosts.toml",
            'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n'
            '  capabilities = ["pull", "resolve"]\n',
        )
        cni = self._cni_config()
        return _write(
            root / "containerd.toml",
            f"""version = 2
root = "{root}/containerd/root"
state = "{root}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE}"
  enable_selinux = false
  # Without CAP_SYS_RESOURCE runc cannot lower a sandbox's oom_score_adj below ours.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc")}"
        Root = "{root}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{hosts}"
""",
        )

    def _cni_config(self) -> Path:
        directory = self.root / "cni"
        config = {
            "cniVersion": "0.4.0",
            "name": "usersecrets-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    # No gateway, no masquerade, no routes: a pod reaches the subnet only.
                    "isGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [
                            [
                                {
                                    "subnet": SUBNET,
                                    "rangeStart": "10.244.0.10",
                                    "rangeEnd": "10.244.0.250",
                                }
                            ]
                        ],
                        "dataDir": str(self.root / "cni-ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        _write(directory / "10-usersecrets.conflist", json.dumps(config, indent=1))
        return directory

    def _kubelet_config(self) -> Path:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine has cgroups v1 (hybrid); kubelet runs on it only when told to.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            # Pods' cgroups under a root of our own, which teardown empties and removes.
            "cgroupRoot": f"/{CGROUP}",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": BRIDGE_ADDRESS,
            "port": free_port(BRIDGE_ADDRESS),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.plane.workdir / "pki" / "ca.crt")},
            },
            # Only clients with a certificate of the cluster's CA get this far (the apiserver).
            "authorization": {"mode": "AlwaysAllow"},
            # No iptables chains on the host: nothing here needs kubelet's (kube-proxy would).
            "makeIPTablesUtilChains": False,
            "podLogsDir": str(self.root / "pod-logs"),
            "volumePluginDir": str(self.root / "volume-plugins"),
            # Pods get an empty resolv.conf: there is no DNS to reach.
            "resolvConf": "",
            "failSwapOn": False,
            "registerNode": True,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            # Images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "maxPods": 40,
            # Secret volumes resynced every 10 s instead of every minute.
            "syncFrequency": "10s",
            "registerWithTaints": self.taints,
        }
        return _write(self.root / "kubelet.yaml", yaml.safe_dump(config))

    # -- processes --------------------------------------------------------------------------

    def _check_alive(self) -> None:
        exited = self._processes.exited()
        if exited is not None:
            raise NodeError(exited)

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", f"--address={self.socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def import_image(self, archive: Path) -> None:
        result = self.ctr("images", "import", str(archive))
        if result.returncode != 0:
            raise NodeError(f"ctr images import {archive.name}: {result.stderr[-2000:]}")

    def start(self, timeout: float = 120.0) -> Node:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            # kubelet wants its cgroup root to exist in every hierarchy it uses.
            if hierarchy.is_dir() and not hierarchy.is_symlink():
                with contextlib.suppress(OSError):
                    (hierarchy / CGROUP).mkdir(exist_ok=True)
        config = self._containerd_config()
        # containerd finds its shim on PATH: Debian's, next to containerd.
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        self._processes.spawn("containerd", ["containerd", f"--config={config}"], env)
        self._wait(lambda: self.ctr("version").returncode == 0, timeout, "containerd")
        image_dir = self.root / "images"
        self.import_image(images.pause_image(self.bin_dir / "pause", image_dir / "pause.tar"))
        for archive in images.busybox_images(image_dir):
            self.import_image(archive)
        self.image_names = (images.BUSYBOX, images.BUSYBOX_NONROOT)
        kubeconfig = self.plane.user_kubeconfig(f"system:node:{NODE_NAME}", ("system:nodes",))
        self._processes.spawn(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={self._kubelet_config()}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.root / 'kubelet'}",
                f"--cert-dir={self.root / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={BRIDGE_ADDRESS}",
                "--v=1",
            ],
            env,
        )
        self._wait(self.ready, timeout, "the node to be Ready")

    def ready(self) -> bool:
        status, body = self.plane.get(f"/api/v1/nodes/{NODE_NAME}")
        if status != 200:
            return False
        node = json.loads(body)
        conditions = node.get("status", {}).get("conditions", [])
        # The node-lifecycle controller lifts the not-ready taint once kubelet says Ready.
        taints = [t for t in node.get("spec", {}).get("taints") or [] if t not in self.taints]
        return (
            any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and not taints
        )

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                if condition():
                    return
            time.sleep(0.3)
        raise NodeError(f"timed out after {timeout}s waiting for {what}; logs in {self.logs}")

    def stop(self) -> None:
        """Stops kubelet, then every container, then containerd; NodeHost.stop() cleans up."""
        self._processes.stop(["kubelet"], timeout=20)
        if self._processes.pids():
            self._stop_pods()
        self._processes.stop(timeout=20)

    def _stop_pods(self) -> None:
        """Kills and deletes every container's task, so that their shims exit too."""
        listed = self.ctr("tasks", "list", "--quiet")
        for task in listed.stdout.split():
            self.ctr("tasks", "kill", "--all", "--signal=SIGKILL", task)
        deadline = time.monotonic() + 20
        for task in listed.stdout.split():
            while self.ctr("tasks", "delete", task).returncode != 0 and time.monotonic() < deadline:
                time.sleep(0.2)


def node_bin_dir(check: bool = True) -> Path | None:
    """hack/node/build.sh's cache directory (built if `check` is False), or None."""
    script = REPO / "hack" / "node" / "build.sh"
    args = ["--check"] if check else []
    result = subprocess.run(["bash", str(script), *args], check=False, stdout=subprocess.PIPE)
    if result.returncode != 0:
        return None
    return Path(result.stdout.decode().strip().splitlines()[-1])
