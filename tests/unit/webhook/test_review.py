"""The admission route: what is not a JSON object is a 400 that says so."""

from __future__ import annotations

import asyncio

import pytest

import https
from usersecrets.webhook import tls


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
    bundle = https.bundle()

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle)) as url:
            status, text = await https.post(url, https.client_context(bundle), data)
            assert status == 400
            assert message in text
            assert "Traceback" not in text

    asyncio.run(scenario())
