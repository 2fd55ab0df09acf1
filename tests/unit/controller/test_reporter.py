"""Which statuses are written, which Events they post, and how they are sent."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, cast

from fakes import FakeApi, Request, refusal
from usersecrets.controller.cache import Tracked
from usersecrets.controller.reporter import Reporter, StatusWrite, changed, status_writes
from usersecrets.rules import conditions
from usersecrets.rules.desired import SecretView, World, compute

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def ready(ok: bool, reason: str) -> dict[str, Any]:
    return {"conditions": [conditions.ready(ok, reason, "m", 1, NOW).to_json()]}


def test_events_tell_of_problems_and_changes_only() -> None:
    working, missing = ready(True, "Materialized"), ready(False, "SourceMissing")
    assert changed({}, working) is None  # working from the start: the status says it
    first = changed({}, missing)
    assert first is not None
    assert first.reason == "SourceMissing"
    recovered = changed(missing, working)
    assert recovered is not None
    assert recovered.reason == "Materialized"
    assert changed(missing, missing) is None


def writes_for(current: dict[str, Any]) -> list[StatusWrite]:
    world = World([SecretView("alice-ns", "db", "", b"v")], [], {"alice-ns": "alice"})
    want = compute(world, "c")
    tracked = {("alice-ns", "db"): Tracked("uid-1", 3, "{}")}
    tracked[("alice-ns", "db")].status = current
    return status_writes(
        want, tracked, {}, collisions=[], refused={}, no_owner_hint="none", now=NOW
    )


def test_a_status_is_written_once_and_then_left_alone() -> None:
    [write] = writes_for({})
    assert write.plural == "usersecrets"
    assert write.ref == ("alice-ns", "db")
    assert write.status["uri"] == "secret://c/alice/db"
    assert write.status["observedGeneration"] == 3
    assert write.status["namespaces"] == ["alice-ns"]
    assert write.status["copies"] == 1
    assert write.changed is None  # it works from the start: no Event
    assert writes_for(write.status) == []


def test_a_status_is_patched_through_the_subresource_and_an_event_told() -> None:
    api = FakeApi()
    problem = conditions.ready(False, "SourceMissing", "gone", 3, NOW)
    write = StatusWrite(
        "usersecrets", ("alice-ns", "db"), Tracked("uid-1", 3, "{}"), {"uri": "u"}, problem
    )
    asyncio.run(Reporter(cast(Any, api.aio)).write([write]))
    assert api.sent() == [
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db/status"),
        ("POST", "/api/v1/namespaces/alice-ns/events"),
    ]
    assert api.requests[0].body == {"status": {"uri": "u"}}
    assert api.requests[0].content_type == "application/merge-patch+json"
    event = api.requests[1].body
    assert event["involvedObject"] == {
        "apiVersion": "usersecrets.io/v1alpha1",
        "kind": "UserSecret",
        "name": "db",
        "namespace": "alice-ns",
        "uid": "uid-1",
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "SourceMissing",
        "gone",
    )


def test_a_status_of_an_object_deleted_meanwhile_is_skipped() -> None:
    def answer(request: Request) -> Any:
        raise refusal(404, "not found")

    api = FakeApi(answer)
    problem = conditions.ready(False, "SecretNotFound", "m", 1, NOW)
    grant = StatusWrite("secretgrants", ("a", "g"), Tracked("u", 1, "{}"), {}, problem)
    asyncio.run(Reporter(cast(Any, api.aio)).write([grant]))
    assert api.sent() == [
        ("PATCH", "/apis/usersecrets.io/v1alpha1/namespaces/a/secretgrants/g/status")
    ]
