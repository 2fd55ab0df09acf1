"""Plain-JSON API calls: what reaches the client, and refusals as ApiException."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, cast

import pytest
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.rest import ApiException

from usersecrets.kube.client import KubeApi


class FakeClient:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self.data = status, data
        self.serialized: dict[str, Any] = {}

    def param_serialize(self, **kwargs: Any) -> tuple[Any, ...]:
        self.serialized = kwargs
        return ("request",)

    def call_api(self, *request: Any, _request_timeout: Any = None) -> Any:
        assert request == ("request",)
        raw = SimpleNamespace(data=self.data)
        return SimpleNamespace(
            status=self.status,
            reason="Reason",
            data=self.data,
            response=raw,
            read=lambda: self.data,
            headers={},
        )


def test_a_patch_is_sent_with_its_content_type_and_without_empty_query_values() -> None:
    fake = FakeClient(200, b'{"metadata": {"resourceVersion": "3"}}')
    path = "/apis/usersecrets.io/v1alpha1/namespaces/alice/usersecrets/db/status"
    answer = KubeApi(cast(Any, fake)).json(
        "PATCH",
        path,
        body={"status": {}},
        content_type="application/merge-patch+json",
        query={"dryRun": None, "fieldManager": "usersecrets"},
    )
    assert answer == {"metadata": {"resourceVersion": "3"}}
    sent = fake.serialized
    assert sent["resource_path"] == path
    assert sent["query_params"] == [("fieldManager", "usersecrets")]
    assert sent["header_params"]["Content-Type"] == "application/merge-patch+json"
    assert sent["auth_settings"] == ["BearerToken"]


def test_a_refusal_is_an_api_exception_with_its_status() -> None:
    fake = FakeClient(409, b'{"kind": "Status", "reason": "AlreadyExists"}')
    with pytest.raises(ApiException) as info:
        KubeApi(cast(Any, fake)).call("POST", "/api/v1/namespaces/alice/secrets", body={})
    assert info.value.status == 409


class _Answers(BaseHTTPRequestHandler):
    """Answers every request with a small JSON body, on a kept-alive connection."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"metadata": {"resourceVersion": "1"}}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_api() -> Iterator[KubeApi]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = ApiClient(Configuration(host=f"http://127.0.0.1:{server.server_address[1]}"))
        yield KubeApi(api)
    finally:
        server.shutdown()
        server.server_close()


def test_one_connection_serves_call_after_call(local_api: KubeApi) -> None:
    """Every answer is read, even one nobody looks at, so its connection is used again."""
    _Answers.connections = 0
    for _ in range(5):
        local_api.call("PATCH", "/x/status", body={}, content_type="application/merge-patch+json")
        local_api.call("DELETE", "/x")
        assert local_api.json("POST", "/x", body={}) == {"metadata": {"resourceVersion": "1"}}
    assert _Answers.connections == 1
