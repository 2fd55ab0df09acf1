"""The API client against a local HTTP server: what is sent, what comes back, one connection."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from usersecrets.kube.client import ApiError, KubeApi, for_token
from usersecrets.kube.credentials import Credentials, bearer, tls_context


class _Echo(BaseHTTPRequestHandler):
    """Answers with what it received, as JSON, on a kept-alive connection; /refuse is a 409."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def _answer(self) -> None:
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = 409 if self.path.startswith("/refuse") else 201
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "contentType": self.headers.get("Content-Type"),
                "authorization": self.headers.get("Authorization"),
                "accept": self.headers.get("Accept"),
                "body": json.loads(sent) if sent else None,
            }
        ).encode()
        self.send_response(status, "Conflict" if status == 409 else "Created")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    found = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=found.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{found.server_address[1]}"
    finally:
        found.shutdown()
        found.server_close()


def client(server: str, token: str = "t0k3n") -> KubeApi:
    return KubeApi(Credentials(server, tls_context(), bearer(token)))


def test_a_request_carries_its_query_body_type_and_credentials(server: str) -> None:
    answer = client(server).json(
        "PATCH",
        "/apis/usersecrets.io/v1alpha1/namespaces/alice/usersecrets/db/status",
        body={"status": {"uri": "u"}},
        content_type="application/merge-patch+json",
        query={"dryRun": None, "fieldManager": "usersecrets", "watch": True},
    )
    assert answer == {
        "method": "PATCH",
        "path": "/apis/usersecrets.io/v1alpha1/namespaces/alice/usersecrets/db/status"
        "?fieldManager=usersecrets&watch=true",
        "contentType": "application/merge-patch+json",
        "authorization": "Bearer t0k3n",
        "accept": "application/json",
        "body": {"status": {"uri": "u"}},
    }


def test_a_refusal_is_an_api_error_that_never_prints_its_body(server: str) -> None:
    with pytest.raises(ApiError) as info:
        client(server).call("POST", "/refuse", body={"data": {"value": "c2VjcmV0"}})
    assert (info.value.status, info.value.reason) == (409, "Conflict")
    assert json.loads(info.value.body)["body"] == {"data": {"value": "c2VjcmV0"}}
    assert str(info.value) == "HTTP 409 Conflict"


def test_one_connection_serves_call_after_call(server: str) -> None:
    """Every answer is read, even one nobody looks at, so its connection is used again."""
    api = client(server)
    _Echo.connections = 0
    for _ in range(5):
        api.call("PATCH", "/x/status", body={}, content_type="application/merge-patch+json")
        api.call("DELETE", "/x")
        assert api.json("POST", "/x", body={})["method"] == "POST"
    assert _Echo.connections == 1


def test_a_client_for_a_token_carries_that_token_and_nothing_from_the_environment(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    api = for_token(server + "/", "alices-token", None)
    assert api.json("GET", "/version")["authorization"] == "Bearer alices-token"
