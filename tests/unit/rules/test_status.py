"""The statuses users read in `kubectl get` and `describe`, from the desired facts."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from usersecrets.api.resources import SecretKeySelector
from usersecrets.rules.desired import GrantFacts, GrantState, SecretFacts, SecretState
from usersecrets.rules.status import grant_status, same, secret_status, write_failure

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
URI = "secret://c/alice/db"
HINT = "a system namespace"


def facts(
    state: SecretState, namespaces: tuple[str, ...] = (), owned: tuple[str, ...] = ("alice",)
) -> SecretFacts:
    own = tuple(ns for ns in namespaces if ns in owned)
    return SecretFacts(
        "alice", "db", "alice", URI, state, namespaces, own, conflict_with="alice-old"
    )


def ready(status: dict[str, Any]) -> dict[str, Any]:
    (condition,) = status["conditions"]
    return dict(condition)


def build(
    f: SecretFacts, collisions: list[str] | None = None, failures: dict[str, str] | None = None
) -> dict[str, Any]:
    return secret_status(
        f,
        generation=3,
        value_from=SecretKeySelector(name="src", key="v"),
        collisions=collisions or [],
        failures=failures or {},
        no_owner_hint=HINT,
        current=None,
        now=NOW,
    )


def test_materialized() -> None:
    status = build(facts(SecretState.MATERIALIZED, ("alice", "bob")))
    assert status["uri"] == URI
    assert status["observedGeneration"] == 3
    assert status["namespaces"] == ["alice"]  # bob's namespace is not alice's to know
    assert status["copies"] == 2
    condition = ready(status)
    assert condition["status"] == "True"
    assert condition["reason"] == "Materialized"
    assert condition["message"] == (
        "Usable in 2 namespaces: alice and 1 namespace of users it is shared with"
    )


def test_only_the_owners_namespaces_are_named_and_listed_up_to_ten() -> None:
    own = tuple(f"alice-{i:02}" for i in range(12))
    status = build(facts(SecretState.MATERIALIZED, (*own, "b1", "b2"), owned=own))
    assert status["namespaces"] == list(own)
    assert status["copies"] == 14
    assert ready(status)["message"] == (
        "Usable in 14 namespaces: alice-00, alice-01, alice-02, alice-03, alice-04, alice-05, "
        "alice-06, alice-07, alice-08, alice-09 and 2 more and 2 namespaces of users it is "
        "shared with"
    )
    eleven = build(facts(SecretState.MATERIALIZED, own[:11], owned=own))
    assert ready(eleven)["message"] == (
        "Usable in 11 namespaces: alice-00, alice-01, alice-02, alice-03, alice-04, alice-05, "
        "alice-06, alice-07, alice-08, alice-09 and 1 more"
    )
    ten = build(facts(SecretState.MATERIALIZED, own[:10], owned=own))
    assert ready(ten)["message"] == (
        "Usable in 10 namespaces: alice-00, alice-01, alice-02, alice-03, alice-04, alice-05, "
        "alice-06, alice-07, alice-08, alice-09"
    )


def test_refusals_are_listed_up_to_ten() -> None:
    own = tuple(f"alice-{i:02}" for i in range(11))

    def failed(count: int) -> str:
        failures = dict.fromkeys(own[:count], "HTTP 403")
        return str(
            ready(build(facts(SecretState.MATERIALIZED, own, own), failures=failures))["message"]
        )

    listed = "; ".join(f"alice-{i:02}: HTTP 403" for i in range(10))
    assert failed(10) == (
        f"The copy could not be written in 10 namespaces ({listed}). Usable in 1 namespace."
    )
    assert failed(11) == (
        f"The copy could not be written in 11 namespaces ({listed}; and 1 more). "
        "Usable in 0 namespaces."
    )


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
    status = build(
        facts(SecretState.MATERIALIZED, ("alice", "alice-2", "bob"), owned=("alice", "alice-2")),
        collisions=["alice-2", "bob"],
    )
    assert status["namespaces"] == ["alice"]
    assert status["copies"] == 1
    condition = ready(status)
    assert condition["reason"] == "NameCollision"
    assert condition["status"] == "False"
    assert condition["message"] == (
        "A Secret not managed by usersecrets already has this secret's copy name in "
        "2 namespaces (alice-2 and 1 namespace of users it is shared with); it was left alone. "
        "Usable in 1 namespace."
    )


def test_transition_time_moves_only_when_the_status_does() -> None:
    first = build(facts(SecretState.MATERIALIZED, ("alice",)))
    later = secret_status(
        facts(SecretState.MATERIALIZED, ("alice", "bob")),
        generation=3,
        value_from=None,
        collisions=[],
        failures={},
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
        status = grant_status(
            f, generation=1, failures={}, no_owner_hint=HINT, current=None, now=NOW
        )
        return ready(status)

    assert grant(GrantState.GRANTED, ("bob",))["message"] == (
        "User 'bob' can use secret://c/alice/db in 1 namespace"
    )
    assert grant(GrantState.GRANTED, ("bob", "bob-gpu"))["message"] == (
        "User 'bob' can use secret://c/alice/db in 2 namespaces"
    )
    assert "has no namespace yet" in str(grant(GrantState.GRANTED)["message"])
    assert grant(GrantState.SECRET_NOT_FOUND)["message"] == "No UserSecret 'db' in this namespace"
    assert grant(GrantState.SECRET_NOT_READY)["status"] == "False"


QUOTA = "HTTP 403 Forbidden: exceeded quota: q, requested: count/secrets=1"


def test_a_refused_copy_is_told_with_what_the_apiserver_said() -> None:
    status = build(facts(SecretState.MATERIALIZED, ("alice", "bob")), failures={"bob": QUOTA})
    assert status["namespaces"] == ["alice"]
    assert status["copies"] == 1
    condition = ready(status)
    assert condition["status"] == "False"
    assert condition["reason"] == "CopyFailed"
    assert condition["message"] == (
        "The copy could not be written in 1 namespace (1 namespace of users it is shared with: "
        f"{QUOTA}). Usable in 1 namespace."
    )
    own = ready(build(facts(SecretState.MATERIALIZED, ("alice", "bob")), failures={"alice": QUOTA}))
    assert own["message"] == (
        f"The copy could not be written in 1 namespace (alice: {QUOTA}). Usable in 1 namespace."
    )
    both = ready(
        build(
            facts(SecretState.MATERIALIZED, ("alice", "bob", "carol")),
            collisions=["carol"],
            failures={"bob": QUOTA},
        )
    )
    assert both["reason"] == "NameCollision"
    assert both["message"] == (
        "A Secret not managed by usersecrets already has this secret's copy name in 1 namespace "
        "(1 namespace of users it is shared with); it was left alone. The copy could not be "
        f"written in 1 namespace (1 namespace of users it is shared with: {QUOTA}). "
        "Usable in 1 namespace."
    )


def test_a_grant_whose_copy_was_refused_says_so() -> None:
    f = GrantFacts("alice", "g", "alice", "bob", "db", URI, GrantState.GRANTED, ("b1", "b2"))
    status = grant_status(
        f, generation=1, failures={"b2": QUOTA}, no_owner_hint=HINT, current=None, now=NOW
    )
    assert "namespaces" not in status  # the grantee's namespace names are not alice's to know
    assert status["copies"] == 1
    condition = ready(status)
    assert (condition["status"], condition["reason"]) == ("False", "CopyFailed")
    assert condition["message"] == (
        "The copy could not be written in 1 namespace (1 namespace of users it is shared with: "
        f"{QUOTA}). User 'bob' can use secret://c/alice/db in 1 namespace."
    )


def test_a_refusal_is_told_only_in_shapes_that_cannot_quote_the_secret() -> None:
    def said(message: str) -> str:
        return write_failure(403, "Forbidden", json.dumps({"kind": "Status", "message": message}))

    assert said('secrets "x" is forbidden: exceeded quota: q, requested: secrets=1') == (
        "HTTP 403 Forbidden: exceeded quota: q, requested: secrets=1"
    )
    assert said('admission webhook "p.example.com" denied the request: value=hunter2') == (
        'HTTP 403 Forbidden: admission webhook "p.example.com" denied the request'
    )
    assert said(
        "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: data.value=hunter2"
    ) == ("HTTP 403 Forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request")
    assert said("denied by a policy: data.value=hunter2") == "HTTP 403 Forbidden"
    assert write_failure(503, None, None) == "HTTP 503"
    assert write_failure(500, "Oops", "<html>") == "HTTP 500 Oops"
    long = write_failure(403, "Forbidden", '{"message": "exceeded quota: ' + "q" * 500 + '"}')
    assert len(long) == len("HTTP 403 Forbidden: ") + 200


def test_a_refusal_is_scrubbed_of_the_value_before_it_is_cut_short() -> None:
    value = b"hunter2-hunter2-hunter2"
    echoed = "exceeded quota: " + "q" * 180 + " " + base64.b64encode(value).decode()
    said = write_failure(403, "Forbidden", json.dumps({"message": echoed}), [value])
    assert said == "HTTP 403 Forbidden: exceeded quota: " + "q" * 180 + " <redacted>"[:4]
    assert "aHVu" not in said


def grant_ready(
    facts: GrantFacts, current: dict[str, Any] | None = None, now: datetime = NOW
) -> dict[str, Any]:
    status = grant_status(
        facts, generation=4, failures={}, no_owner_hint=HINT, current=current, now=now
    )
    assert status["uri"] == facts.uri
    assert status["observedGeneration"] == 4
    return ready(status)


def grant_facts(state: GrantState, **more: Any) -> GrantFacts:
    return GrantFacts("alice", "g", "alice", "bob", "db", URI, state, **more)


def test_every_grant_state_says_what_it_is() -> None:
    def said(facts: GrantFacts) -> tuple[str, str, str, int]:
        condition = grant_ready(facts)
        return (
            condition["status"],
            condition["reason"],
            condition["message"],
            condition["observedGeneration"],
        )

    assert said(grant_facts(GrantState.GRANTED)) == (
        "True",
        "Granted",
        "User 'bob' has no namespace yet; each one they get will have secret://c/alice/db",
        4,
    )
    assert said(grant_facts(GrantState.GRANTED, namespaces=("b1",))) == (
        "True",
        "Granted",
        "User 'bob' can use secret://c/alice/db in 1 namespace",
        4,
    )
    assert said(grant_facts(GrantState.SECRET_NOT_FOUND)) == (
        "False",
        "SecretNotFound",
        "No UserSecret 'db' in this namespace",
        4,
    )
    assert said(grant_facts(GrantState.SECRET_NOT_READY)) == (
        "False",
        "SecretNotReady",
        "UserSecret 'db' has no value yet (see its status)",
        4,
    )
    assert said(grant_facts(GrantState.NO_OWNER)) == (
        "False",
        "NoOwner",
        "Namespace 'alice' belongs to no user (a system namespace)",
        4,
    )
    assert said(grant_facts(GrantState.LIMIT_EXCEEDED, limit=("grants", 5))) == (
        "False",
        "LimitExceeded",
        "User 'alice' has made more than the 5 grants a user may make: the newest have no "
        "effect, and this is one of them",
        4,
    )
    assert said(grant_facts(GrantState.LIMIT_EXCEEDED, limit=("shares", 5))) == (
        "False",
        "LimitExceeded",
        "User 'bob' has more than the 5 shares a user may receive: the newest have no effect, "
        "and this is one of them",
        4,
    )


def test_a_grant_status_keeps_its_transition_time_while_it_holds() -> None:
    first = grant_status(
        grant_facts(GrantState.GRANTED, namespaces=("b1",)),
        generation=1,
        failures={},
        no_owner_hint=HINT,
        current=None,
        now=NOW,
    )
    later = grant_ready(
        grant_facts(GrantState.GRANTED, namespaces=("b1", "b2")),
        current=first,
        now=NOW + timedelta(hours=1),
    )
    assert later["lastTransitionTime"] == "2026-11-28T12:00:00Z"


def test_every_secret_state_says_what_it_is() -> None:
    def said(f: SecretFacts, value_from: SecretKeySelector | None = None) -> tuple[str, ...]:
        status = secret_status(
            f,
            generation=3,
            value_from=value_from,
            collisions=[],
            failures={},
            no_owner_hint=HINT,
            current=None,
            now=NOW,
        )
        condition = ready(status)
        assert condition["observedGeneration"] == 3
        return condition["status"], condition["reason"], condition["message"]

    assert said(facts(SecretState.SOURCE_MISSING)) == (
        "False",
        "SourceMissing",
        "The valueFrom Secret source does not exist in this namespace",
    )
    refused = replace(
        facts(SecretState.SOURCE_REFUSED), refused_type="kubernetes.io/service-account-token"
    )
    tail = (
        "is of type kubernetes.io/service-account-token, a credential of the cluster itself: "
        "it is not copied (the platform may allow the type with the chart's "
        "valueFrom.refusedTypes)"
    )
    assert said(refused, SecretKeySelector(name="sa", key="token")) == (
        "False",
        "SourceRefused",
        f"The valueFrom Secret 'sa' {tail}",
    )
    assert said(refused) == ("False", "SourceRefused", f"The valueFrom Secret source {tail}")
    past = replace(facts(SecretState.LIMIT_EXCEEDED), limit=("secrets", 2))
    assert said(past) == (
        "False",
        "LimitExceeded",
        "User 'alice' has more than the 2 UserSecrets a user may have: the newest are not "
        "copied, and this is one of them",
    )


def test_refusals_elsewhere_are_counted_once_per_reason() -> None:
    f = facts(SecretState.MATERIALIZED, ("alice", "b1", "b2", "c1"))
    failures = {"b1": "HTTP 403", "b2": "HTTP 403", "c1": "HTTP 500"}
    assert ready(build(f, failures=failures))["message"] == (
        "The copy could not be written in 3 namespaces (2 namespaces of users it is shared "
        "with: HTTP 403; 1 namespace of users it is shared with: HTTP 500). Usable in 1 "
        "namespace."
    )
