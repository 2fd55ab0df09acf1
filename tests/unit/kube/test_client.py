"""The API clients against a local HTTP server: what is sent, what comes back, one connection.
Both clients, the threads' (urllib3) and the event loop's (aiohttp), pass the same tests."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from usersecrets.kube.async_client import AsyncKubeApi
from usersecrets.kube.client import ApiError, KubeApi, for_token
from usersecrets.kube.credentials import Credentials, bearer, tls_context


class _Echo(BaseHTTPRequestHandler):
    """Answers with what it received, as JSON, on a kept-alive connection; /refuse is a 409,
    /moved a redirect."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def _answer(self) -> None:
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/moved"):
            self.send_response(302, "Found")
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
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


class _OnALoop:
    """An AsyncKubeApi's calls, each run to its end on a loop of its own."""

    def __init__(self, api: AsyncKubeApi) -> None:
        self.api, self.loop = api, asyncio.new_event_loop()

    def call(self, method: str, path: str, **kwargs: Any) -> bytes:
        return self.loop.run_until_complete(self.api.call(method, path, **kwargs))

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self.api.json(method, path, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.api.close())
        self.loop.close()


Client = KubeApi | _OnALoop


@pytest.fixture(params=["urllib3", "aiohttp"])
def client(request: pytest.FixtureRequest, server: str) -> Iterator[Client]:
    credentials = Credentials(server, tls_context(), bearer("t0k3n"))
    if request.param == "urllib3":
        yield KubeApi(credentials)
        return
    api = _OnALoop(AsyncKubeApi(credentials))
    try:
        yield api
    finally:
        api.close()


def test_a_request_carries_its_query_body_type_and_credentials(client: Client) -> None:
    answer = client.json(
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


def test_a_refusal_is_an_api_error_that_never_prints_its_body(client: Client) -> None:
    with pytest.raises(ApiError) as info:
        client.call("POST", "/refuse", body={"data": {"value": "c2VjcmV0"}})
    assert (info.value.status, info.value.reason) == (409, "Conflict")
    assert json.loads(info.value.body)["body"] == {"data": {"value": "c2VjcmV0"}}
    assert str(info.value) == "HTTP 409 Conflict"


def test_one_connection_serves_call_after_call(client: Client) -> None:
    """Every answer is read, even one nobody looks at, so its connection is used again."""
    api = client
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


def test_a_request_is_logged_at_debug_by_its_path_never_by_its_body(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client.call("POST", "/api/v1/namespaces/alice/secrets", body={"data": {"v": "c2VjcmV0"}})
        with pytest.raises(ApiError):
            client.call("PATCH", "/refuse/db", body={"data": {"v": "c2VjcmV0"}})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/v1/namespaces/alice/secrets" in logged
    assert "/refuse/db" in logged
    assert "c2VjcmV0" not in logged


def test_a_redirect_is_an_answer_not_followed(client: Client) -> None:
    """A create redirected and followed would be a GET, read as the object created."""
    with pytest.raises(ApiError) as info:
        client.call("POST", "/moved", body={"metadata": {"name": "x"}})
    assert info.value.status == 302


def test_the_loops_client_reads_its_credentials_in_a_thread_now_and_then(server: str) -> None:
    """Reading them may run a kubeconfig's exec plugin: never on the loop, nor per request."""
    threads: list[threading.Thread] = []

    def headers() -> dict[str, str]:
        threads.append(threading.current_thread())
        return {"Authorization": "Bearer t"}

    api = _OnALoop(AsyncKubeApi(Credentials(server, tls_context(), headers)))
    try:
        for _ in range(3):
            assert api.json("GET", "/x")["authorization"] == "Bearer t"
    finally:
        api.close()
    assert len(threads) == 1
    assert threads[0] is not threading.current_thread()  # the loop's thread, here


def test_the_loops_client_once_closed_sends_nothing(server: str) -> None:
    api = _OnALoop(AsyncKubeApi(Credentials(server, tls_context(), bearer("t"))))
    api.close()
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="closed"):
            loop.run_until_complete(api.api.call("GET", "/x"))
    finally:
        loop.close()
