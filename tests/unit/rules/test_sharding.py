"""Which shard handles whose secrets: stable slots, selectors, Lease names, the webhook's patch."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from usersecrets.rules.sharding import UNSHARDED, Shard, all_shards, slot_of, slot_patch
from usersecrets.settings import Settings


def test_an_owners_slot_is_a_stable_hash_of_the_name() -> None:
    # sha256("alice") begins 2bd806c9: 0x2bd806c9 % 64 == 9.
    assert [slot_of(owner) for owner in ("alice", "bob", "carol", "")] == [9, 24, 7, 2]


def test_one_shard_owns_everyone_and_selects_nothing() -> None:
    assert [UNSHARDED.owns("alice"), UNSHARDED.owns("bob")] == [True, True]
    assert UNSHARDED.narrowing() is None
    assert UNSHARDED.narrowing("app.kubernetes.io/managed-by=usersecrets") == (
        "app.kubernetes.io/managed-by=usersecrets"
    )
    assert UNSHARDED.lease_name("usersecrets-leader") == "usersecrets-leader"


def test_each_owner_is_in_exactly_one_of_the_shards() -> None:
    owners = [f"user-{i}" for i in range(1000)]
    for count in (2, 3, 7, 64):
        shards = all_shards(count)
        assert all(sum(s.owns(owner) for s in shards) == 1 for owner in owners)
        # and the work is shared: no shard has less than half its share
        assert min(sum(map(s.owns, owners)) for s in shards) > 1000 / count / 2


def test_a_shard_selects_its_slots_and_leads_through_a_lease_of_its_own() -> None:
    shard = Shard(1, 4)
    assert [shard.owns("alice"), shard.owns("bob")] == [True, False]  # slots 9 and 24
    assert shard.narrowing("app.kubernetes.io/managed-by=usersecrets") == (
        "app.kubernetes.io/managed-by=usersecrets,usersecrets.io/slot in "
        "(1,5,9,13,17,21,25,29,33,37,41,45,49,53,57,61)"
    )
    assert shard.lease_name("usersecrets-leader") == "usersecrets-leader-1-of-4"
    assert str(shard) == "shard 1 of 4"


@pytest.mark.parametrize(
    ("labels", "patch"),
    [
        (None, [{"op": "add", "path": "/metadata/labels", "value": {"usersecrets.io/slot": "9"}}]),
        (
            {"team": "ml"},
            [{"op": "add", "path": "/metadata/labels/usersecrets.io~1slot", "value": "9"}],
        ),
        (
            {"usersecrets.io/slot": "x"},
            [{"op": "add", "path": "/metadata/labels/usersecrets.io~1slot", "value": "9"}],
        ),
        ({"usersecrets.io/slot": "9"}, []),
    ],
)
def test_the_webhook_labels_a_usersecret_with_its_owners_slot(
    labels: dict[str, str] | None, patch: list[dict[str, object]]
) -> None:
    assert slot_patch(labels, "alice") == patch


def test_shards_without_leases_or_past_the_slots_are_refused() -> None:
    with pytest.raises(ValidationError, match="shards > 1 needs leader_election"):
        Settings(shards=2, leader_election=False)
    with pytest.raises(ValidationError, match="less than or equal to 64"):
        Settings(shards=65)
    assert Settings(shards=64).shards == 64
