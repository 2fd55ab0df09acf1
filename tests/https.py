"""Serving routes over real HTTPS on loopback, and talking to them: the webhook's unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypedDict, Unpack

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from usersecrets.webhook import review, server
from usersecrets.webhook.certificates import Bundle, issue_bundle


def bundle() -> Bundle:
    return issue_bundle(["localhost"], ["127.0.0.1"])


def client_context(*bundles: Bundle) -> ssl.SSLContext:
    return ssl.create_default_context(cadata="".join(b.ca_pem.decode() for b in bundles))


def der(bundle: Bundle) -> bytes:
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    return cert.public_bytes(serialization.Encoding.DER)


async def echo_review(body: dict[str, Any]) -> dict[str, Any]:
    uid = body["request"]["uid"]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True},
    }


class Limits(TypedDict, total=False):
    """`server.serve`'s limits; the server's own defaults for any not given."""

    max_body: int
    timeout: float
    idle: float


@contextlib.asynccontextmanager
async def served(
    context: ssl.SSLContext,
    answer: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] = echo_review,
    peer_check: server.PeerCheck | None = None,
    **limits: Unpack[Limits],
) -> AsyncIterator[str]:
    served = await server.serve(
        review.routes(answer), context, "127.0.0.1", 0, peer_check=peer_check, **limits
    )
    try:
        yield f"https://127.0.0.1:{served.port}"
    finally:
        await served.stop(grace=1)


async def post(
    url: str, client: ssl.SSLContext, data: bytes, path: str = "/mutate-pods"
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + path, data=data, ssl=client, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        return response.status, await response.text()


async def get(url: str, client: ssl.SSLContext, path: str) -> tuple[int, str]:
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


def request(uid: str, *headers: bytes) -> bytes:
    body = json.dumps({"request": {"uid": uid}}).encode()
    head = [b"POST /mutate-pods HTTP/1.1", b"Host: x", b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def exchange(url: str, bundle: Bundle, *sends: bytes, pause: float = 0) -> bytes:
    """Write `sends` on one connection, `pause` seconds apart; everything read until EOF."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(bundle))
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
