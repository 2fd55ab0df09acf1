"""A real, local Kubernetes control plane for `make run` and the integration tests.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as child processes on free
loopback ports, the way controller-runtime's envtest does, because no container engine is
available where we develop and test. With a node (usersecrets_dev.node) the apiserver listens
on the node's bridge address instead, the one address its pods can reach. The binaries come
from `KUBEBUILDER_ASSETS` when it has them all, otherwise from hack/controlplane/build.sh,
which builds the pinned release once into a cache.

The apiserver is set up as SECURITY.md asks of production ones: it encrypts Secrets and
UserSecrets at rest (a random key per cluster), and it presents a client certificate of its own
CA to the admission webhooks that ask for one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from usersecrets.webhook.certificates import Bundle, issue_certificate, new_ca
from usersecrets_dev.processes import Processes

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "helm",
)
REPO = Path(__file__).resolve().parents[2]
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
    "job-controller",
    # What a node and the chart's Deployment need: Deployments, their ReplicaSets, the
    # Services' endpoints (the apiserver dials the webhook's pod IPs through them), taints
    # lifted from Ready nodes, and the CA ConfigMap that every token volume mounts.
    "deployment-controller",
    "replicaset-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "node-lifecycle-controller",
    "root-ca-certificate-publisher-controller",
    # Keeps ResourceQuotas' status.used true after deletions too: the operator reads it.
    "resourcequota-controller",
)


#: What the apiserver encrypts at rest: Secrets, and the UserSecrets whose spec.value is a value.
ENCRYPTED_RESOURCES = ("secrets", "usersecrets.usersecrets.io")
#: How an encrypted object starts in etcd: the provider, its version and the key's name.
ENCRYPTED_PREFIX = b"k8s:enc:secretbox:v1:key1:"


def encryption_configuration(key: bytes) -> dict[str, Any]:
    """The EncryptionConfiguration SECURITY.md tells operators to use, with `key` (32 bytes).

    Reads fall through to `identity`, so objects written before encryption was switched on
    stay readable until they are rewritten.
    """
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": list(ENCRYPTED_RESOURCES),
                "providers": [
                    {
                        "secretbox": {
                            "keys": [{"name": "key1", "secret": base64.b64encode(key).decode()}]
                        }
                    },
                    {"identity": {}},
                ],
            }
        ],
    }


#: The name in the client certificate the apiserver presents to every admission webhook.
WEBHOOK_CLIENT = "kube-apiserver-webhook-client"


def admission_configuration(kubeconfig: Path) -> dict[str, Any]:
    """Both webhook admission plugins take their credentials for webhooks from `kubeconfig`."""
    webhook = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(kubeconfig),
    }
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {"name": name, "configuration": webhook}
            for name in ("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook")
        ],
    }


def webhook_client_kubeconfig(certificate: Bundle) -> dict[str, Any]:
    """The apiserver's credentials for calling webhooks: this client certificate for every
    webhook (`*`), which it presents to those that ask for one."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "users": [
            {
                "name": "*",
                "user": {
                    "client-certificate-data": base64.b64encode(certificate.cert_pem).decode(),
                    "client-key-data": base64.b64encode(certificate.key_pem).decode(),
                },
            }
        ],
    }


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, built or started."""


def _assets() -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and all((Path(assets) / name).is_file() for name in BINARIES):
        return Path(assets)
    return None


def _build(*args: str) -> Path | None:
    script = REPO / "hack" / "controlplane" / "build.sh"
    if not script.is_file():
        raise ControlPlaneError(
            f"no control plane binaries: set KUBEBUILDER_ASSETS to a directory with "
            f"{', '.join(BINARIES)}, or run from a checkout that has {script}"
        )
    result = subprocess.run(["bash", str(script), *args], check=False, stdout=subprocess.PIPE)
    if result.returncode != 0:
        return None
    return Path(result.stdout.decode().strip().splitlines()[-1])


def find_binaries() -> Path:
    """KUBEBUILDER_ASSETS when it has every binary, else the cached build of the pinned release."""
    found = _assets() or _build()
    if found is None:
        raise ControlPlaneError("hack/controlplane/build.sh failed; its output says why")
    return found


def cached_binaries() -> Path | None:
    """The binaries if they are already there, without building anything."""
    return _assets() or _build("--check")


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, started and stopped as one."""

    def __init__(
        self, bin_dir: Path, workdir: Path | None = None, address: str = "127.0.0.1"
    ) -> None:
        """`address`: where the apiserver listens; loopback, or a node's bridge address."""
        self.bin_dir = bin_dir
        self._made_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="usersecrets-cp-"))
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.address = address
        self.port = free_port(address)
        self.server = f"https://{address}:{self.port}"
        self.etcd_url = ""
        #: The CA of the client certificate the apiserver presents to webhooks, and its file.
        self.webhook_client_ca: Bundle | None = None
        self.webhook_client_ca_file = self.workdir / "pki" / "webhook-client-ca.crt"
        self._processes = Processes(self.logs)
        self._args: dict[str, list[str]] = {}
        self._ca: Bundle | None = None

    # -- certificates and kubeconfigs -------------------------------------------------

    @property
    def ca(self) -> Bundle:
        if self._ca is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._ca

    def user_kubeconfig(
        self, user: str, groups: Sequence[str] = (), namespace: str | None = None
    ) -> Path:
        """A kubeconfig that authenticates as `user` (and `groups`) with a client certificate,
        in `namespace` unless told otherwise."""
        cert = issue_certificate(self.ca, common_name=user, organizations=groups, client=True)
        path = self.workdir / f"{user}.kubeconfig"
        config = self._kubeconfig_dict(user, cert)
        if namespace:
            config["contexts"][0]["context"]["namespace"] = namespace
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def token_kubeconfig(self, name: str, token: str) -> Path:
        """A kubeconfig that authenticates with a bearer token (a ServiceAccount's)."""
        path = self.workdir / f"{name}.kubeconfig"
        config = self._kubeconfig_dict(name, None)
        config["users"][0]["user"] = {"token": token}
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def _kubeconfig_dict(self, user: str, cert: Bundle | None) -> dict[str, Any]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        credentials = (
            {"client-certificate-data": b64(cert.cert_pem), "client-key-data": b64(cert.key_pem)}
            if cert
            else {}
        )
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.ca.cert_pem),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": credentials,
                }
            ],
            "contexts": [{"name": user, "context": {"cluster": "local", "user": user}}],
            "current-context": user,
        }

    def _write_pki(self) -> dict[str, Path]:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        self._ca = new_ca("usersecrets-devcluster-ca")
        serving = issue_certificate(
            self.ca,
            common_name="kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default"),
            ip_addresses=tuple(dict.fromkeys(("127.0.0.1", self.address))),
        )
        # How the apiserver authenticates to kubelets for `kubectl logs/exec`.
        kubelet_client = issue_certificate(
            self.ca,
            common_name="kube-apiserver-kubelet-client",
            organizations=("system:masters",),
            client=True,
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # A CA of its own for the apiserver's webhook client certificate: a webhook that trusts
        # it trusts the apiserver alone, not every user with a certificate of the cluster's CA.
        self.webhook_client_ca = new_ca("usersecrets-devcluster-webhook-client-ca")
        webhook_client = issue_certificate(
            self.webhook_client_ca, common_name=WEBHOOK_CLIENT, client=True
        )
        files = {
            "ca.crt": self.ca.cert_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "kubelet-client.crt": kubelet_client.cert_pem,
            "kubelet-client.key": kubelet_client.key_pem,
            "sa.key": _pem_key(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "webhook-client-ca.crt": self.webhook_client_ca.cert_pem,
            "webhook-client.kubeconfig": yaml.safe_dump(
                webhook_client_kubeconfig(webhook_client)
            ).encode(),
            "admission.yaml": yaml.safe_dump(
                admission_configuration(pki / "webhook-client.kubeconfig")
            ).encode(),
            # A random key per cluster: nothing in the tree can decrypt another run's etcd.
            "encryption.yaml": yaml.safe_dump(
                encryption_configuration(secrets.token_bytes(32))
            ).encode(),
        }
        paths = {}
        for name, data in files.items():
            (pki / name).write_bytes(data)
            (pki / name).chmod(0o600)
            paths[name] = pki / name
        return paths

    # -- processes --------------------------------------------------------------------

    def _spawn(self, name: str, args: Sequence[str]) -> None:
        self._processes.spawn(name, [str(self.bin_dir / name), *args])
        self._args[name] = list(args)

    def pids(self) -> dict[str, int]:
        """Component name -> pid, for whoever measures what each one costs."""
        return self._processes.pids()

    def restart(self, *names: str, timeout: float = 120.0) -> None:
        """Kills the named processes (SIGKILL: a crash, not a shutdown) and starts them again,
        in their start order, with the same ports, flags and data; then waits for /readyz."""
        self._processes.stop(names, signal.SIGKILL)
        for name in [n for n in self._args if n in names]:
            self._spawn(name, self._args[name])
        self._wait_ready(timeout)

    def start(self, timeout: float = 120.0) -> ControlPlane:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        pki = self._write_pki()
        etcd_client, etcd_peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.port}",
                f"--tls-cert-file={pki['apiserver.crt']}",
                f"--tls-private-key-file={pki['apiserver.key']}",
                f"--client-ca-file={pki['ca.crt']}",
                # A kubelet may read only what its own pods need (Node, NodeRestriction).
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction,MutatingAdmissionWebhook,"
                "ValidatingAdmissionWebhook",
                f"--admission-control-config-file={pki['admission.yaml']}",
                f"--kubelet-client-certificate={pki['kubelet-client.crt']}",
                f"--kubelet-client-key={pki['kubelet-client.key']}",
                "--kubelet-preferred-address-types=InternalIP",
                # Without kube-proxy no Service IP routes: the apiserver calls a webhook's
                # Service at its endpoints' pod IPs (on the node's bridge) instead.
                "--enable-aggregator-routing=true",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki['sa.pub']}",
                f"--service-account-signing-key-file={pki['sa.key']}",
                f"--encryption-provider-config={pki['encryption.yaml']}",
                "--allow-privileged=true",
                "--v=1",
            ],
        )
        self.kubeconfig.write_text(
            yaml.safe_dump(self._kubeconfig_dict("admin", self._admin_cert()))
        )
        self.kubeconfig.chmod(0o600)
        self._wait_ready(timeout)
        manager = self.user_kubeconfig("system:kube-controller-manager")
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={manager}",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={pki['sa.key']}",
                f"--root-ca-file={pki['ca.crt']}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={self.user_kubeconfig('system:kube-scheduler')}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )
        self._wait_default_service_account(timeout)

    def _admin_cert(self) -> Bundle:
        return issue_certificate(
            self.ca, common_name="admin", organizations=("system:masters",), client=True
        )

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        admin = self._admin_cert()
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "c", Path(tmp) / "k"
            cert.write_bytes(admin.cert_pem)
            key.write_bytes(admin.key_pem)
            context.load_cert_chain(cert, key)
        return context

    def get(self, path: str) -> tuple[int, bytes]:
        """A raw GET as admin; for readiness checks and tests of the apiserver itself."""
        request = urllib.request.Request(self.server + path)  # noqa: S310  (https only)
        try:
            with urllib.request.urlopen(request, context=self._ssl_context(), timeout=5) as r:  # noqa: S310
                return r.status, r.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def etcd_value(self, key: str) -> bytes | None:
        """What etcd itself stores under `key` (as the apiserver wrote it), read through etcd's
        v3 JSON gateway, past the apiserver; None when there is no such key."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        request = urllib.request.Request(  # noqa: S310  (http://127.0.0.1 of our own etcd)
            f"{self.etcd_url}/v3/kv/range", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            found = json.loads(response.read())
        kvs = found.get("kvs") or []
        return base64.b64decode(kvs[0]["value"]) if kvs else None

    def _check_alive(self) -> None:
        exited = self._processes.exited()
        if exited is not None:
            raise ControlPlaneError(exited)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return
            time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver not ready after {timeout}s; logs in {self.logs}")

    def _wait_default_service_account(self, timeout: float) -> None:
        """Pods need the `default` ServiceAccount, which the controller manager creates."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200:
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"controller manager not working after {timeout}s")

    def stop(self) -> None:
        """Stops every process (and its process group) and waits for each to exit."""
        self._processes.stop()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stops; the directory it made (etcd's data, hundreds of MB after a bench) is removed,
        unless the block failed: its logs then tell why."""
        self.stop()
        if self._made_workdir and exc[0] is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
