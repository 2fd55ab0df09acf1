"""Which leader handles whose secrets, when one leader is not enough (the `shards` setting).

A reconcile of (owner, key) reads only that owner's UserSecrets and grants, and writes only
that owner's copies, so owners are the unit of work. Each owner has a fixed slot, a hash of the
name; a shard is every slot equal to its index modulo the number of shards. The slot, not the
shard, is what the objects carry in `SLOT_LABEL`: changing the number of shards moves no label,
every leader only selects other slots.

Only UserSecrets and copies are labelled, and selected: grants are few, and every shard follows
all of them, so that a grantee's limit on shares received stays exact across owners.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usersecrets import SHARD_SLOTS

SLOT_LABEL = "usersecrets.io/slot"


def slot_of(owner: str) -> int:
    """The owner's slot: the same on every replica and every version (not Python's hash)."""
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big") % SHARD_SLOTS


def slot_label(owner: str) -> dict[str, str]:
    """The label that puts an object with its owner's shard."""
    return {SLOT_LABEL: str(slot_of(owner))}


@dataclass(frozen=True)
class Shard:
    """One of `count` shards; the only one when `count` is 1, which selects nothing."""

    index: int = 0
    count: int = 1

    def owns(self, owner: str) -> bool:
        return self.count == 1 or slot_of(owner) % self.count == self.index

    @property
    def selector(self) -> str | None:
        """The label selector of this shard's UserSecrets and copies; None: all of them."""
        if self.count == 1:
            return None
        slots = range(self.index, SHARD_SLOTS, self.count)
        return f"{SLOT_LABEL} in ({','.join(map(str, slots))})"

    def narrowing(self, selector: str | None = None) -> str | None:
        """`selector`, narrowed to this shard's slots."""
        return ",".join(s for s in (selector, self.selector) if s) or None

    def lease_name(self, base: str) -> str:
        """The one leader's Lease, or this shard's. The count is part of the name: once
        `shards` changes, the chart's RBAC no longer names the old Leases, so the leaders of
        the old count fail to renew and stop within a Lease's duration, rather than lead on
        beside the new ones for the whole rollout."""
        return base if self.count == 1 else f"{base}-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


#: The one shard of a leader that does all the work (the default).
UNSHARDED = Shard()


def all_shards(count: int) -> list[Shard]:
    return [Shard(index, count) for index in range(count)]


def slot_patch(labels: Mapping[str, Any] | None, owner: str) -> list[dict[str, Any]]:
    """The JSON patch that gives an object its owner's slot label (none if it has it)."""
    wanted = slot_label(owner)
    if labels is None:
        return [{"op": "add", "path": "/metadata/labels", "value": wanted}]
    if labels.get(SLOT_LABEL) == wanted[SLOT_LABEL]:
        return []
    pointer = SLOT_LABEL.replace("~", "~0").replace("/", "~1")  # RFC 6901
    return [{"op": "add", "path": f"/metadata/labels/{pointer}", "value": wanted[SLOT_LABEL]}]
