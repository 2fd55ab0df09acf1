"""The self-managed certificate's names."""

from __future__ import annotations

from usersecrets.webhook import selfmanaged


def test_service_dns_names() -> None:
    assert selfmanaged.service_dns_names("svc", "ns") == [
        "svc",
        "svc.ns",
        "svc.ns.svc",
        "svc.ns.svc.cluster.local",
    ]
