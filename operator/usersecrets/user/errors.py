"""Every failure a user can meet, as one line that says what to do, and what kind it is.

The CLI turns the kind into an exit code, the web UI into a message next to the form; both
show the same words. A server message is never shown with a secret value in it (`redact`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from usersecrets.rules.scrub import scrub

Kind = Literal["generic", "usage", "not_found", "forbidden", "unreachable"]


class Failure(Exception):
    """A failure the user can act on; `status` is the HTTP status when the apiserver said it."""

    def __init__(self, message: str, kind: Kind = "generic", status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.status = message, kind, status


def redact(message: str, sensitive: Iterable[bytes]) -> str:
    """Belt and braces: a server message must never carry a value to the user, in any form."""
    message = re.sub(r'(spec\.value: Invalid value: )"(?:[^"\\]|\\.)*"', r'\1"<redacted>"', message)
    return scrub(message, sensitive)


@dataclass(frozen=True)
class Operation:
    """The API call being made, so a refusal can say which verb on what was refused."""

    verb: str
    resource: str
    namespace: str | None = None
    name: str | None = None

    def describe(self) -> str:
        what = f"{self.resource} '{self.name}'" if self.name else self.resource
        where = f" in namespace '{self.namespace}'" if self.namespace else ""
        return f"{self.verb} {what}{where}"


def _status_message(body: Any) -> tuple[str, dict[str, Any]]:
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        status = None
    if isinstance(status, dict):
        return str(status.get("message") or ""), status
    return (body.strip() if isinstance(body, str) else ""), {}


def _api_error(exc: Any, op: Operation | None) -> Failure:
    status_code = getattr(exc, "status", None)
    message, status = _status_message(getattr(exc, "body", None))
    message = message or str(getattr(exc, "reason", "") or "")
    action = f" ({op.describe()})" if op else ""
    if status_code == 401:
        return Failure(
            f"Unauthorized: the cluster did not accept your credentials{action}",
            "forbidden",
            status_code,
        )
    if status_code == 403:
        if "admission webhook" in message:
            return Failure(f"Rejected: {message}", "usage", status_code)
        refused = f"you may not {op.describe()}" if op else "the API server refused the request"
        return Failure(f"Forbidden: {refused}: {message}", "forbidden", status_code)
    if status_code == 404:
        if not status.get("details") and "could not find the requested resource" in message:
            resource = op.resource if op else "the usersecrets.io"
            return Failure(
                f"The {resource} API is not served by this cluster: "
                "are the usersecrets CRDs installed?",
                "not_found",
                status_code,
            )
        return Failure(f"Not found: {message}", "not_found", status_code)
    if status_code in (400, 422):
        return Failure(f"Invalid: {message}", "usage", status_code)
    if status_code == 409:
        return Failure(f"Conflict: {message}", "generic", status_code)
    what = f" while trying to {op.describe()}" if op else ""
    return Failure(
        f"API error {status_code}{what}: {message or 'no details'}", "generic", status_code
    )


def _unreachable(exc: BaseException) -> str:
    import urllib3.exceptions

    where = ""
    reason: BaseException | None = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        reason = exc.reason or exc
    # urllib3 names the connection `conn` on the error of a connection, `pool` on a retry's.
    pool = getattr(reason, "conn", None) or getattr(exc, "pool", None)
    if pool is not None and getattr(pool, "host", None):
        where = f" at {pool.host}:{pool.port}"
    detail = str(reason)
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        # Drop the connection's repr: "HTTPSConnection(host=..., port=...): Failed to ..."
        detail = re.sub(r"^(<[^>]*>|\w+\([^)]*\)): ", "", detail)
    return f"Cannot reach the Kubernetes API server{where}: {detail}"


def from_exception(exc: BaseException, op: Operation | None = None) -> Failure:
    """Every failure as one line and an exit code a script can branch on."""
    import urllib3.exceptions

    from usersecrets.kube.client import ApiError, CredentialsError

    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, ApiError):
        return _api_error(exc, op)
    if isinstance(exc, CredentialsError):
        return Failure(f"Cannot use the kubeconfig: {exc}", "unreachable")
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return Failure(_unreachable(exc), "unreachable")
    if isinstance(exc, OSError):
        return Failure(f"{exc.strerror or exc}", "generic")
    return Failure(f"Unexpected error: {type(exc).__name__}: {exc}", "generic")
