"""The webhook server over real HTTPS on loopback, verified against a freshly issued CA."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from usersecrets.webhook import server as webhook
from usersecrets.webhook.certificates import Bundle, issue_bundle

CANARY = "canary-d2f1c0-not-for-logs"


def _bundle() -> Bundle:
    return issue_bundle(["localhost"], ["127.0.0.1"])


def _client_context(*bundles: Bundle) -> ssl.SSLContext:
    return ssl.create_default_context(cadata="".join(b.ca_pem.decode() for b in bundles))


def _der(bundle: Bundle) -> bytes:
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    return cert.public_bytes(serialization.Encoding.DER)


async def _echo_review(body: dict[str, Any]) -> dict[str, Any]:
    uid = body["request"]["uid"]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True},
    }


@contextlib.asynccontextmanager
async def _served(
    context: ssl.SSLContext,
    review: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] = _echo_review,
    **limits: float,
) -> AsyncIterator[str]:
    server = await webhook.serve(review, context, "127.0.0.1", 0, **limits)
    try:
        yield f"https://127.0.0.1:{server.port}"
    finally:
        await server.stop(grace=1)


async def _post(
    url: str, client: ssl.SSLContext, data: bytes, path: str = webhook.MUTATE_PATH
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + path, data=data, ssl=client, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        return response.status, await response.text()


async def _get(url: str, client: ssl.SSLContext, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + path, ssl=client) as response,
    ):
        return response.status, await response.text()


REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {"uid": "1234", "object": {"metadata": {"name": "p"}}},
}


def test_review_round_trip() -> None:
    bundle = _bundle()

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle)) as url:
            status, text = await _post(url, _client_context(bundle), json.dumps(REVIEW).encode())
            assert status == 200
            assert json.loads(text)["response"] == {"uid": "1234", "allowed": True}
            assert await _get(url, _client_context(bundle), webhook.HEALTH_PATH) == (200, "ok")

    asyncio.run(scenario())


def _request(uid: str, *headers: bytes) -> bytes:
    body = json.dumps({"request": {"uid": uid}}).encode()
    head = [b"POST /mutate-pods HTTP/1.1", b"Host: x", b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def _exchange(url: str, bundle: Bundle, *sends: bytes, pause: float = 0) -> bytes:
    """Write `sends` on one connection, `pause` seconds apart; everything read until EOF."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context(bundle))
    try:
        with contextlib.suppress(ConnectionError):  # the server may hang up first
            for data in sends:
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def test_one_connection_answers_in_order_and_closes_when_asked() -> None:
    """Kept alive between reviews, pipelined requests answered in the order sent, and
    `Connection: close` honoured (it is what ends this exchange)."""
    bundle = _bundle()

    async def slow_first(body: dict[str, Any]) -> dict[str, Any]:
        if body["request"]["uid"] == "a":
            await asyncio.sleep(0.1)
        return await _echo_review(body)

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle), slow_first) as url:
            answer = await _exchange(
                url, bundle, _request("a") + _request("b"), _request("c", b"Connection: close")
            )
        uids = [m.decode() for m in re.findall(rb'"uid":"(\w)"', answer)]
        assert uids == ["a", "b", "c"]
        assert answer.count(b"HTTP/1.1 200 OK") == 3
        assert answer.endswith(b'"allowed":true}}')
        assert b"Connection: close" in answer.rsplit(b"HTTP/1.1", 1)[1]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        (b"GARBAGE\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET http://x:99999/ HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        # A header line that never ends: refused once the head is too long to be one.
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 2 * webhook.MAX_HEAD, b"HTTP/1.1 431"),
        (
            b"POST /mutate-pods HTTP/1.1\r\nContent-Length: " + b"0" * 5000 + b"1\r\n\r\n",
            b"HTTP/1.1 413 Payload Too Large",
        ),
        (b"GET /" + b"a" * webhook.MAX_URL + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 414 URI Too Long"),
        (
            b"GET /healthz HTTP/1.1\r\n" + b"X: " + b"a" * webhook.MAX_HEADERS + b"\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
            b"HTTP/1.1 200 OK",
        ),
        (b"GET /healthz HTTP/1.0\r\n\r\n", b"HTTP/1.1 200 OK"),
    ],
)
def test_what_is_not_a_kept_alive_request_is_answered_and_closed(
    data: bytes, answer: bytes
) -> None:
    bundle = _bundle()

    async def scenario() -> bytes:
        async with _served(webhook.ssl_context_from_bundle(bundle)) as url:
            return await _exchange(url, bundle, data)

    received = asyncio.run(scenario())
    assert received.startswith(answer)
    assert b"Connection: close" in received


def test_a_refusal_is_answered_after_the_answers_owed_before_it() -> None:
    bundle = _bundle()

    async def slow(body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return await _echo_review(body)

    async def scenario() -> bytes:
        async with _served(webhook.ssl_context_from_bundle(bundle), slow) as url:
            big = b"GET /healthz HTTP/1.1\r\nX: " + b"a" * webhook.MAX_HEADERS + b"\r\n\r\n"
            return await _exchange(url, bundle, _request("a") + big)

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b'"uid":"a"' in answer
    assert answer.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 431 Request Header Fields Too Large" in answer


def test_the_next_request_keeps_its_own_deadline_after_an_answer() -> None:
    """A request begun while the one before was answered has `timeout`, not `idle`."""
    bundle = _bundle()

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle), timeout=0.3, idle=30) as url:
            started = asyncio.get_running_loop().time()
            answer = await _exchange(url, bundle, _request("a") + _request("b")[:30])
            assert answer.startswith(b"HTTP/1.1 200 OK")
            assert b"HTTP/1.1 408 Request Timeout" in answer
            assert asyncio.get_running_loop().time() - started < 5

    asyncio.run(scenario())


def test_a_request_must_arrive_in_time_and_idle_connections_close() -> None:
    bundle = _bundle()
    limits = {"timeout": 0.3, "idle": 0.3}

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle), **limits) as url:
            # Headers trickling in, a byte at a time: refused when the request's time is up.
            trickle = [bytes([c]) for c in _request("a")[:40]]
            started = asyncio.get_running_loop().time()
            answer = await _exchange(url, bundle, *trickle, pause=0.02)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
            assert asyncio.get_running_loop().time() - started < 2
            # A request, then silence: answered, then closed once idle.
            answer = await _exchange(url, bundle, _request("b"))
            assert answer.startswith(b"HTTP/1.1 200 OK")

    asyncio.run(scenario())


def test_stopping_closes_idle_connections_and_answers_busy_ones_first() -> None:
    bundle = _bundle()
    client = _client_context(bundle)

    async def slow(body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return await _echo_review(body)

    async def scenario() -> None:
        server = await webhook.serve(slow, webhook.ssl_context_from_bundle(bundle), "127.0.0.1", 0)
        port = server.port
        idle = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        busy = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        busy[1].write(_request("a"))
        await asyncio.sleep(0.1)  # the review is under way
        started = asyncio.get_running_loop().time()
        await server.stop(grace=5)
        assert asyncio.get_running_loop().time() - started < 1
        assert await asyncio.wait_for(idle[0].read(), 1) == b""
        answer = await asyncio.wait_for(busy[0].read(), 1)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        assert b"Connection: close" in answer
        assert answer.endswith(b'"allowed":true}}')
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port, ssl=client)
        for _, writer in (idle, busy):
            writer.close()

    asyncio.run(scenario())


def test_expect_continue_is_answered_before_the_body() -> None:
    bundle = _bundle()
    request = _request("a", b"Expect: 100-continue", b"Connection: close")
    head, body = request.split(b"\r\n\r\n", 1)

    async def scenario() -> bytes:
        async with _served(webhook.ssl_context_from_bundle(bundle)) as url:
            port = int(url.rsplit(":", 1)[1])
            client = _client_context(bundle)
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            writer.write(head + b"\r\n\r\n")
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return answer

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 200 OK")


def test_untrusted_ca_is_refused() -> None:
    bundle, other = _bundle(), _bundle()

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle)) as url:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await _get(url, _client_context(other), webhook.HEALTH_PATH)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"review"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
)
def test_malformed_requests_are_400(data: bytes, message: str) -> None:
    bundle = _bundle()

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle)) as url:
            status, text = await _post(url, _client_context(bundle), data)
            assert status == 400
            assert message in text
            assert "Traceback" not in text

    asyncio.run(scenario())


def test_everything_else_is_404() -> None:
    bundle = _bundle()
    body = json.dumps(REVIEW).encode()

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle)) as url:
            client = _client_context(bundle)
            for path in ("/", "/validate-pods", "/mutate-pods/", "/MUTATE-PODS", "/mutate"):
                assert (await _post(url, client, body, path))[0] == 404, path
            for path in ("/", "/metrics", "/healthz/x"):
                assert (await _get(url, client, path))[0] == 404, path
            # The admission path answers nothing but POST.
            assert (await _get(url, client, webhook.MUTATE_PATH))[0] == 405

    asyncio.run(scenario())


def test_oversized_body_is_413() -> None:
    bundle = _bundle()
    big = json.dumps({"request": {"uid": "1", "pad": "x" * (webhook.MAX_BODY + 10)}}).encode()
    called: list[bool] = []

    async def review(body: dict[str, Any]) -> dict[str, Any]:
        called.append(True)
        return {}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle), review) as url:
            client = _client_context(bundle)
            # With Content-Length: refused before reading.
            assert (await _post(url, client, big))[0] == 413
            # Chunked, no length announced: refused once the cap is crossed.
            async with (
                aiohttp.ClientSession() as session,
                session.post(url + webhook.MUTATE_PATH, data=chunks(), ssl=client) as response,
            ):
                assert response.status == 413
            # Still serving afterwards.
            assert await _get(url, client, webhook.HEALTH_PATH) == (200, "ok")

    asyncio.run(scenario())
    assert not called


def test_review_failure_is_500_without_echo(caplog: pytest.LogCaptureFixture) -> None:
    bundle = _bundle()

    async def review(body: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(f"cannot handle {body['request']['object']}")

    request = {"request": {"uid": "9", "object": {"env": [{"name": "X", "value": CANARY}]}}}

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle), review) as url:
            status, text = await _post(url, _client_context(bundle), json.dumps(request).encode())
            assert status == 500
            assert CANARY not in text
            assert "Traceback" not in text
            assert "ValueError" not in text

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert "ValueError" in caplog.text  # logged, so someone can find the bug
    assert CANARY not in caplog.text


def test_unserializable_review_result_is_500() -> None:
    bundle = _bundle()

    async def review(body: dict[str, Any]) -> dict[str, Any]:
        return {"response": object()}

    async def scenario() -> None:
        async with _served(webhook.ssl_context_from_bundle(bundle), review) as url:
            status, _ = await _post(url, _client_context(bundle), json.dumps(REVIEW).encode())
            assert status == 500

    asyncio.run(scenario())


async def _peer_certificate(port: int, client: ssl.SSLContext) -> bytes:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return der
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def _healthz_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    return await reader.readuntil(b"ok")


def _write_pair(directory: Path, bundle: Bundle) -> None:
    (directory / webhook.CERT_FILE).write_bytes(bundle.cert_pem)
    (directory / webhook.KEY_FILE).write_bytes(bundle.key_pem)


def test_rewritten_files_are_served_without_restart(tmp_path: Path) -> None:
    first, second = _bundle(), _bundle()
    _write_pair(tmp_path, first)
    client = _client_context(first, second)

    async def scenario() -> None:
        context = webhook.ssl_context_from_dir(tmp_path)
        watcher = asyncio.create_task(webhook.watch_cert_dir(context, tmp_path, interval=0.05))
        try:
            async with _served(context) as url:
                port = int(url.rsplit(":", 1)[1])
                assert await _peer_certificate(port, client) == _der(first)
                # A connection opened before the reload must survive it.
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)

                _write_pair(tmp_path, second)
                for _ in range(200):
                    if await _peer_certificate(port, client) == _der(second):
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail("the rewritten certificate was never served")

                assert b"200 OK" in await _healthz_on(reader, writer)
                writer.close()

                # A broken pair is not loaded; the good certificate keeps being served.
                (tmp_path / webhook.KEY_FILE).write_bytes(first.key_pem)
                await asyncio.sleep(0.3)
                assert await _peer_certificate(port, client) == _der(second)
                assert await _get(url, client, webhook.HEALTH_PATH) == (200, "ok")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    asyncio.run(scenario())


def test_bundle_rotation_is_served_without_restart() -> None:
    first, second = _bundle(), _bundle()
    client = _client_context(first, second)

    async def scenario() -> None:
        context = webhook.ssl_context_from_bundle(first)
        refreshes: list[Bundle] = [first, second]

        def refresh() -> Bundle:
            return refreshes.pop(0) if len(refreshes) > 1 else refreshes[0]

        task = asyncio.create_task(
            webhook.keep_bundle_current(context, refresh, first, interval=0.02)
        )
        try:
            async with _served(context) as url:
                port = int(url.rsplit(":", 1)[1])
                for _ in range(200):
                    if await _peer_certificate(port, client) == _der(second):
                        break
                    await asyncio.sleep(0.02)
                else:
                    pytest.fail("the rotated certificate was never served")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


def test_load_pair_keeps_the_old_certificate_on_a_bad_pair() -> None:
    first, second = _bundle(), _bundle()
    context = webhook.ssl_context_from_bundle(first)
    with pytest.raises(ssl.SSLError):
        webhook.load_pair(context, second.cert_pem, first.key_pem)

    async def scenario() -> None:
        async with _served(context) as url:
            port = int(url.rsplit(":", 1)[1])
            assert await _peer_certificate(port, _client_context(first)) == _der(first)

    asyncio.run(scenario())


def test_service_dns_names() -> None:
    assert webhook.service_dns_names("svc", "ns") == [
        "svc",
        "svc.ns",
        "svc.ns.svc",
        "svc.ns.svc.cluster.local",
    ]
