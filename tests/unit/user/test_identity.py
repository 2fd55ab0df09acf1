"""Identities as the apiserver reports them."""

from __future__ import annotations

from usersecrets.user.identity import Identity, is_namespace_name


def test_a_service_accounts_namespace_is_read_from_its_username() -> None:
    assert Identity("system:serviceaccount:alice-dev:alice").service_account_namespace == (
        "alice-dev"
    )
    assert Identity("alice@example.com").service_account_namespace is None
    assert Identity("system:serviceaccount:alice-dev").service_account_namespace is None


def test_namespace_names_are_dns_labels() -> None:
    assert is_namespace_name("alice-dev")
    for bad in ("", "Alice", "a_b", "a.b", "-a", "a" * 64, "../x"):
        assert not is_namespace_name(bad), bad
