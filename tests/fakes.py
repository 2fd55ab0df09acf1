"""A stand-in for `KubeApi` in unit tests: it records each request and answers from a function.

Passed where the code takes its API client, so no method of the code under test is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from usersecrets.kube.client import ApiError


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, Any]
    body: Any
    headers: dict[str, str]
    content_type: str | None


Answer = Callable[[Request], Any]


def refusal(status: int, message: str = "", reason: str = "Refused") -> ApiError:
    """An ApiError as the client raises it for a Status answer with `message`."""
    return ApiError(
        status, reason, json.dumps({"kind": "Status", "code": status, "message": message})
    )


class FakeApi:
    """`answer(request)` returns the JSON answer or raises; None answers `{}`."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or (lambda _: {})
        self.requests: list[Request] = []

    def json(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        timeout: Any = None,
    ) -> Any:
        request = Request(method, path, dict(query or {}), body, dict(headers or {}), content_type)
        self.requests.append(request)
        found = self.answer(request)
        return {} if found is None else found

    def call(self, method: str, path: str, **kwargs: Any) -> bytes:
        return json.dumps(self.json(method, path, **kwargs)).encode()

    def sent(self, method: str | None = None) -> list[tuple[str, str]]:
        """(method, path) of each request so far, of one method if given."""
        return [(r.method, r.path) for r in self.requests if method in (None, r.method)]
