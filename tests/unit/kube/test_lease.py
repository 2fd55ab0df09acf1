"""When a replica may take the Lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from usersecrets.kube.lease import LeaseState, can_take

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_free_or_ours() -> None:
    assert can_take(LeaseState(None, None, 15), "me", NOW)
    assert can_take(LeaseState("", NOW, 15), "me", NOW)
    assert can_take(LeaseState("me", NOW, 15), "me", NOW)


def test_another_holder_until_it_stops_renewing() -> None:
    assert not can_take(LeaseState("other", NOW - timedelta(seconds=14), 15), "me", NOW)
    assert can_take(LeaseState("other", NOW - timedelta(seconds=15), 15), "me", NOW)
