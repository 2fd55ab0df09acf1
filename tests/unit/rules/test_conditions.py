"""lastTransitionTime moves only with the status; other conditions are left alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from usersecrets.rules import conditions

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_ready_condition_shape() -> None:
    cond = conditions.ready(True, "Materialized", "3 namespaces", 7, T0.replace(microsecond=999))
    assert cond.to_json() == {
        "type": "Ready",
        "status": "True",
        "reason": "Materialized",
        "message": "3 namespaces",
        "observedGeneration": 7,
        "lastTransitionTime": "2024-05-01T12:00:00Z",
    }
    assert conditions.ready(False, "Conflict", "", None, T0).status == "False"
    assert conditions.ready("Unknown", "Pending", "", None, T0).status == "Unknown"


def test_now_is_normalized_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    cond = conditions.ready(True, "Ok", "", 1, datetime(2024, 5, 1, 14, 0, tzinfo=plus2))
    assert cond.to_json()["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    naive = conditions.ready(True, "Ok", "", 1, datetime(2024, 5, 1, 12, 0))
    assert naive.to_json()["lastTransitionTime"] == "2024-05-01T12:00:00Z"


@pytest.mark.parametrize("reason", ["not camel", "", "1Starts", "Has-Dash", "EndsWith,"])
def test_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        conditions.ready(True, reason, "", 1, T0)


def test_long_messages_are_truncated_to_the_api_limit() -> None:
    cond = conditions.ready(False, "Failed", "x" * 40000, 1, T0)
    assert len(cond.message) == 32768
    assert cond.message.endswith("...")


def test_merge_into_empty() -> None:
    new = conditions.ready(True, "Materialized", "ok", 1, T0)
    assert conditions.merge(None, new) == [new.to_json()]
    assert conditions.merge([], new) == [new.to_json()]


def test_same_status_keeps_transition_time_but_updates_the_rest() -> None:
    first = conditions.merge(None, conditions.ready(True, "Materialized", "1 ns", 1, T0))
    second = conditions.merge(first, conditions.ready(True, "Materialized", "2 ns", 2, T1))
    assert second == [
        {**first[0], "message": "2 ns", "observedGeneration": 2},
    ]


def test_status_change_moves_transition_time() -> None:
    first = conditions.merge(None, conditions.ready(True, "Materialized", "ok", 1, T0))
    second = conditions.merge(first, conditions.ready(False, "SourceMissing", "gone", 1, T1))
    assert second[0]["lastTransitionTime"] == "2024-05-01T12:05:00Z"
    assert second[0]["status"] == "False"


def test_repeated_merge_is_a_fixed_point() -> None:
    once = conditions.merge(None, conditions.ready(True, "Materialized", "ok", 1, T0))
    twice = conditions.merge(once, conditions.ready(True, "Materialized", "ok", 1, T1))
    assert once == twice


def test_other_conditions_are_kept_in_order() -> None:
    other = {"type": "Custom", "status": "True", "anything": "kept"}
    existing = [
        other,
        {
            "type": "Ready",
            "status": "False",
            "reason": "Old",
            "message": "",
            "lastTransitionTime": "2020-01-01T00:00:00Z",
        },
    ]
    merged = conditions.merge(existing, conditions.ready(True, "Materialized", "ok", 1, T0))
    assert merged[0] == other
    assert merged[1]["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_unreadable_or_duplicate_entries_are_replaced() -> None:
    existing = [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "True"}]
    merged = conditions.merge(existing, conditions.ready(True, "Materialized", "ok", 1, T0))
    assert merged == [conditions.ready(True, "Materialized", "ok", 1, T0).to_json()]


def test_find() -> None:
    merged = conditions.merge(None, conditions.ready(True, "Materialized", "ok", 1, T0))
    found = conditions.find(merged)
    assert found is not None
    assert found.status == "True"
    assert conditions.find([{"type": "Ready"}]) is None
    assert conditions.find(None, "Other") is None


def test_the_time_written_does_not_depend_on_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        naive = conditions.ready(True, "Ok", "", 1, datetime(2024, 5, 1, 12, 0))
        aware = conditions.ready(True, "Ok", "", 1, datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert naive.to_json()["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert aware.to_json()["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_a_message_at_the_api_limit_is_kept_whole() -> None:
    assert conditions.ready(False, "Failed", "x" * 32768, 1, T0).message == "x" * 32768


def test_merge_keeps_every_other_condition_around_the_replaced_one() -> None:
    before = {"type": "Before", "status": "True"}
    after = conditions.condition("After", True, "Fine", "", 1, T0)
    old = {
        "type": "Ready",
        "status": "True",
        "reason": "Old",
        "message": "",
        "lastTransitionTime": "2020-01-01T00:00:00Z",
    }
    merged = conditions.merge(
        [before, old, {**old, "reason": "Twice"}, after],
        conditions.ready(True, "Materialized", "ok", 1, T0),
    )
    assert [(c["type"], c.get("reason")) for c in merged] == [
        ("Before", None),
        ("Ready", "Materialized"),
        ("After", "Fine"),
    ]
    assert merged[1]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert merged[2] == after.to_json()
    again = conditions.merge(
        [conditions.ready(True, "A", "", 1, T0)], conditions.ready(True, "B", "", 2, T1)
    )
    assert again == [{**conditions.ready(True, "B", "", 2, T0).to_json()}]
