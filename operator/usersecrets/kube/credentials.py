"""Where the apiserver is and how to prove who we are: in a pod, or from a kubeconfig.

Read here rather than with the kubernetes client's loader because importing that client costs
a quarter of a second and 35 MiB (its thousand generated models): the CLI lists secrets in
little more than that, and the operator needs none of it. What kubectl users have in their
kubeconfigs is covered: certificates and keys (inline or files), tokens and token files, exec
plugins (client.authentication.k8s.io, as cloud providers ship them), several files in
KUBECONFIG. The legacy auth-provider plugins, which kubectl itself has replaced with exec
plugins, are refused with a message that says so.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: A projected ServiceAccount token is rotated by the kubelet; read it again this often.
TOKEN_REREAD_SECONDS = 60.0

Headers = Callable[[], dict[str, str]]


class CredentialsError(Exception):
    """The kubeconfig (or the pod's ServiceAccount) cannot be used; the message says why."""


class UnknownContext(CredentialsError):
    """The kubeconfig has no context of that name."""


@dataclass(frozen=True)
class Credentials:
    """The apiserver's URL, the TLS context that trusts it (and presents a client certificate,
    if any), and the headers that authenticate each request (read at each request, so that a
    rotated token or a renewed exec credential is used)."""

    server: str
    ssl_context: ssl.SSLContext
    headers: Headers
    #: The namespace the context names, if it names one.
    namespace: str | None = None


def _no_headers() -> dict[str, str]:
    return {}


@contextlib.contextmanager
def pem_paths(*pems: bytes) -> Iterator[list[str]]:
    """Paths OpenSSL can read these PEMs from: in memory where Linux allows (a read-only root
    filesystem, and a key never on a disk), else in a private temporary directory."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = [os.memfd_create(f"pem{i}") for i in range(len(pems))]
        try:
            for fd, data in zip(fds, pems, strict=True):
                os.write(fd, data)
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="usersecrets-pem-") as tmp:
        paths = [os.path.join(tmp, f"pem{i}") for i in range(len(pems))]
        for path, data in zip(paths, pems, strict=True):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
        yield paths


def tls_context(
    ca_pem: bytes | None = None,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    verify: bool = True,
    server_name_check: bool = True,
) -> ssl.SSLContext:
    """A client context trusting `ca_pem` (the system's CAs when None), presenting a client
    certificate when given one."""
    context = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif not server_name_check:
        context.check_hostname = False
    if cert_pem and key_pem:
        with pem_paths(cert_pem, key_pem) as (cert, key):
            context.load_cert_chain(cert, key)
    return context


class _TokenFile:
    """A token read from a file, again when it may have been rotated."""

    def __init__(self, path: Path) -> None:
        self.path, self.token, self.read_at = path, "", -TOKEN_REREAD_SECONDS
        self.lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        with self.lock:
            if time.monotonic() - self.read_at >= TOKEN_REREAD_SECONDS:
                self.token = self.path.read_text().strip()
                self.read_at = time.monotonic()
            return {"Authorization": f"Bearer {self.token}"}


def bearer(token: str) -> Headers:
    header = {"Authorization": f"Bearer {token}"}
    return lambda: dict(header)


def in_cluster_server(environ: Mapping[str, str] = os.environ) -> str | None:
    """The apiserver's URL from the variables kubelet (or the chart's apiServer values) sets in
    every pod, as client-go reads them; None outside a pod."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def in_cluster(root: Path = SERVICE_ACCOUNT) -> Credentials | None:
    """A pod's ServiceAccount, or None outside a pod."""
    server = in_cluster_server()
    if server is None or not (root / "token").is_file():
        return None
    namespace = (root / "namespace").read_text().strip() if (root / "namespace").is_file() else None
    return Credentials(
        server,
        tls_context((root / "ca.crt").read_bytes()),
        _TokenFile(root / "token").headers,
        namespace,
    )


# -- kubeconfig --------------------------------------------------------------------------------


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        found = yaml.load(path.read_text(), Loader=loader)  # noqa: S506  (a safe loader)
    except (OSError, yaml.YAMLError) as error:
        raise CredentialsError(f"cannot read kubeconfig {path}: {error}") from None
    return found if isinstance(found, dict) else {}


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    """The files kubectl would read: the given one, else $KUBECONFIG's, else ~/.kube/config."""
    if explicit:
        return [Path(explicit).expanduser()]
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in listed] or [Path("~/.kube/config").expanduser()]


def merged(paths: list[Path]) -> dict[str, Any]:
    """KUBECONFIG's files merged as kubectl does: the first file to name an entry wins."""
    config: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}}
    for path in paths:
        if not path.is_file():
            continue
        found = _load_yaml(path)
        base = path.parent
        if not config.get("current-context"):
            config["current-context"] = found.get("current-context")
        for kind, field in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in found.get(kind) or []:
                if isinstance(entry, dict) and entry.get("name") not in config[kind]:
                    config[kind][entry["name"]] = (entry.get(field) or {}, base)
    return config


def _data(entry: Mapping[str, Any], base: Path, field: str) -> bytes | None:
    """`<field>-data` (base64) or `<field>` (a file, relative to its kubeconfig)."""
    if inline := entry.get(f"{field}-data"):
        return base64.b64decode(str(inline))
    if path := entry.get(field):
        full = (base / path).expanduser()
        try:
            data: bytes = full.read_bytes()
        except OSError as error:
            raise CredentialsError(f"cannot read {field} {full}: {error.strerror}") from None
        return data
    return None


class _Exec:
    """An exec credential plugin: run when its credential is missing or expired."""

    def __init__(self, spec: Mapping[str, Any], base: Path, server: str) -> None:
        self.spec, self.base, self.server = spec, base, server
        self.credential: dict[str, Any] = {}
        self.expires: float | None = 0.0
        self.lock = threading.Lock()

    def current(self) -> dict[str, Any]:
        with self.lock:
            if self.expires is not None and time.time() >= self.expires:
                self.credential, self.expires = self._run()
            return self.credential

    def headers(self) -> dict[str, str]:
        token = self.current().get("token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _run(self) -> tuple[dict[str, Any], float | None]:
        command = self.spec.get("command")
        if not command:
            raise CredentialsError("the exec plugin names no command")
        env = {**os.environ, **{e["name"]: e["value"] for e in self.spec.get("env") or []}}
        api_version = self.spec.get("apiVersion", "client.authentication.k8s.io/v1")
        request = {
            "apiVersion": api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
        env["KUBERNETES_EXEC_INFO"] = json.dumps(request)
        if "/" in command and not Path(command).is_absolute():
            command = str(self.base / command)
        try:
            ran = subprocess.run(
                [command, *(self.spec.get("args") or [])],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise CredentialsError(f"the exec plugin {command} could not run: {error}") from None
        if ran.returncode != 0:
            said = ran.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise CredentialsError(f"the exec plugin {command} failed: {said[0]}")
        try:
            status = json.loads(ran.stdout)["status"]
        except (ValueError, KeyError, TypeError):
            raise CredentialsError(f"the exec plugin {command} wrote no ExecCredential") from None
        expires = status.get("expirationTimestamp")
        when = (
            datetime.datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp() - 10
            if expires
            else None
        )
        return status, when


def from_kubeconfig(path: str | None = None, context: str | None = None) -> Credentials:
    """The credentials of `context` (the current one when None) in the user's kubeconfig."""
    config = merged(kubeconfig_paths(path))
    name = context or config.get("current-context")
    if not name:
        raise CredentialsError("the kubeconfig names no current context; use --context")
    if name not in config["contexts"]:
        raise UnknownContext(f"Context '{name}' not found in the kubeconfig")
    chosen, _ = config["contexts"][name]
    cluster, cluster_base = config["clusters"].get(chosen.get("cluster"), ({}, Path()))
    user, user_base = config["users"].get(chosen.get("user"), ({}, Path()))
    server = cluster.get("server")
    if not server:
        raise CredentialsError(f"context '{name}' names no cluster with a server")
    if user.get("auth-provider"):
        raise CredentialsError(
            "the kubeconfig's auth-provider plugins are not supported (kubectl has replaced "
            "them with exec plugins: use one, as your cloud's CLI documents)"
        )
    headers: Headers = _no_headers
    cert, key = _data(user, user_base, "client-certificate"), _data(user, user_base, "client-key")
    if user.get("token"):
        headers = bearer(str(user["token"]))
    elif user.get("tokenFile"):
        headers = _TokenFile((user_base / user["tokenFile"]).expanduser()).headers
    elif user.get("username") and user.get("password"):
        basic = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode()
        headers = lambda: {"Authorization": f"Basic {basic}"}  # noqa: E731
    elif spec := user.get("exec"):
        plugin = _Exec(spec, user_base, str(server))
        headers = plugin.headers
        credential = plugin.current()
        if credential.get("clientCertificateData") and credential.get("clientKeyData"):
            cert = str(credential["clientCertificateData"]).encode()
            key = str(credential["clientKeyData"]).encode()
    try:
        context_ = tls_context(
            _data(cluster, cluster_base, "certificate-authority"),
            cert,
            key,
            verify=not cluster.get("insecure-skip-tls-verify", False),
        )
    except ssl.SSLError as error:
        raise CredentialsError(f"the kubeconfig's certificates cannot be used: {error}") from None
    return Credentials(str(server).rstrip("/"), context_, headers, chosen.get("namespace"))
