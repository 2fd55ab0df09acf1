"""Sessions: idle and absolute limits, a token's own expiry, capacity, CSRF digests."""

from __future__ import annotations

import base64
import json

from usersecrets.ui.sessions import Sessions, Signer, same, token_expiry
from usersecrets.user.identity import Identity

ALICE = Identity("alice")


def jwt(payload: object) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2ln"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock, idle: float = 60, limit: float = 3600, capacity: int = 10) -> Sessions:
    return Sessions(idle, limit, capacity, clock=clock, wall=lambda: 1_700_000_000.0)


def test_a_jwts_expiry_is_read_and_anything_else_has_none() -> None:
    assert token_expiry(jwt({"exp": 1_700_000_100, "sub": "alice"})) == 1_700_000_100.0
    assert token_expiry(jwt({"sub": "alice"})) is None
    assert token_expiry(jwt({"exp": True})) is None
    assert token_expiry("opaque-token") is None
    assert token_expiry("a.%%%.c") is None


def test_a_session_ends_when_unused_for_the_idle_time() -> None:
    clock = Clock()
    store = sessions(clock)
    session = store.create("token", ALICE)
    clock.now += 59
    assert store.get(session.id) is session  # use renews it
    clock.now += 59
    assert store.get(session.id) is session
    clock.now += 61
    assert store.get(session.id) is None
    assert len(store) == 0


def test_a_session_ends_at_the_absolute_limit_however_used() -> None:
    clock = Clock()
    store = sessions(clock, idle=60, limit=100)
    session = store.create("token", ALICE)
    for _ in range(3):
        clock.now += 30
        assert store.get(session.id) is session
    clock.now += 10
    assert store.get(session.id) is None


def test_a_session_ends_when_its_token_does() -> None:
    clock = Clock()
    store = sessions(clock)
    session = store.create(jwt({"exp": 1_700_000_030}), ALICE)
    clock.now += 29
    assert store.get(session.id) is session
    clock.now += 1
    assert store.get(session.id) is None


def test_ids_are_unguessable_unique_and_dropped_on_sign_out() -> None:
    store = sessions(Clock())
    first, second = store.create("t", ALICE), store.create("t", ALICE)
    assert first.id != second.id
    assert first.csrf != second.csrf
    assert len(first.id) >= 43  # 32 random bytes
    store.drop(first.id)
    assert store.get(first.id) is None
    assert store.get(second.id) is second
    assert store.get(None) is None
    assert store.get("") is None


def test_the_oldest_sessions_go_past_capacity() -> None:
    store = sessions(Clock(), capacity=2)
    made = [store.create("t", ALICE) for _ in range(3)]
    assert [store.get(s.id) is not None for s in made] == [False, True, True]


def test_csrf_digests_are_keyed_and_compared_in_constant_time() -> None:
    signer, other = Signer(b"k" * 32), Signer(b"j" * 32)
    assert signer.sign("csrf", "abc") == signer.sign("csrf", "abc")
    assert signer.sign("csrf", "abc") != other.sign("csrf", "abc")
    assert signer.sign("csrf", "abc") != signer.sign("csrf", "abd")
    assert same("x", "x")
    assert not same("x", "y")
    assert not same("", "")
    assert not same(None, "x")
