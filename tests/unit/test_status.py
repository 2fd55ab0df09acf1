"""The statuses users read in `kubectl get` and `describe`, from the desired facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from usersecrets.desired import GrantFacts, GrantState, SecretFacts, SecretState
from usersecrets.resources import SecretKeySelector
from usersecrets.status import grant_status, same, secret_status

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
URI = "secret://c/alice/db"
HINT = "a system namespace"


def facts(state: SecretState, namespaces: tuple[str, ...] = ()) -> SecretFacts:
    return SecretFacts("alice", "db", "alice", URI, state, namespaces, conflict_with="alice-old")


def ready(status: dict[str, Any]) -> dict[str, Any]:
    (condition,) = status["conditions"]
    return dict(condition)


def build(f: SecretFacts, collisions: list[str] | None = None) -> dict[str, Any]:
    return secret_status(
        f,
        generation=3,
        value_from=SecretKeySelector(name="src", key="v"),
        collisions=collisions or [],
        no_owner_hint=HINT,
        current=None,
        now=NOW,
    )


def test_materialized() -> None:
    status = build(facts(SecretState.MATERIALIZED, ("alice", "bob")))
    assert status["uri"] == URI
    assert status["observedGeneration"] == 3
    assert status["namespaces"] == ["alice", "bob"]
    assert status["copies"] == 2
    condition = ready(status)
    assert condition["status"] == "True"
    assert condition["reason"] == "Materialized"
    assert condition["message"] == "Usable in 2 namespaces: alice, bob"


def test_each_reason_has_a_message_a_person_can_act_on() -> None:
    missing = ready(build(facts(SecretState.SOURCE_MISSING)))
    assert missing["message"] == (
        "The valueFrom Secret 'src' with key 'v' does not exist in this namespace"
    )
    conflict = ready(build(facts(SecretState.CONFLICT)))
    assert conflict["reason"] == "Conflict"
    assert "'alice-old' already defines secret://c/alice/db" in str(conflict["message"])
    owner = ready(build(facts(SecretState.NO_OWNER)))
    assert owner["message"] == "Namespace 'alice' belongs to no user (a system namespace)"
    assert {c["status"] for c in (missing, conflict, owner)} == {"False"}


def test_a_collision_leaves_out_that_namespace_and_is_not_ready() -> None:
    status = build(facts(SecretState.MATERIALIZED, ("alice", "bob")), collisions=["bob"])
    assert status["namespaces"] == ["alice"]
    condition = ready(status)
    assert condition["reason"] == "NameCollision"
    assert condition["status"] == "False"
    assert "(bob)" in str(condition["message"])


def test_transition_time_moves_only_when_the_status_does() -> None:
    first = build(facts(SecretState.MATERIALIZED, ("alice",)))
    later = secret_status(
        facts(SecretState.MATERIALIZED, ("alice", "bob")),
        generation=3,
        value_from=None,
        collisions=[],
        no_owner_hint=HINT,
        current=first,
        now=NOW + timedelta(hours=1),
    )
    assert ready(later)["lastTransitionTime"] == ready(first)["lastTransitionTime"]
    assert not same(first, later)
    assert same(later, later)


def test_grant_statuses() -> None:
    def grant(state: GrantState, namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
        f = GrantFacts("alice", "g", "alice", "bob", "db", URI, state, namespaces)
        status = grant_status(f, generation=1, no_owner_hint=HINT, current=None, now=NOW)
        return ready(status)

    assert grant(GrantState.GRANTED, ("bob",))["message"] == (
        "User 'bob' can use secret://c/alice/db in 1 namespace: bob"
    )
    assert "has no namespace yet" in str(grant(GrantState.GRANTED)["message"])
    assert grant(GrantState.SECRET_NOT_FOUND)["message"] == "No UserSecret 'db' in this namespace"
    assert grant(GrantState.SECRET_NOT_READY)["status"] == "False"
