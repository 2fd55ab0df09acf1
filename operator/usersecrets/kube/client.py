"""The only way into the API: requests as plain JSON over one pool of kept-alive connections.

Not the kubernetes client package: importing it costs a quarter of a second and 35 MiB (about
a thousand generated models), and each of its calls validates and serializes through them,
while every caller here reads and writes JSON anyway. urllib3 (its transport) does the HTTP;
`credentials` finds the apiserver and how to authenticate, as kubectl would.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson
import urllib3

from usersecrets.kube.credentials import (
    Credentials,
    CredentialsError,
    UnknownContext,
    bearer,
    tls_context,
)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

Timeout = float | tuple[float, float] | None
#: Unless a caller says otherwise: seconds to connect, and to wait for each read.
CONNECT_SECONDS, READ_SECONDS = 10.0, 60.0


class ApiError(Exception):
    """What the apiserver answered instead of a success: its HTTP status and reason, and the
    Status body. The body is never part of the exception's text: it may quote an object."""

    def __init__(self, status: int | None, reason: str = "", body: bytes | str = b"") -> None:
        super().__init__(status, reason)
        self.status, self.reason = status, reason
        self.body = body.decode(errors="replace") if isinstance(body, bytes) else body

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.reason}".rstrip()


def request(
    auth: Mapping[str, str],
    path: str,
    query: Mapping[str, Any] | None,
    body: Any,
    headers: Mapping[str, str] | None,
    content_type: str | None,
) -> tuple[str, dict[str, str], bytes | None]:
    """A request's URL (from the path on), headers and body, whichever client sends it;
    `auth`: the credentials' headers."""
    sent = {"Accept": "application/json", **auth, **(headers or {})}
    data = None
    if body is not None:
        sent["Content-Type"] = content_type or "application/json"
        data = orjson.dumps(body)
    params = {
        k: str(v).lower() if isinstance(v, bool) else v
        for k, v in (query or {}).items()
        if v is not None
    }
    return path + (f"?{urllib.parse.urlencode(params)}" if params else ""), sent, data


def _timeout(value: Timeout) -> urllib3.Timeout:
    if value is None:
        return urllib3.Timeout(connect=CONNECT_SECONDS, read=READ_SECONDS)
    if isinstance(value, tuple):
        return urllib3.Timeout(connect=value[0], read=value[1])
    return urllib3.Timeout(total=value)


class KubeApi:
    """Requests with one set of credentials; answers as the apiserver sends them."""

    def __init__(self, credentials: Credentials, pool: int = 10) -> None:
        self.credentials = credentials
        tls = (
            {"ssl_context": credentials.ssl_context}
            if credentials.server.startswith("https")
            else {}
        )
        self.pool = urllib3.connection_from_url(
            credentials.server, maxsize=pool, block=False, **tls
        )
        self.base = urllib.parse.urlsplit(credentials.server).path.rstrip("/")
        #: False once the apiserver refused to stream a list (`watching.pages`): its WatchList
        #: feature is off, and the lists after it are paginated without asking again.
        self.streams_lists = True

    def stream(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        timeout: Timeout = None,
    ) -> urllib3.BaseHTTPResponse:
        """The answer with its body unread, for a watch to stream; the caller releases it.
        ApiError unless 2xx."""
        url, sent, data = request(
            self.credentials.headers(), self.base + path, query, body, headers, content_type
        )
        response = self.pool.urlopen(
            method,
            url,
            body=data,
            headers=sent,
            preload_content=False,
            retries=False,
            timeout=_timeout(timeout),
        )
        if not 200 <= response.status <= 299:
            answer = response.read()
            response.release_conn()
            raise ApiError(response.status, response.reason or "", answer)
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> bytes:
        """The whole answer. Reading it is what returns the connection to the pool: an answer
        left unread costs the next call a new connection and TLS handshake."""
        response = self.stream(method, path, **kwargs)
        try:
            return response.read()
        finally:
            response.release_conn()

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(self.call(method, path, **kwargs))
        return found


def connect(pool: int = 32) -> KubeApi:
    """In a pod, its ServiceAccount; elsewhere the kubeconfig, as kubectl would pick it.
    `pool`: connections kept open, shared by workers, watches and admissions' rare reads."""
    from usersecrets.kube.credentials import from_kubeconfig, in_cluster

    return KubeApi(in_cluster() or from_kubeconfig(), pool)


def from_kubeconfig(path: str | None, context: str | None) -> tuple[KubeApi, str]:
    """A user's own credentials, as kubectl finds them (`path` None: $KUBECONFIG or
    ~/.kube/config), and the namespace their context names ("default" if none)."""
    from usersecrets.kube.credentials import from_kubeconfig as read

    credentials = read(path, context)
    return KubeApi(credentials), credentials.namespace or "default"


def for_token(server: str, token: str, ca_file: str | None = None) -> KubeApi:
    """A client that carries only this bearer token: a signed-in user's, for the web UI."""
    ca = open(ca_file, "rb").read() if ca_file else None  # noqa: SIM115
    return KubeApi(Credentials(server.rstrip("/"), tls_context(ca), bearer(token)))


__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "ApiError",
    "CredentialsError",
    "KubeApi",
    "UnknownContext",
    "connect",
    "for_token",
    "from_kubeconfig",
]
