"""Per-user limits in the desired state: past one, the newest are left out, and say why."""

from __future__ import annotations

from collections.abc import Iterable

from usersecrets.rules.desired import (
    GrantState,
    GrantView,
    Limits,
    SecretState,
    SecretView,
    World,
    compute,
)
from usersecrets.rules.status import past_limit

NAMESPACES: dict[str, str | None] = {"alice": "alice", "alice-2": "alice", "bob": "bob"}


def day(n: int) -> str:
    return f"2026-01-{n:02}T00:00:00Z"


def world(limits: Limits, secrets: Iterable[SecretView], grants: Iterable[GrantView] = ()) -> World:
    return World(secrets, grants, NAMESPACES, limits)


def test_past_the_secret_limit_the_newest_are_not_copied() -> None:
    secrets = [
        SecretView("alice" if i % 2 else "alice-2", f"k{i}", day(i + 1), b"v") for i in range(4)
    ]
    found = compute(world(Limits(secrets_per_user=3), secrets), "c")
    states = {key: found.secrets[ns, key].state for ns, key in found.secrets}
    assert states == {
        "k0": SecretState.MATERIALIZED,
        "k1": SecretState.MATERIALIZED,
        "k2": SecretState.MATERIALIZED,
        "k3": SecretState.LIMIT_EXCEEDED,
    }
    assert {c.key for c in found.copies.values()} == {"k0", "k1", "k2"}
    assert found.secrets["alice", "k3"].limit == ("secrets", 3)


def test_past_the_byte_limit_a_big_one_waits_and_smaller_newer_ones_still_fit() -> None:
    secrets = [
        SecretView("alice", "small", day(1), b"x" * 600),
        SecretView("alice", "big", day(2), b"x" * 600),
        SecretView("alice", "tiny", day(3), b"x" * 300),
    ]
    found = compute(world(Limits(bytes_per_user=1000), secrets), "c")
    assert found.secrets["alice", "big"].state is SecretState.LIMIT_EXCEEDED
    assert found.secrets["alice", "big"].limit == ("bytes", 1000)
    assert found.secrets["alice", "tiny"].state is SecretState.MATERIALIZED


def test_the_limits_are_per_user() -> None:
    secrets = [SecretView("alice", f"a{i}", day(i + 1), b"v") for i in range(3)]
    secrets.append(SecretView("bob", "b", day(9), b"v"))
    found = compute(world(Limits(secrets_per_user=2), secrets), "c")
    assert found.secrets["bob", "b"].state is SecretState.MATERIALIZED
    assert found.secrets["alice", "a2"].state is SecretState.LIMIT_EXCEEDED


def test_past_the_grant_and_share_limits_the_newest_grants_do_nothing() -> None:
    secrets = [SecretView("alice", "db", day(1), b"v")]
    grants = [GrantView("alice", f"g{i}", "db", "bob", day(i + 1)) for i in range(3)]
    for limits in (Limits(grants_per_user=2), Limits(shares_per_user=2)):
        found = compute(world(limits, secrets, grants), "c")
        assert [found.grants["alice", f"g{i}"].state for i in range(3)] == [
            GrantState.GRANTED,
            GrantState.GRANTED,
            GrantState.LIMIT_EXCEEDED,
        ]
    found = compute(world(Limits(shares_per_user=2), secrets, grants), "c")
    assert found.grants["alice", "g2"].limit == ("shares", 2)
    assert found.grants["alice", "g1"].namespaces == ("bob",)  # the others still work


def test_within_the_limits_nothing_is_ranked() -> None:
    w = world(Limits(), [SecretView("alice", "db", day(1), b"v")])
    assert not w.over_secret_limits("alice")
    assert w.secret_past_limit(SecretView("alice", "db", day(1), b"v"), "alice") is None
    assert w.secrets_past("alice") == {}


def test_each_limit_is_told_in_words() -> None:
    assert past_limit(("secrets", 500), "alice") == (
        "User 'alice' has more than the 500 UserSecrets a user may have: the newest are not "
        "copied, and this is one of them"
    )
    assert past_limit(("bytes", 64 * 1024 * 1024), "alice") == (
        "The values of user 'alice''s UserSecrets add up to more than the 64 MiB a user may "
        "have: the newest are not copied, and this is one of them"
    )
    assert past_limit(("grants", 500), "alice") == (
        "User 'alice' has made more than the 500 grants a user may make: the newest have no "
        "effect, and this is one of them"
    )
    assert past_limit(("shares", 500), "bob") == (
        "User 'bob' has more than the 500 shares a user may receive: the newest have no "
        "effect, and this is one of them"
    )


def test_each_limit_is_the_most_a_user_may_have_not_one_less() -> None:
    at = World(
        [SecretView("alice", "a", day(1), b"xx"), SecretView("alice", "b", day(2), b"xxx")],
        [GrantView("alice", "g", "a", "bob", day(3))],
        {**NAMESPACES, "alice-empty": "alice"},
        Limits(secrets_per_user=2, bytes_per_user=5, grants_per_user=1, shares_per_user=1),
    )
    assert not at.over_secret_limits("alice")
    assert not at.over_grant_limit("alice")
    assert not at.over_share_limit("bob")
    found = compute(at, "c")
    assert {f.state for f in found.secrets.values()} == {SecretState.MATERIALIZED}
    assert found.grants["alice", "g"].state is GrantState.GRANTED
    at.put_grant(GrantView("alice", "g2", "a", "bob", day(4)))
    assert at.over_grant_limit("alice")
    assert at.over_share_limit("bob")
    at.put_secret(SecretView("alice-2", "c", day(5), b""))
    assert at.over_secret_limits("alice")


def test_the_byte_limit_is_the_most_bytes_a_user_may_hold() -> None:
    secrets = [
        SecretView("alice", "a", day(1), b"x" * 600),
        SecretView("alice", "b", day(2), b"x" * 400),
        SecretView("alice", "c", day(3), b""),
    ]
    found = compute(world(Limits(secrets_per_user=2, bytes_per_user=1000), secrets), "c")
    assert found.secrets["alice", "b"].state is SecretState.MATERIALIZED  # 1000 bytes: all
    assert found.secrets["alice", "c"].limit == ("secrets", 2)
    found = compute(world(Limits(bytes_per_user=1000), secrets), "c")
    assert {f.state for f in found.secrets.values()} == {SecretState.MATERIALIZED}


def test_past_the_grant_limit_the_owners_limit_is_named() -> None:
    secrets = [SecretView("alice", "db", day(1), b"v")]
    grants = [GrantView("alice", f"g{i}", "db", f"u{i}", day(i + 1)) for i in range(3)]
    found = compute(world(Limits(grants_per_user=2), secrets, grants), "c")
    assert found.grants["alice", "g2"].limit == ("grants", 2)


def test_a_grant_of_no_secret_of_a_user_past_the_secret_limit_is_not_found() -> None:
    secrets = [SecretView("alice", f"k{i}", day(i + 1), b"v") for i in range(3)]
    grants = [GrantView("alice", "g", "nothing", "bob", day(9))]
    found = compute(world(Limits(secrets_per_user=2), secrets, grants), "c")
    assert found.grants["alice", "g"].state is GrantState.SECRET_NOT_FOUND


def test_past_a_limit_each_change_of_what_is_ranked_is_ranked_again() -> None:
    """A ranking past a limit is kept until what it ranks changes: a UserSecret, a grant or a
    namespace of the user's, added or removed, or a grant to them."""
    w = world(Limits(secrets_per_user=1, grants_per_user=1, shares_per_user=1), [])
    past = ("secrets", 1)
    w.put_secret(SecretView("alice", "a", day(1), b"v"))
    w.put_secret(SecretView("alice", "b", day(2), b"v"))
    assert w.secrets_past("alice") == {("alice", "b"): past}
    w.put_secret(SecretView("alice-2", "c", day(3), b"v"))
    assert w.secrets_past("alice") == {("alice", "b"): past, ("alice-2", "c"): past}
    w.remove_secret("alice", "b")
    assert w.secrets_past("alice") == {("alice-2", "c"): past}
    w.put_secret(SecretView("new", "d", day(4), b"v"))  # nobody's namespace, as yet
    assert w.secrets_past("alice") == {("alice-2", "c"): past}
    w.set_namespace("new", "alice")
    assert w.secrets_past("alice") == {("alice-2", "c"): past, ("new", "d"): past}
    w.remove_namespace("alice-2")
    assert w.secrets_past("alice") == {("new", "d"): past}

    granted, shared = ("grants", 1), ("shares", 1)
    w.put_grant(GrantView("alice", "g1", "a", "carol", day(1)))
    w.put_grant(GrantView("alice", "g2", "a", "carol", day(2)))
    assert w.grants_past("alice") == {("alice", "g2"): granted}
    assert w.shares_past("carol") == {("alice", "g2"): shared}
    w.put_grant(GrantView("new", "g3", "d", "carol", day(3)))
    assert w.grants_past("alice") == {("alice", "g2"): granted, ("new", "g3"): granted}
    assert w.shares_past("carol") == {("alice", "g2"): shared, ("new", "g3"): shared}
    w.remove_grant("alice", "g2")
    assert w.grants_past("alice") == {("new", "g3"): granted}
    assert w.shares_past("carol") == {("new", "g3"): shared}
