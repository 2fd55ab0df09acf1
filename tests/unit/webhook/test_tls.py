"""Certificates swapped into a serving context: reloaded files, rotated bundles, bad pairs."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import pytest

import https
from usersecrets.webhook import review, selfmanaged, tls
from usersecrets.webhook.certificates import Bundle


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
    (directory / tls.CERT_FILE).write_bytes(bundle.cert_pem)
    (directory / tls.KEY_FILE).write_bytes(bundle.key_pem)


def test_rewritten_files_are_served_without_restart(tmp_path: Path) -> None:
    first, second = https.bundle(), https.bundle()
    _write_pair(tmp_path, first)
    client = https.client_context(first, second)

    async def scenario() -> None:
        context = tls.ssl_context_from_dir(tmp_path)
        watcher = asyncio.create_task(tls.watch_cert_dir(context, tmp_path, interval=0.05))
        try:
            async with https.served(context) as url:
                port = int(url.rsplit(":", 1)[1])
                assert await _peer_certificate(port, client) == https.der(first)
                # A connection opened before the reload must survive it.
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)

                _write_pair(tmp_path, second)
                for _ in range(200):
                    if await _peer_certificate(port, client) == https.der(second):
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail("the rewritten certificate was never served")

                assert b"200 OK" in await _healthz_on(reader, writer)
                writer.close()

                # A broken pair is not loaded; the good certificate keeps being served.
                (tmp_path / tls.KEY_FILE).write_bytes(first.key_pem)
                await asyncio.sleep(0.3)
                assert await _peer_certificate(port, client) == https.der(second)
                assert await https.get(url, client, review.HEALTH_PATH) == (200, "ok")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    asyncio.run(scenario())


def test_bundle_rotation_is_served_without_restart() -> None:
    first, second = https.bundle(), https.bundle()
    client = https.client_context(first, second)

    async def scenario() -> None:
        context = tls.ssl_context_from_bundle(first)
        refreshes: list[Bundle] = [first, second]

        def refresh() -> Bundle:
            return refreshes.pop(0) if len(refreshes) > 1 else refreshes[0]

        task = asyncio.create_task(
            selfmanaged.keep_bundle_current(context, refresh, first, interval=0.02)
        )
        try:
            async with https.served(context) as url:
                port = int(url.rsplit(":", 1)[1])
                for _ in range(200):
                    if await _peer_certificate(port, client) == https.der(second):
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
    first, second = https.bundle(), https.bundle()
    context = tls.ssl_context_from_bundle(first)
    with pytest.raises(ssl.SSLError):
        tls.load_pair(context, second.cert_pem, first.key_pem)

    async def scenario() -> None:
        async with https.served(context) as url:
            port = int(url.rsplit(":", 1)[1])
            assert await _peer_certificate(port, https.client_context(first)) == https.der(first)

    asyncio.run(scenario())
