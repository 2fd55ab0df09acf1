"""Copies pushed by others never take a namespace's last Secret slots."""

from __future__ import annotations

from usersecrets.rules.desired import DesiredCopy
from usersecrets.rules.quota import Room, hold_back, room_of


def copy(namespace: str, reason: str, key: str = "k") -> DesiredCopy:
    return DesiredCopy(namespace, f"usec-{key}", "alice", key, reason, {}, {}, b"v")


def test_a_quota_counting_secrets_leaves_a_room() -> None:
    quota = {
        "spec": {"hard": {"count/secrets": "10", "pods": "5"}},
        "status": {"used": {"count/secrets": "4"}},
    }
    assert room_of(quota) == Room(hard=10, used=4)
    assert room_of({"spec": {"hard": {"secrets": "1k"}}, "status": {"used": {"secrets": "0"}}}) == (
        Room(hard=1000, used=0)
    )
    assert room_of({"spec": {"hard": {"secrets": "5"}}}) == Room(hard=5, used=5)  # not counted yet
    assert room_of({"spec": {"hard": {"pods": "5"}}}) is None
    both = {
        "spec": {"hard": {"secrets": "10", "count/secrets": "6"}},
        "status": {"used": {"secrets": "1", "count/secrets": "1"}},
    }
    assert room_of(both) == Room(hard=6, used=1)  # the tighter one


def test_the_reserve_is_a_share_of_the_quota_and_at_least_one() -> None:
    assert Room(3, 0).reserve(10) == 1
    assert Room(100, 0).reserve(10) == 10
    assert Room(100, 0).reserve(0) == 1
    assert Room(10, 4).for_others(10) == 5


def test_shared_copies_stop_short_of_the_reserve_and_own_copies_never_do() -> None:
    rooms = {"bob": Room(hard=3, used=0)}
    creates = [copy("bob", "grant", f"k{i}") for i in range(3)] + [copy("bob", "owner", "mine")]
    made, held = hold_back(creates, rooms, 10)
    assert [c.key for c in made] == ["k0", "k1", "mine"]
    assert held == {
        "bob": "its Secret quota (0 of 3 used) keeps its last 1 slot for the user's own Secrets"
    }
    made, held = hold_back([copy("carol", "grant")], rooms, 10)
    assert (len(made), held) == (1, {})  # no quota there
    made, held = hold_back([copy("bob", "grant")], {"bob": Room(hard=40, used=38)}, 10)
    assert held == {
        "bob": "its Secret quota (38 of 40 used) keeps its last 4 slots for the user's own Secrets"
    }


def test_quantities_with_a_suffix() -> None:
    def hard(value: str) -> int | None:
        room = room_of({"spec": {"hard": {"secrets": value}}, "status": {"used": {"secrets": "0"}}})
        return None if room is None else room.hard

    assert [hard(v) for v in ("10k", "2M", "3G", "7", "x")] == [
        10_000,
        2_000_000,
        3_000_000_000,
        7,
        None,
    ]


def test_unreadable_quotas_leave_no_room_or_a_full_one() -> None:
    assert room_of({"spec": "x", "status": ["x"]}) is None
    unreadable = {"spec": {"hard": {"secrets": "5"}}, "status": {"used": {"secrets": "lots"}}}
    assert room_of(unreadable) == Room(hard=5, used=5)
    both = {
        "spec": {"hard": {"secrets": "10", "count/secrets": "6"}},
        "status": {"used": {"secrets": "8", "count/secrets": "1"}},
    }
    assert room_of(both) == Room(hard=10, used=8)  # 2 left, fewer than 5


def test_a_copy_made_for_its_owner_holds_up_no_shared_one() -> None:
    creates = [copy("bob", "owner", "mine"), copy("carol", "grant", "x"), copy("bob", "grant")]
    made, held = hold_back(creates, {"bob": Room(hard=3, used=0)}, 10)
    assert [(c.namespace, c.key) for c in made] == [("bob", "mine"), ("carol", "x"), ("bob", "k")]
    assert held == {}


def test_with_three_shards_two_more_slots_stay_free_for_the_other_leaders_at_that_moment() -> None:
    """Each of the other two leaders may make one copy there on the same reading of the quota:
    at worst 8 + 1 + 2 = 11 of 12, the reserve's one slot still free."""
    rooms = {"bob": Room(hard=12, used=8)}
    creates = [copy("bob", "grant", f"k{i}") for i in range(3)]
    made, held = hold_back(creates, rooms, 10, margin=2)
    assert [c.key for c in made] == ["k0"]
    assert held == {
        "bob": "its Secret quota (8 of 12 used) keeps its last 3 slots for the user's own Secrets"
    }
