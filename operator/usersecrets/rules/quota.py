"""What copies pushed by others may use of a namespace's Secret quota: never its last slots.

Copies a grant pushes into bob's namespace count against his ResourceQuota like his own
Secrets. Shares he did not ask for must not take away his room for his own objects, so a
reserve (a share of the quota, at least one) is kept free of them; the copies it holds back
are told in the statuses, and made when there is room again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from usersecrets.rules import naming
from usersecrets.rules.desired import DesiredCopy

#: The quota keys that count Secrets.
SECRET_COUNTS = ("count/secrets", "secrets")


@dataclass(frozen=True)
class Room:
    """What one namespace's quotas on Secrets leave: the tightest of them."""

    hard: int
    used: int

    def reserve(self, percent: int) -> int:
        return max(1, self.hard * percent // 100)

    def for_others(self, percent: int, margin: int = 0) -> int:
        """Copies of others' secrets that may still be made here, `margin` more kept free."""
        return self.hard - self.used - self.reserve(percent) - margin


def _quantity(value: object) -> int | None:
    """A count as a quota writes it ("10", 10, "1k"); None when it cannot be read."""
    text = str(value).strip()
    factor = 1
    for suffix, multiple in (("k", 1000), ("M", 1000**2), ("G", 1000**3)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], multiple
    try:
        return int(text) * factor
    except ValueError:
        return None


def room_of(quota: Mapping[str, object]) -> Room | None:
    """The room a ResourceQuota leaves for Secrets, if it counts them."""
    spec, status = quota.get("spec") or {}, quota.get("status") or {}
    hard_of = (spec if isinstance(spec, dict) else {}).get("hard") or {}
    used_of = (status if isinstance(status, dict) else {}).get("used") or {}
    rooms = []
    for key in SECRET_COUNTS:
        hard = _quantity(hard_of[key]) if key in hard_of else None
        if hard is not None:
            # Not counted yet (a new quota): as good as full until it is.
            used = _quantity(used_of[key]) if key in used_of else hard
            rooms.append(Room(hard, hard if used is None else used))
    return min(rooms, key=lambda r: r.hard - r.used, default=None)


def hold_back(
    creates: Iterable[DesiredCopy], rooms: Mapping[str, Room], percent: int, margin: int = 0
) -> tuple[list[DesiredCopy], dict[str, str]]:
    """The creates that may be made, and, per namespace, why the others were held back: a
    copy an owner makes for herself is always made; a shared one only within the room her
    grantee's quota leaves beyond its reserve.

    `margin`: with N shards, up to N-1 other leaders may each be making one copy in the same
    namespace, each on the quota as it read it: keeping N-1 more slots free keeps the reserve
    whatever they do."""
    made: list[DesiredCopy] = []
    held: dict[str, str] = {}
    planned: dict[str, int] = {}
    for copy in creates:
        room = rooms.get(copy.namespace)
        if copy.reason != naming.REASON_GRANT or room is None:
            made.append(copy)
            continue
        planned[copy.namespace] = planned.get(copy.namespace, 0) + 1
        if planned[copy.namespace] <= room.for_others(percent, margin):
            made.append(copy)
        else:
            reserve = room.reserve(percent) + margin
            slots = "slot" if reserve == 1 else "slots"
            held[copy.namespace] = (
                f"its Secret quota ({room.used} of {room.hard} used) keeps its last {reserve} "
                f"{slots} for the user's own Secrets"
            )
    return made, held
