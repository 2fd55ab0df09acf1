"""X.509 for the webhook: a throwaway CA and the serving certificate it signs.

The CA's private key is discarded once the serving certificate is signed, so nothing can mint
further certificates that the kube-apiserver would trust. Rotation therefore issues a new CA
too, and the new trust bundle keeps the previous CA for a while: replicas still serving the
old certificate stay trusted until they pick up the new one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=365)
CERT_VALIDITY = timedelta(days=90)
#: Backdating absorbs clock skew between us and the kube-apiserver.
CLOCK_SKEW = timedelta(minutes=5)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Bundle:
    """PEM bytes as stored in a kubernetes.io/tls Secret (`ca.crt`, `tls.crt`, `tls.key`).

    `ca_pem` may hold several CA certificates (the current one first): it is the trust bundle.
    """

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:
        # Never let a private key reach a log line or a traceback.
        return "Bundle(<redacted>)"


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """All certificates in a PEM bundle; ValueError when there are none or one is malformed."""
    return x509.load_pem_x509_certificates(pem)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now


def _split_names(names: Iterable[str]) -> tuple[list[str], list[IPAddress]]:
    dns: list[str] = []
    ips: list[IPAddress] = []
    for name in names:
        try:
            ips.append(ipaddress.ip_address(name))
        except ValueError:
            dns.append(name.lower())
    return dns, ips


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_ca(
    common_name: str, now: datetime | None = None, validity: timedelta = CA_VALIDITY
) -> Bundle:
    """A self-signed CA; `cert_pem`/`key_pem` are the CA's own, `ca_pem` its certificate."""
    now = _aware(now)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Bundle(ca_pem=_pem(cert), cert_pem=_pem(cert), key_pem=_key_pem(key))


def issue_certificate(
    ca: Bundle,
    *,
    common_name: str,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    organizations: Sequence[str] = (),
    client: bool = False,
    now: datetime | None = None,
    validity: timedelta = CERT_VALIDITY,
) -> Bundle:
    """A leaf certificate signed by `ca` (a `new_ca` bundle), for serving or, with `client`,
    for client authentication (Kubernetes reads the user from CN and groups from O)."""
    now = _aware(now)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key must be an ECDSA key")
    if not client and not dns_names and not ip_addresses:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    dns, ips = _split_names([*dns_names, *ip_addresses])
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if dns or ips:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        names += [x509.IPAddress(ip) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Bundle(ca_pem=ca.cert_pem, cert_pem=_pem(cert), key_pem=_key_pem(key))


def issue_bundle(
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    now: datetime | None = None,
    *,
    previous: Bundle | None = None,
) -> Bundle:
    """The webhook's serving bundle: a fresh CA (its key then dropped) and a certificate.

    With `previous`, its first CA (if still valid) stays in the trust bundle after the new one.
    """
    now = _aware(now)
    ca = new_ca("usersecrets-webhook-ca", now)
    serving = issue_certificate(
        ca,
        common_name="usersecrets-webhook",
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        now=now,
    )
    trust = ca.cert_pem
    if previous is not None:
        try:
            old_ca = load_certificates(previous.ca_pem)[0]
        except ValueError:
            old_ca = None
        if old_ca is not None and old_ca.not_valid_after_utc > now:
            trust += _pem(old_ca)
    return Bundle(ca_pem=trust, cert_pem=serving.cert_pem, key_pem=serving.key_pem)


def needs_rotation(cert_pem: bytes, now: datetime, names: Iterable[str]) -> bool:
    """Whether to issue a new certificate: unreadable, not valid now, in the last third of its
    lifetime (time enough for every replica to pick up the next one), or missing a name."""
    now = _aware(now)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= now < end or end - now < (end - start) / 3:
        return True
    dns, ips = _split_names(names)
    have_dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return not (set(dns) <= have_dns and set(ips) <= have_ips)


def is_consistent(bundle: Bundle) -> bool:
    """Whether the key belongs to the certificate and a CA of the bundle signed it.

    Loading a mismatched pair into a live TLS context would leave it without a usable
    certificate, and a wrong `ca.crt` would make the kube-apiserver reject us.
    """
    try:
        cert = x509.load_pem_x509_certificate(bundle.cert_pem)
        cas = load_certificates(bundle.ca_pem)
        key = serialization.load_pem_private_key(bundle.key_pem, password=None)
    except (ValueError, TypeError):
        return False
    if key.public_key() != cert.public_key():
        return False
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False
