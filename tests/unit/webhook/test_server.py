"""The webhook server over real HTTPS on loopback, verified against a freshly issued CA."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import https
from usersecrets.webhook import review, server, tls

CANARY = "canary-d2f1c0-not-for-logs"
#: The bounds a request is held to: its URL, its headers, the two together, its body.
MAX_URL, MAX_HEADERS = 8 * 1024, 64 * 1024
MAX_HEAD, MAX_BODY = MAX_URL + MAX_HEADERS, 3 * 1024 * 1024


def test_review_round_trip() -> None:
    bundle = https.bundle()

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle)) as url:
            status, text = await https.post(
                url, https.client_context(bundle), json.dumps(https.REVIEW).encode()
            )
            assert status == 200
            assert json.loads(text)["response"] == {"uid": "1234", "allowed": True}
            assert await https.get(url, https.client_context(bundle), "/healthz") == (
                200,
                "ok",
            )

    asyncio.run(scenario())


def test_one_connection_answers_in_order_and_closes_when_asked() -> None:
    """Kept alive between reviews, pipelined requests answered in the order sent, and
    `Connection: close` honoured (it is what ends this exchange)."""
    bundle = https.bundle()

    async def slow_first(body: dict[str, Any]) -> dict[str, Any]:
        if body["request"]["uid"] == "a":
            await asyncio.sleep(0.1)
        return await https.echo_review(body)

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle), slow_first) as url:
            answer = await https.exchange(
                url,
                bundle,
                https.request("a") + https.request("b"),
                https.request("c", b"Connection: close"),
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
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 2 * MAX_HEAD, b"HTTP/1.1 431"),
        (
            b"POST /mutate-pods HTTP/1.1\r\nContent-Length: " + b"0" * 5000 + b"1\r\n\r\n",
            b"HTTP/1.1 413 Payload Too Large",
        ),
        (b"GET /" + b"a" * MAX_URL + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 414 URI Too Long"),
        (
            b"GET /healthz HTTP/1.1\r\n" + b"X: " + b"a" * MAX_HEADERS + b"\r\n\r\n",
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
    bundle = https.bundle()

    async def scenario() -> bytes:
        async with https.served(tls.ssl_context_from_bundle(bundle)) as url:
            return await https.exchange(url, bundle, data)

    received = asyncio.run(scenario())
    assert received.startswith(answer)
    assert b"Connection: close" in received


def test_a_refusal_is_answered_after_the_answers_owed_before_it() -> None:
    bundle = https.bundle()

    async def slow(body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return await https.echo_review(body)

    async def scenario() -> bytes:
        async with https.served(tls.ssl_context_from_bundle(bundle), slow) as url:
            big = b"GET /healthz HTTP/1.1\r\nX: " + b"a" * MAX_HEADERS + b"\r\n\r\n"
            return await https.exchange(url, bundle, https.request("a") + big)

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b'"uid":"a"' in answer
    assert answer.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 431 Request Header Fields Too Large" in answer


def test_the_next_request_keeps_its_own_deadline_after_an_answer() -> None:
    """A request begun while the one before was answered has `timeout`, not `idle`."""
    bundle = https.bundle()

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle), timeout=0.3, idle=30) as url:
            started = asyncio.get_running_loop().time()
            answer = await https.exchange(url, bundle, https.request("a") + https.request("b")[:30])
            assert answer.startswith(b"HTTP/1.1 200 OK")
            assert b"HTTP/1.1 408 Request Timeout" in answer
            assert asyncio.get_running_loop().time() - started < 5

    asyncio.run(scenario())


def test_a_request_must_arrive_in_time_and_idle_connections_close() -> None:
    bundle = https.bundle()
    limits: https.Limits = {"timeout": 0.3, "idle": 0.3}

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle), **limits) as url:
            # Headers trickling in, a byte at a time: refused when the request's time is up.
            trickle = [bytes([c]) for c in https.request("a")[:40]]
            started = asyncio.get_running_loop().time()
            answer = await https.exchange(url, bundle, *trickle, pause=0.02)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
            assert asyncio.get_running_loop().time() - started < 2
            # A request, then silence: answered, then closed once idle.
            answer = await https.exchange(url, bundle, https.request("b"))
            assert answer.startswith(b"HTTP/1.1 200 OK")

    asyncio.run(scenario())


def test_stopping_closes_idle_connections_and_answers_busy_ones_first() -> None:
    bundle = https.bundle()
    client = https.client_context(bundle)

    async def slow(body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return await https.echo_review(body)

    async def scenario() -> None:
        context = tls.ssl_context_from_bundle(bundle)
        served = await server.serve(review.routes(slow), context, "127.0.0.1", 0)
        port = served.port
        idle = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        busy = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        busy[1].write(https.request("a"))
        await asyncio.sleep(0.1)  # the review is under way
        started = asyncio.get_running_loop().time()
        await served.stop(grace=5)
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
    bundle = https.bundle()
    request = https.request("a", b"Expect: 100-continue", b"Connection: close")
    head, body = request.split(b"\r\n\r\n", 1)

    async def scenario() -> bytes:
        async with https.served(tls.ssl_context_from_bundle(bundle)) as url:
            port = int(url.rsplit(":", 1)[1])
            client = https.client_context(bundle)
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
    bundle, other = https.bundle(), https.bundle()

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle)) as url:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await https.get(url, https.client_context(other), "/healthz")

    asyncio.run(scenario())


def test_everything_else_is_404() -> None:
    bundle = https.bundle()
    body = json.dumps(https.REVIEW).encode()

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle)) as url:
            client = https.client_context(bundle)
            for path in ("/", "/validate-pods", "/mutate-pods/", "/MUTATE-PODS", "/mutate"):
                assert (await https.post(url, client, body, path))[0] == 404, path
            for path in ("/", "/metrics", "/healthz/x"):
                assert (await https.get(url, client, path))[0] == 404, path
            # The admission path answers nothing but POST.
            assert (await https.get(url, client, "/mutate-pods"))[0] == 405

    asyncio.run(scenario())


def test_oversized_body_is_413() -> None:
    bundle = https.bundle()
    big = json.dumps({"request": {"uid": "1", "pad": "x" * (MAX_BODY + 10)}}).encode()
    called: list[bool] = []

    async def answering(body: dict[str, Any]) -> dict[str, Any]:
        called.append(True)
        return {}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle), answering) as url:
            client = https.client_context(bundle)
            # With Content-Length: refused before reading.
            assert (await https.post(url, client, big))[0] == 413
            # Chunked, no length announced: refused once the cap is crossed.
            async with (
                aiohttp.ClientSession() as session,
                session.post(url + "/mutate-pods", data=chunks(), ssl=client) as response,
            ):
                assert response.status == 413
            # Still serving afterwards.
            assert await https.get(url, client, "/healthz") == (200, "ok")

    asyncio.run(scenario())
    assert not called


def test_review_failure_is_500_without_echo(caplog: pytest.LogCaptureFixture) -> None:
    bundle = https.bundle()

    async def answering(body: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(f"cannot handle {body['request']['object']}")

    request = {"request": {"uid": "9", "object": {"env": [{"name": "X", "value": CANARY}]}}}

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle), answering) as url:
            status, text = await https.post(
                url, https.client_context(bundle), json.dumps(request).encode()
            )
            assert status == 500
            assert CANARY not in text
            assert "Traceback" not in text
            assert "ValueError" not in text

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert "ValueError" in caplog.text  # logged, so someone can find the bug
    assert CANARY not in caplog.text


def test_unserializable_review_result_is_500() -> None:
    bundle = https.bundle()

    async def answering(body: dict[str, Any]) -> dict[str, Any]:
        return {"response": object()}

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle), answering) as url:
            status, _ = await https.post(
                url, https.client_context(bundle), json.dumps(https.REVIEW).encode()
            )
            assert status == 500

    asyncio.run(scenario())
