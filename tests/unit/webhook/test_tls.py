"""Certificates swapped into a serving context: reloaded files, rotated bundles, bad pairs."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import pytest

import https
from usersecrets.settings import Settings
from usersecrets.webhook import run, selfmanaged, tls
from usersecrets.webhook.certificates import Bundle, issue_certificate, new_ca


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
    (directory / "tls.crt").write_bytes(bundle.cert_pem)
    (directory / "tls.key").write_bytes(bundle.key_pem)


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
                (tmp_path / "tls.key").write_bytes(first.key_pem)
                await asyncio.sleep(0.3)
                assert await _peer_certificate(port, client) == https.der(second)
                assert await https.get(url, client, "/healthz") == (200, "ok")
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


# -- who may call: client certificates ------------------------------------------------------

APISERVER = "kube-apiserver-webhook-client"


def _client(
    tmp_path: Path, server: Bundle, identity: Bundle | None, version: ssl.TLSVersion
) -> ssl.SSLContext:
    """A client trusting the webhook's CA, presenting `identity` (a client certificate), at
    most at TLS `version`."""
    context = https.client_context(server)
    context.maximum_version = version
    if identity is not None:
        name = f"client-{len(list(tmp_path.iterdir()))}"
        cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        cert.write_bytes(identity.cert_pem)
        key.write_bytes(identity.key_pem)
        context.load_cert_chain(cert, key)
    return context


async def _health(port: int, client: ssl.SSLContext) -> str:
    """`GET /healthz`: the answer's first line, or how the server refused.

    A server that refuses the client's certificate ends the handshake without an alert (as
    asyncio and uvloop do): under TLS 1.2 the client's handshake fails ("handshake failed");
    under TLS 1.3 the client finishes its side first and then sees the connection end before
    any answer ("closed"), as it does when the server hangs up after the handshake.
    """
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    except (ssl.SSLError, ConnectionError):
        return "handshake failed"
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    except (ssl.SSLError, ConnectionError):
        return "closed"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    return answer.split(b"\r\n", 1)[0].decode() if answer else "closed"


TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def _client_ca(tmp_path: Path) -> tuple[Bundle, Path]:
    ca = new_ca("webhook-clients")
    path = tmp_path / "client-ca.crt"
    path.write_bytes(ca.cert_pem)
    return ca, path


def test_without_a_client_certificate_the_ca_signed_the_handshake_fails(tmp_path: Path) -> None:
    served = https.bundle()
    ca, ca_file = _client_ca(tmp_path)
    apiserver = issue_certificate(ca, common_name=APISERVER, client=True)
    stranger = issue_certificate(new_ca("another-ca"), common_name=APISERVER, client=True)

    async def scenario() -> None:
        context = tls.ssl_context_from_bundle(served)
        tls.require_client_certificates(context, ca_file)
        async with https.served(context) as url:
            port = int(url.rsplit(":", 1)[1])
            for version in (TLS12, TLS13):
                client = _client(tmp_path, served, apiserver, version)
                assert await _health(port, client) == "HTTP/1.1 200 OK"
            for identity in (None, stranger):
                client = _client(tmp_path, served, identity, TLS12)
                assert await _health(port, client) == "handshake failed"
                client = _client(tmp_path, served, identity, TLS13)
                assert await _health(port, client) == "closed"

    asyncio.run(scenario())


def test_only_the_named_clients_of_that_ca_are_answered(tmp_path: Path) -> None:
    served = https.bundle()
    ca, ca_file = _client_ca(tmp_path)
    by_cn = issue_certificate(ca, common_name=APISERVER, client=True)
    by_dns = issue_certificate(ca, common_name="x", dns_names=[APISERVER], client=True)
    kubelet = issue_certificate(ca, common_name="system:node:worker-1", client=True)

    async def scenario() -> None:
        context = tls.ssl_context_from_bundle(served)
        tls.require_client_certificates(context, ca_file)
        async with https.served(context, peer_check=tls.named_client([APISERVER])) as url:
            port = int(url.rsplit(":", 1)[1])
            for version in (TLS12, TLS13):
                for allowed in (by_cn, by_dns):
                    client = _client(tmp_path, served, allowed, version)
                    assert await _health(port, client) == "HTTP/1.1 200 OK"
                # The handshake succeeds (the CA signed it), then nothing is read.
                client = _client(tmp_path, served, kubelet, version)
                assert await _health(port, client) == "closed"

    asyncio.run(scenario())


def test_certificate_names_are_the_subject_cn_and_dns_names() -> None:
    peer = {
        "subject": ((("organizationName", "system:masters"),), (("commonName", "apiserver"),)),
        "subjectAltName": (("DNS", "webhook-client.example"), ("IP Address", "10.0.0.1")),
    }
    assert tls.certificate_names(peer) == {"apiserver", "webhook-client.example"}
    assert tls.certificate_names(None) == set()
    assert tls.certificate_names({}) == set()
    assert not tls.named_client(["apiserver"])(None)


def verify_mode(context: ssl.SSLContext) -> ssl.VerifyMode:
    """The context's mode as it is now (mypy keeps `context.verify_mode` narrowed by an assert
    across a call that changes it)."""
    return context.verify_mode


def test_client_names_without_a_client_ca_are_refused_at_start(tmp_path: Path) -> None:
    """Names alone would check certificates nobody verified: the operator does not start."""
    context = tls.ssl_context_from_bundle(https.bundle())
    settings = Settings(webhook_client_names=(APISERVER,))
    with pytest.raises(ValueError, match="webhook_client_names needs webhook_client_ca_file"):
        run._client_authentication(context, settings)
    assert verify_mode(context) == ssl.CERT_NONE
    _, ca_file = _client_ca(tmp_path)
    with_ca = Settings(webhook_client_names=(APISERVER,), webhook_client_ca_file=str(ca_file))
    check = run._client_authentication(context, with_ca)
    assert verify_mode(context) == ssl.CERT_REQUIRED
    assert check is not None
    assert check({"subject": ((("commonName", APISERVER),),)})
    assert not check({"subject": ((("commonName", "someone-else"),),)})
    assert run._client_authentication(tls.server_ssl_context(), Settings()) is None
