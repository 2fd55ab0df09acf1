"""A namespace takes the shares its policy accepts, and grants say how many did not."""

from __future__ import annotations

from datetime import UTC, datetime

from usersecrets.rules.desired import GrantState, GrantView, SecretView, World, compute
from usersecrets.rules.naming import accepted_owners
from usersecrets.rules.status import grant_status
from usersecrets.settings import Settings


def test_the_policy_is_the_annotation_or_the_platforms_default() -> None:
    everyone, nobody = Settings(), Settings(accept_shares_from="")
    annotation = "usersecrets.io/accept-shares-from"
    assert accepted_owners(None, everyone) is None
    assert accepted_owners(None, nobody) == frozenset()
    assert accepted_owners({annotation: " alice, carol ,"}, everyone) == frozenset(
        {"alice", "carol"}
    )
    assert accepted_owners({annotation: "*"}, nobody) is None


def test_only_the_namespaces_that_accept_the_owner_get_a_copy() -> None:
    world = World(
        [SecretView("alice", "db", "2026-01-01T00:00:00Z", b"v")],
        [GrantView("alice", "g", "db", "bob")],
    )
    world.set_namespace("alice", "alice")
    world.set_namespace("bob", "bob", frozenset({"carol"}))
    world.set_namespace("bob-2", "bob")
    found = compute(world, "c")
    assert {ns for ns, _ in found.copies} == {"alice", "bob-2"}
    facts = found.grants["alice", "g"]
    assert (facts.state, facts.namespaces, facts.declined) == (GrantState.GRANTED, ("bob-2",), 1)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    message = grant_status(
        facts, generation=1, failures={}, no_owner_hint="", current=None, now=now
    )
    assert message["conditions"][0]["message"] == (
        "User 'bob' can use secret://c/alice/db in 1 namespace (1 namespace of theirs does not "
        "take shares from 'alice')"
    )
    world.set_namespace("bob-2", "bob", frozenset())
    none = compute(world, "c").grants["alice", "g"]
    status = grant_status(none, generation=1, failures={}, no_owner_hint="", current=None, now=now)
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "NotAccepted")
    assert condition["message"] == (
        "User 'bob' can use secret://c/alice/db in 0 namespaces (2 namespaces of theirs do not "
        "take shares from 'alice')"
    )


def test_a_namespace_that_names_the_owner_takes_her_shares() -> None:
    world = World(
        [SecretView("alice", "db", "2026-01-01T00:00:00Z", b"v")],
        [GrantView("alice", "g", "db", "bob")],
    )
    world.set_namespace("alice", "alice")
    world.set_namespace("bob", "bob", frozenset({"alice", "carol"}))
    facts = compute(world, "c").grants["alice", "g"]
    assert (facts.namespaces, facts.declined) == (("bob",), 0)
