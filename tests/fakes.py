"""A stand-in for `KubeApi` in unit tests: it records each request and answers from a function.

Passed where the code takes its API client, so no method of the code under test is replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
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


def copy_name(owner: str, key: str) -> str:
    """The name of (owner, key)'s copies, for an owner whose name is a DNS label already:
    "usec-OWNER-KEY-" and the first 10 hex digits of sha256("OWNER\\0KEY"), worked out here
    rather than taken from rules.naming (test_naming pins the lossy cases)."""
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", owner), owner
    digest = hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()[:10]
    return f"usec-{owner}-{key}-{digest}"


def slot(owner: str) -> str:
    """The owner's shard slot: the first 4 bytes of sha256(OWNER), big-endian, modulo 64,
    worked out here (test_sharding pins a few)."""
    return str(int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big") % 64)


def copy_labels(owner: str, key: str, reason: str = "owner") -> dict[str, str]:
    """The labels of a copy as the operator writes them, and as the webhook, the CLI and the
    copies already in clusters read them: written out here, never taken from rules.naming."""
    return {
        "app.kubernetes.io/managed-by": "usersecrets",
        "usersecrets.io/owner": owner,
        "usersecrets.io/key": key,
        "usersecrets.io/reason": reason,
        "usersecrets.io/slot": slot(owner),
    }


class Stream:
    """A watch response as urllib3 gives it: chunks that split lines anywhere; `broken` ends
    it as a dropped connection does."""

    def __init__(self, events: list[dict[str, Any]], broken: bool = False) -> None:
        text = "".join(json.dumps(e) + "\n\n" for e in events).encode()
        self.chunks = [text[i : i + 7] for i in range(0, len(text), 7)]
        self.broken = broken
        self.released = False

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield from self.chunks
        if self.broken:
            raise ConnectionResetError("connection reset by peer")

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        self.released = True


def watch_events(*events: tuple[str, dict[str, Any]]) -> Stream:
    """A watch that sends `events` (type, object), then drops."""
    return Stream([{"type": kind, "object": obj} for kind, obj in events], broken=True)


def streamed_list(listing: dict[str, Any]) -> Stream:
    """A list answer (items and version) as the apiserver streams it to a watch with
    sendInitialEvents: an ADDED event per object, then the bookmark that ends them."""
    end = {
        "metadata": {
            "resourceVersion": listing["metadata"]["resourceVersion"],
            "annotations": {"k8s.io/initial-events-end": "true"},
        }
    }
    events = [{"type": "ADDED", "object": item} for item in listing.get("items") or []]
    return Stream([*events, {"type": "BOOKMARK", "object": end}])


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
        self.streams_lists = True

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

    def stream(self, method: str, path: str, **kwargs: Any) -> Stream:
        """A streamed list (a watch with sendInitialEvents) of what `answer` lists."""
        assert kwargs["query"].get("sendInitialEvents") == "true", "a watch: not faked here"
        return streamed_list(self.json(method, path, **kwargs))

    @property
    def aio(self) -> FakeAsyncApi:
        """The same fake as the async client: the same answers, one record of requests."""
        return FakeAsyncApi(self)

    def sent(self, method: str | None = None) -> list[tuple[str, str]]:
        """(method, path) of each request so far, of one method if given."""
        return [(r.method, r.path) for r in self.requests if method in (None, r.method)]


class FakeAsyncApi:
    """`AsyncKubeApi`'s face on a `FakeApi`."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api

    async def json(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> Any:
        return self.api.json(
            method, path, query=query, body=body, headers=headers, content_type=content_type
        )

    async def call(self, method: str, path: str, **kwargs: Any) -> bytes:
        return json.dumps(await self.json(method, path, **kwargs)).encode()
