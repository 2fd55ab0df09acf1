"""The webhook's certificates: a chain the kube-apiserver accepts, and rotation decisions."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from usersecrets.webhook.certificates import (
    Bundle,
    is_consistent,
    issue_bundle,
    issue_certificate,
    load_certificates,
    needs_rotation,
    new_ca,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DNS = [
    "usersecrets-webhook",
    "usersecrets-webhook.usersecrets-system",
    "usersecrets-webhook.usersecrets-system.svc",
    "usersecrets-webhook.usersecrets-system.svc.cluster.local",
]
IPS = ["127.0.0.1"]


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return issue_bundle(DNS, IPS, NOW)


def _verify(bundle: Bundle, name: x509.DNSName | x509.IPAddress, at: datetime) -> None:
    store = Store(load_certificates(bundle.ca_pem))
    verifier = PolicyBuilder().store(store).time(at).build_server_verifier(name)
    verifier.verify(x509.load_pem_x509_certificate(bundle.cert_pem), [])


def test_chain_verifies_for_every_name(bundle: Bundle) -> None:
    for dns in DNS:
        _verify(bundle, x509.DNSName(dns), NOW)
    _verify(bundle, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), NOW)


def test_chain_rejects_other_names(bundle: Bundle) -> None:
    with pytest.raises(x509.verification.VerificationError):
        _verify(bundle, x509.DNSName("evil.example.com"), NOW)


def test_serving_certificate_shape(bundle: Bundle) -> None:
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == DNS
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=89) < lifetime < timedelta(days=91)
    ca = load_certificates(bundle.ca_pem)
    assert len(ca) == 1
    assert ca[0].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_life = ca[0].not_valid_after_utc - ca[0].not_valid_before_utc
    assert timedelta(days=364) < ca_life < timedelta(days=366)
    assert b"BEGIN PRIVATE KEY" in bundle.key_pem
    key = serialization.load_pem_private_key(bundle.key_pem, password=None)
    assert key.public_key() == cert.public_key()


def test_repr_hides_the_key(bundle: Bundle) -> None:
    assert "PRIVATE" not in repr(bundle)
    assert "PRIVATE" not in str(bundle)


def test_consistency(bundle: Bundle) -> None:
    assert is_consistent(bundle)
    other = issue_bundle(DNS, IPS, NOW)
    assert not is_consistent(Bundle(bundle.ca_pem, bundle.cert_pem, other.key_pem))
    assert not is_consistent(Bundle(other.ca_pem, bundle.cert_pem, bundle.key_pem))
    assert not is_consistent(Bundle(b"junk", bundle.cert_pem, bundle.key_pem))
    assert not is_consistent(Bundle(bundle.ca_pem, bundle.cert_pem, b"junk"))


def test_rotation_keeps_trusting_the_previous_ca(bundle: Bundle) -> None:
    later = NOW + timedelta(days=70)
    rotated = issue_bundle(DNS, IPS, later, previous=bundle)
    cas = load_certificates(rotated.ca_pem)
    assert len(cas) == 2
    assert cas[1] == load_certificates(bundle.ca_pem)[0]
    # A replica still serving the old certificate stays trusted by the new caBundle.
    _verify(Bundle(rotated.ca_pem, bundle.cert_pem, bundle.key_pem), x509.DNSName(DNS[0]), later)
    _verify(rotated, x509.DNSName(DNS[0]), later)
    assert is_consistent(rotated)
    # Rotating again drops the oldest CA: the bundle does not grow.
    again = issue_bundle(DNS, IPS, later + timedelta(days=70), previous=rotated)
    assert len(load_certificates(again.ca_pem)) == 2
    # An expired previous CA is not carried over.
    much_later = issue_bundle(DNS, IPS, NOW + timedelta(days=400), previous=bundle)
    assert len(load_certificates(much_later.ca_pem)) == 1


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(0), False),
        (timedelta(days=59), False),  # 31 of 90 days left
        (timedelta(days=61), True),  # less than a third left
        (timedelta(days=90), True),  # expired
        (timedelta(days=400), True),
        (timedelta(days=-1), True),  # not valid yet
    ],
)
def test_needs_rotation_by_time(bundle: Bundle, offset: timedelta, expected: bool) -> None:
    assert needs_rotation(bundle.cert_pem, NOW + offset, [*DNS, *IPS]) is expected


def test_needs_rotation_by_names(bundle: Bundle) -> None:
    assert not needs_rotation(bundle.cert_pem, NOW, [DNS[0]])
    assert not needs_rotation(bundle.cert_pem, NOW, [DNS[2].upper()])
    assert not needs_rotation(bundle.cert_pem, NOW, [])
    assert needs_rotation(bundle.cert_pem, NOW, [*DNS, "other.usersecrets-system.svc"])
    assert needs_rotation(bundle.cert_pem, NOW, ["10.0.0.1"])
    assert needs_rotation(bundle.cert_pem, NOW, ["::1"])


def test_needs_rotation_of_garbage() -> None:
    assert needs_rotation(b"", NOW, DNS)
    assert needs_rotation(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", NOW, DNS
    )
    without_san = issue_certificate(new_ca("x", NOW), common_name="c", client=True, now=NOW)
    assert needs_rotation(without_san.cert_pem, NOW, DNS)


def test_naive_time_is_refused(bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="timezone"):
        needs_rotation(bundle.cert_pem, datetime(2030, 1, 1), DNS)


def test_a_serving_certificate_needs_a_name() -> None:
    with pytest.raises(ValueError, match="DNS name or IP"):
        issue_bundle([], [], NOW)


def test_client_certificate_for_kubernetes() -> None:
    ca = new_ca("test-ca", NOW)
    cert = issue_certificate(
        ca, common_name="alice", organizations=["system:masters"], client=True, now=NOW
    )
    parsed = x509.load_pem_x509_certificate(cert.cert_pem)
    assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    organization = parsed.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert organization == "system:masters"
    eku = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    parsed.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    assert is_consistent(cert)
