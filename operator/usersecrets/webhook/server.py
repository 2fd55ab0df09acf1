"""The HTTPS endpoint the kube-apiserver calls for admission, and the certificates it serves.

It runs beside kopf, not inside it: every replica answers admission requests, leader or
standby, so pods that asked for secrets can start while leadership changes hands.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import ssl
import tempfile
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httptools
import orjson
from kubernetes.client.exceptions import ApiException

from usersecrets.kube import paths
from usersecrets.kube.client import JSON_PATCH, KubeApi
from usersecrets.settings import Settings
from usersecrets.webhook.certificates import Bundle, is_consistent, issue_bundle, needs_rotation

log = logging.getLogger(__name__)

MUTATE_PATH = "/mutate-pods"
HEALTH_PATH = "/healthz"
_MUTATE, _HEALTH = MUTATE_PATH.encode(), HEALTH_PATH.encode()  # as httptools gives paths
#: An AdmissionReview of a pod is far below this (etcd caps objects at 1.5 MiB).
MAX_BODY = 3 * 1024 * 1024
MAX_URL = 8 * 1024
MAX_HEADERS = 64 * 1024
#: Bytes of a request line and headers, counted while they arrive: httptools holds a header
#: until its line ends, and an endless one must not grow without bound.
MAX_HEAD = MAX_URL + MAX_HEADERS
#: The apiserver gives a webhook at most 30 s; a request must have arrived by then.
REQUEST_TIMEOUT = 30.0
#: Longer than the apiserver keeps an idle connection (90 s), so it is the one to close.
IDLE_TIMEOUT = 120.0
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"

Review = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


# -- HTTP ---------------------------------------------------------------------------------


class _Refused(Exception):
    """A request answered with an error and the connection closed, before it is all read."""

    def __init__(self, status: int, text: str) -> None:
        self.status, self.text = status, text


@dataclass(frozen=True)
class _Request:
    method: bytes
    path: bytes
    body: bytes
    keep_alive: bool
    #: An error answer decided while parsing, owed after the answers before it.
    refusal: tuple[int, bytes] | None = None


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
}


class _Connection(asyncio.Protocol):
    """One kept-alive connection from the apiserver, speaking just enough HTTP/1.1.

    Admission sits on the path of every pod create, and aiohttp's request and response objects
    cost about as much CPU as the review itself. llhttp (Node.js's parser, through httptools)
    does the parsing; this class routes two paths and answers requests in order, one at a time.
    A request must arrive whole within `timeout` of its first byte, and a connection idle for
    `idle` is closed: a slow or silent client holds a socket, never a request in the review.
    """

    def __init__(
        self,
        review: Review,
        connections: set[_Connection],
        *,
        max_body: int,
        timeout: float,
        idle: float,
    ) -> None:
        self.review, self.connections = review, connections
        self.max_body, self.timeout, self.idle = max_body, timeout, idle
        self.finishing = False
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url, self.headers, self.body = b"", 0, bytearray()
        self.receiving = self.expects_continue = self.refused = False
        #: Bytes of the request under way, and whether its headers are still arriving.
        self.received, self.in_head = 0, True
        #: Received and not yet answered; the first one is being answered.
        self.requests: deque[_Request] = deque()
        self.loop = asyncio.get_running_loop()
        self.worker: asyncio.Task[None] | None = None
        self.arrived: asyncio.Future[None] | None = None
        self.deadline, self.tick = 0.0, min(timeout, idle) / 4
        self.timer: asyncio.TimerHandle | None = None

    # asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)
        self.deadline = self.loop.time() + self.idle
        self.timer = self.loop.call_later(self.tick, self._check_deadline)
        self.worker = self.loop.create_task(self._answer_all())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # the connection closes after the answers it owes
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            refused = error.__context__
            if not isinstance(refused, _Refused):
                raise
            self._refuse(refused.status, refused.text)
            return
        except httptools.HttpParserUpgrade:  # not switching: answer it, then close
            self.refused = True
            self.finish()
            return
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request\n")
            return
        if self.in_head and self.received > MAX_HEAD:
            self._refuse(431, "request headers too large\n")
        elif self.received > MAX_HEAD + self.max_body:  # chunked trailers, say
            self._refuse(413, f"request is over {self.max_body} bytes\n")

    # httptools

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", 0, bytearray()
        self.receiving, self.expects_continue = True, False
        self.deadline = self.loop.time() + self.timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL:
            raise _Refused(414, "request URI too long\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += len(name) + len(value)
        if self.headers > MAX_HEADERS:
            raise _Refused(431, "request headers too large\n")
        if name.lower() == b"content-length" and (len(value) > 12 or int(value) > self.max_body):
            raise _Refused(413, f"request body is over {self.max_body} bytes\n")
        if name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expects_continue = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        # curl asks, for bodies over 1 KiB; not before the answers owed, and not in HTTP/1.0.
        http11 = self.parser.get_http_version() == "1.1"
        if self.expects_continue and http11 and not self.requests and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if len(self.body) + len(chunk) > self.max_body:
            raise _Refused(413, f"request body is over {self.max_body} bytes\n")
        self.body += chunk

    def on_message_complete(self) -> None:
        self.receiving, self.received, self.in_head = False, 0, True
        try:
            path = httptools.parse_url(self.url).path
        except httptools.HttpParserInvalidURLError:
            raise _Refused(400, "malformed request URI\n") from None
        keep_alive = self.parser.should_keep_alive()
        self._owe(_Request(self.parser.get_method(), path, bytes(self.body), keep_alive))
        if len(self.requests) > 1 and self.transport:  # pipelined: wait for the answers
            self.transport.pause_reading()

    def _owe(self, request: _Request) -> None:
        self.requests.append(request)
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(None)

    # answers

    async def _answer_all(self) -> None:
        """The connection's one task, for its whole life: a task per request would cost more
        than parsing it (asyncio registers every task in a WeakSet)."""
        try:
            while self.transport:
                if not self.requests:
                    self.arrived = self.loop.create_future()
                    await self.arrived
                    continue
                request = self.requests[0]
                status, body, content_type = await self._answer(request)
                self.requests.popleft()
                close = self.finishing or not request.keep_alive
                self._send(status, body, content_type, close=close)
                if close or not self.transport:
                    return
                if self.requests:
                    continue
                if self.finishing and not self.receiving:
                    self.transport.close()
                    return
                self.transport.resume_reading()
                if not self.receiving:  # else the request under way keeps its own deadline
                    self.deadline = self.loop.time() + self.idle
        except Exception as error:  # a bug: this connection ends, the server goes on
            log.error("webhook connection failed with %s", type(error).__name__)
            if self.transport:
                self.transport.abort()

    async def _answer(self, request: _Request) -> tuple[int, bytes, bytes]:
        if request.refusal is not None:
            return *request.refusal, TEXT
        if request.path == _HEALTH:
            if request.method != b"GET":
                return 405, b"method not allowed\n", TEXT
            return 200, b"ok", TEXT
        if request.path != _MUTATE:
            return 404, b"not found\n", TEXT
        if request.method != b"POST":
            return 405, b"method not allowed\n", TEXT
        try:
            body = orjson.loads(request.body)
        except (ValueError, RecursionError):
            return 400, b"request body is not valid JSON\n", TEXT
        if not isinstance(body, dict):
            return 400, b"request body must be a JSON object\n", TEXT
        try:
            return 200, orjson.dumps(await self.review(body)), JSON
        except Exception as error:
            # The message may quote the pod (env values are plain text there): log only the
            # exception's type and where it happened.
            log.error(
                "admission review failed with %s\n%s",
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)).rstrip(),
            )
            return 500, b"internal error\n", TEXT

    def _send(self, status: int, body: bytes, content_type: bytes, close: bool) -> None:
        if self.transport is None:
            return
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            status,
            _REASONS[status],
            content_type,
            len(body),
        )
        self.transport.write(head + (b"Connection: close\r\n\r\n" if close else b"\r\n") + body)
        if close:
            self.transport.close()

    def finish(self) -> None:
        """Close now if idle, else right after the answer under way (with Connection: close).
        A request already arriving is still answered, within its time."""
        self.finishing = True
        if not self.requests and not self.receiving and self.transport:
            self.transport.close()

    def _refuse(self, status: int, text: str) -> None:
        """Answer with an error after the answers owed before it, then close; nothing more
        is read."""
        self.refused = True
        if self.transport:
            self.transport.pause_reading()
        self._owe(_Request(b"", b"", b"", keep_alive=False, refusal=(status, text.encode())))

    def _check_deadline(self) -> None:
        """Every `tick`: moving a deadline is then a mere assignment on each request."""
        if self.transport is None:
            return
        if self.requests or self.loop.time() < self.deadline:
            self.timer = self.loop.call_later(self.tick, self._check_deadline)
            return
        if self.receiving:
            self._refuse(408, "request not received in time\n")
        else:
            self.transport.close()


@dataclass
class Server:
    """The listening webhook and its open connections, so that stopping can drain them."""

    server: asyncio.Server
    connections: set[_Connection]

    @property
    def port(self) -> int:
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening and close every connection once its answer is sent, as Go's
        http.Server.Shutdown does: the apiserver sends its next admission to another replica
        instead of having it cut. What is still open after `grace` is cut."""
        self.server.close()
        for connection in list(self.connections):
            connection.finish()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()


async def serve(
    review: Review,
    ssl_context: ssl.SSLContext,
    host: str,
    port: int,
    *,
    max_body: int = MAX_BODY,
    timeout: float = REQUEST_TIMEOUT,
    idle: float = IDLE_TIMEOUT,
) -> Server:
    """Start answering admissions; `Server.stop` to stop."""
    connections: set[_Connection] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: _Connection(review, connections, max_body=max_body, timeout=timeout, idle=idle),
        host,
        port,
        ssl=ssl_context,
    )
    return Server(server, connections)


# -- TLS ----------------------------------------------------------------------------------


def server_ssl_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextlib.contextmanager
def _pem_paths(cert_pem: bytes, key_pem: bytes) -> Iterator[tuple[str, str]]:
    """Paths OpenSSL can read the pair from; in memory where Linux allows (read-only root
    filesystems, and the key never touches a disk), else in a private temporary directory."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = [os.memfd_create(CERT_FILE), os.memfd_create(KEY_FILE)]
        try:
            for fd, data in zip(fds, (cert_pem, key_pem), strict=True):
                os.write(fd, data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="usersecrets-tls-") as tmp:
        paths = (os.path.join(tmp, CERT_FILE), os.path.join(tmp, KEY_FILE))
        for path, data in zip(paths, (cert_pem, key_pem), strict=True):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
        yield paths


def load_pair(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Put a certificate and key into a (possibly serving) context; new connections use them.

    The pair is tried on a scratch context first: OpenSSL drops the old key as soon as a new
    certificate is loaded, so a bad pair loaded directly would leave the server with nothing
    to serve. On failure the context keeps what it had and ssl.SSLError is raised.
    """
    with _pem_paths(cert_pem, key_pem) as (cert_path, key_path):
        server_ssl_context().load_cert_chain(cert_path, key_path)
        context.load_cert_chain(cert_path, key_path)


def ssl_context_from_bundle(bundle: Bundle) -> ssl.SSLContext:
    context = server_ssl_context()
    load_pair(context, bundle.cert_pem, bundle.key_pem)
    return context


def _read_pair(cert_dir: Path) -> tuple[bytes, bytes]:
    return (cert_dir / CERT_FILE).read_bytes(), (cert_dir / KEY_FILE).read_bytes()


def ssl_context_from_dir(cert_dir: str | Path) -> ssl.SSLContext:
    """Serve `tls.crt`/`tls.key` from a directory (cert-manager's Secret, mounted)."""
    context = server_ssl_context()
    load_pair(context, *_read_pair(Path(cert_dir)))
    return context


def _stamp(cert_dir: Path) -> tuple[tuple[int, int, int], ...] | None:
    # stat follows the symlinks a Secret volume swaps atomically (..data), so a new
    # projection changes the inode even when mtimes collide.
    try:
        stats = [os.stat(cert_dir / name) for name in (CERT_FILE, KEY_FILE)]
    except OSError:
        return None
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


async def watch_cert_dir(
    context: ssl.SSLContext, cert_dir: str | Path, interval: float = 5.0
) -> None:
    """Reload the pair into `context` whenever the files change; runs until cancelled.

    A pair that does not load (say, the certificate is rewritten before the key) is retried
    when the files change again; until then the previous certificate keeps being served.
    """
    directory = Path(cert_dir)
    seen = _stamp(directory)
    while True:
        await asyncio.sleep(interval)
        stamp = _stamp(directory)
        if stamp is None or stamp == seen:
            continue
        seen = stamp
        try:
            load_pair(context, *_read_pair(directory))
        except (OSError, ssl.SSLError) as error:
            log.warning("webhook certificate in %s not reloaded: %s", directory, error)
        else:
            log.info("webhook certificate reloaded from %s", directory)


# -- self-managed certificates (sync kubernetes client; run these in a thread) -----------


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the kube-apiserver may use for a Service-backed webhook."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _describe(error: Exception) -> str:
    # An ApiException's text carries the response body; status and reason are enough.
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bundle_from_secret(secret: Mapping[str, Any]) -> Bundle | None:
    data = secret.get("data") or {}
    try:
        return Bundle(
            ca_pem=base64.b64decode(data[CA_FILE]),
            cert_pem=base64.b64decode(data[CERT_FILE]),
            key_pem=base64.b64decode(data[KEY_FILE]),
        )
    except (KeyError, ValueError, TypeError):
        return None


def _secret_body(
    settings: Settings, bundle: Bundle, secret_type: str, resource_version: str | None = None
) -> dict[str, Any]:
    # Deliberately not labelled managed-by=usersecrets: that selector means "a materialized
    # copy", which the reconciler deletes when it is not desired.
    metadata: dict[str, Any] = {
        "name": settings.webhook_cert_secret,
        "namespace": settings.operator_namespace,
        "labels": {
            "app.kubernetes.io/name": "usersecrets",
            "app.kubernetes.io/component": "webhook",
        },
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret_type,
        "data": {
            CA_FILE: _b64(bundle.ca_pem),
            CERT_FILE: _b64(bundle.cert_pem),
            KEY_FILE: _b64(bundle.key_pem),
        },
    }


def ensure_bundle(
    core: KubeApi,
    settings: Settings,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    now: datetime,
    attempts: int = 5,
) -> Bundle:
    """The webhook's bundle from its Secret, created or rotated as needed.

    Writes are optimistic (create, or replace at the resourceVersion we read), so when replicas
    race exactly one wins and the others adopt its bundle on the re-read.
    """
    name, namespace = settings.webhook_cert_secret, settings.operator_namespace
    names = [*dns_names, *ip_addresses]
    path = f"{paths.secrets_in(namespace)}/{name}"
    for _ in range(attempts):
        try:
            secret = core.json("GET", path)
        except ApiException as error:
            if error.status != 404:
                raise
            bundle = issue_bundle(dns_names, ip_addresses, now)
            try:
                core.call(
                    "POST",
                    paths.secrets_in(namespace),
                    body=_secret_body(settings, bundle, "kubernetes.io/tls"),
                )
            except ApiException as error:
                if error.status == 409:  # another replica created it first: use theirs
                    continue
                raise
            log.info("created webhook certificate Secret %s/%s", namespace, name)
            return bundle
        current = _bundle_from_secret(secret)
        if (
            current is not None
            and is_consistent(current)
            and not needs_rotation(current.cert_pem, now, names)
        ):
            return current
        bundle = issue_bundle(dns_names, ip_addresses, now, previous=current)
        body = _secret_body(
            settings,
            bundle,
            secret.get("type") or "kubernetes.io/tls",  # type is immutable; keep what exists
            resource_version=secret["metadata"]["resourceVersion"],
        )
        try:
            core.call("PUT", path, body=body)
        except ApiException as error:
            if error.status == 409:  # another replica rotated first: use theirs
                continue
            raise
        log.info("rotated webhook certificate in Secret %s/%s", namespace, name)
        return bundle
    raise RuntimeError(f"webhook certificate Secret {namespace}/{name} kept changing under us")


def patch_ca_bundle(api: KubeApi, settings: Settings, ca_pem: bytes) -> bool:
    """Make every webhook of our configuration trust `ca_pem`; True when something changed.

    A JSON patch that first tests each webhook's name, so a concurrent edit of the list fails
    the patch instead of putting the bundle on the wrong entry.
    """
    name = settings.webhook_config_name
    path = paths.webhook_configuration(name)
    wanted = _b64(ca_pem)
    for _ in range(3):
        try:
            config = api.json("GET", path)
        except ApiException as error:
            if error.status != 404:
                raise
            log.warning("MutatingWebhookConfiguration %s not found; caBundle not set", name)
            return False
        ops: list[dict[str, Any]] = []
        for i, hook in enumerate(config.get("webhooks") or []):
            if (hook.get("clientConfig") or {}).get("caBundle") != wanted:
                ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook["name"]})
                ops.append(
                    {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": wanted}
                )
        if not ops:
            return False
        try:
            api.call("PATCH", path, body=ops, content_type=JSON_PATCH)
        except ApiException as error:
            if error.status in (409, 422):  # the list changed under us: look again
                continue
            raise
        log.info("updated caBundle of MutatingWebhookConfiguration %s", name)
        return True
    raise RuntimeError(f"MutatingWebhookConfiguration {name} kept changing under us")


def refresh_self_managed(
    core: KubeApi,
    settings: Settings,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
) -> Bundle:
    """One full pass of the self-managed mode: the bundle, and the apiserver trusting it."""
    bundle = ensure_bundle(core, settings, dns_names, ip_addresses, datetime.now(UTC))
    patch_ca_bundle(core, settings, bundle.ca_pem)
    return bundle


async def keep_bundle_current(
    context: ssl.SSLContext,
    refresh: Callable[[], Bundle],
    current: Bundle,
    interval: float = 3600.0,
) -> None:
    """Every `interval`, run `refresh` (blocking; in a thread) and serve what it returns if it
    changed. Errors are logged and retried next time: the served certificate has a third of its
    lifetime left when rotation starts. Runs until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            bundle = await asyncio.to_thread(refresh)
            if bundle.cert_pem != current.cert_pem:
                load_pair(context, bundle.cert_pem, bundle.key_pem)
                current = bundle
                log.info("webhook now serves the rotated certificate")
        except Exception as error:
            log.warning("webhook certificate check failed (%s); retrying later", _describe(error))
