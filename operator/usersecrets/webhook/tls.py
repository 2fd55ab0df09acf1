"""The webhook's TLS: serving contexts, and swapping certificates in while they serve.

The pair comes from cert-manager's files (reloaded when they change) or from the operator's own
bundle (`selfmanaged`); either way new connections get the new certificate without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from usersecrets.webhook.certificates import Bundle

log = logging.getLogger(__name__)

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"


def server_ssl_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def require_client_certificates(context: ssl.SSLContext, ca_file: str | Path) -> None:
    """Ask every client for a certificate, and refuse during the handshake a client without
    one that a CA in `ca_file` (PEM) signed: who cannot prove to be the apiserver gets no
    answer at all."""
    context.load_verify_locations(cafile=str(ca_file))
    context.verify_mode = ssl.CERT_REQUIRED


PeerCertificate = dict[str, Any] | None


def certificate_names(peer: PeerCertificate) -> set[str]:
    """The subject's common names and the DNS names of a verified peer certificate."""
    if not peer:
        return set()
    names = {value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS"}
    return names


def named_client(allowed: Iterable[str]) -> Callable[[PeerCertificate], bool]:
    """A check of the client certificate (as `SSLSocket.getpeercert()` gives it, verified):
    true when it names one of `allowed`, by subject CN or DNS name."""
    wanted = frozenset(allowed)
    return lambda peer: not wanted.isdisjoint(certificate_names(peer))


@contextlib.contextmanager
def _pem_paths(cert_pem: bytes, key_pem: bytes) -> Iterator[tuple[str, str]]:
    """Paths OpenSSL can read the pair from; in memory where Linux allows (read-only root
    filesystems, and the key never touches a disk), else in a private temporary directory."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = [os.memfd_create(CERT_FILE), os.memfd_create(KEY_FILE)]
        try:
            for fd, data in zip(fds, (cert_pem, key_pem), strict=True):
                os.write(fd, data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="usersecrets-tls-") as tmp:
        paths = (os.path.join(tmp, CERT_FILE), os.path.join(tmp, KEY_FILE))
        for path, data in zip(paths, (cert_pem, key_pem), strict=True):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
        yield paths


def load_pair(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Put a certificate and key into a (possibly serving) context; new connections use them.

    The pair is tried on a scratch context first: OpenSSL drops the old key as soon as a new
    certificate is loaded, so a bad pair loaded directly would leave the server with nothing
    to serve. On failure the context keeps what it had and ssl.SSLError is raised.
    """
    with _pem_paths(cert_pem, key_pem) as (cert_path, key_path):
        server_ssl_context().load_cert_chain(cert_path, key_path)
        context.load_cert_chain(cert_path, key_path)


def ssl_context_from_bundle(bundle: Bundle) -> ssl.SSLContext:
    context = server_ssl_context()
    load_pair(context, bundle.cert_pem, bundle.key_pem)
    return context


def _read_pair(cert_dir: Path) -> tuple[bytes, bytes]:
    return (cert_dir / CERT_FILE).read_bytes(), (cert_dir / KEY_FILE).read_bytes()


def ssl_context_from_dir(cert_dir: str | Path) -> ssl.SSLContext:
    """Serve `tls.crt`/`tls.key` from a directory (cert-manager's Secret, mounted)."""
    context = server_ssl_context()
    load_pair(context, *_read_pair(Path(cert_dir)))
    return context


def _stamp(cert_dir: Path) -> tuple[tuple[int, int, int], ...] | None:
    # stat follows the symlinks a Secret volume swaps atomically (..data), so a new
    # projection changes the inode even when mtimes collide.
    try:
        stats = [os.stat(cert_dir / name) for name in (CERT_FILE, KEY_FILE)]
    except OSError:
        return None
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


async def watch_cert_dir(
    context: ssl.SSLContext, cert_dir: str | Path, interval: float = 5.0
) -> None:
    """Reload the pair into `context` whenever the files change; runs until cancelled.

    A pair that does not load (say, the certificate is rewritten before the key) is retried
    when the files change again; until then the previous certificate keeps being served.
    """
    directory = Path(cert_dir)
    seen = _stamp(directory)
    while True:
        await asyncio.sleep(interval)
        stamp = _stamp(directory)
        if stamp is None or stamp == seen:
            continue
        seen = stamp
        try:
            load_pair(context, *_read_pair(directory))
        except (OSError, ssl.SSLError) as error:
            log.warning("webhook certificate in %s not reloaded: %s", directory, error)
        else:
            log.info("webhook certificate reloaded from %s", directory)
