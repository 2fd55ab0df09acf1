"""Sign-in sessions kept in the UI process's memory, and one API client per user token.

The token never leaves the server: the browser holds only a random session id in an HttpOnly
cookie. A session ends when signed out, when unused for the idle time, at the absolute
limit, or when the token itself expires (a JWT's `exp`, read, not trusted: the apiserver
still checks every call).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from usersecrets.kube.client import KubeApi
from usersecrets.user.identity import Identity


def token_expiry(token: str) -> float | None:
    """The `exp` (seconds since the epoch) of a JWT, without checking it; None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    id: str
    token: str
    identity: Identity
    csrf: str
    last_seen: float
    ends: float


class Sessions:
    """Sessions by id, bounded in number; `clock` is monotonic, `wall` the epoch clock."""

    def __init__(
        self,
        idle: float,
        limit: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.idle, self.limit, self.capacity = idle, limit, capacity
        self.clock, self.wall = clock, wall
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, token: str, identity: Identity) -> Session:
        now = self.clock()
        ends = now + self.limit
        exp = token_expiry(token)
        if exp is not None:
            ends = min(ends, now + (exp - self.wall()))
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            identity=identity,
            csrf=secrets.token_urlsafe(32),
            last_seen=now,
            ends=ends,
        )
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, now marked used; None if unknown or over."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self.idle or now >= session.ends:
                del self._sessions[session_id]
                return None
            session.last_seen = now
            self._sessions.move_to_end(session_id)
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def __len__(self) -> int:
        return len(self._sessions)


class Clients:
    """One API client per token (its connections are reused), the least recently used
    dropped past `capacity`; `connect` makes a client for a token."""

    def __init__(self, connect: Callable[[str], KubeApi], capacity: int = 256) -> None:
        self.connect, self.capacity = connect, capacity
        self._clients: OrderedDict[str, KubeApi] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> KubeApi:
        key = fingerprint(token)
        with self._lock:
            api = self._clients.get(key)
            if api is not None:
                self._clients.move_to_end(key)
                return api
        api = self.connect(token)
        with self._lock:
            self._clients[key] = api
            while len(self._clients) > self.capacity:
                self._clients.popitem(last=False)
        return api


class Signer:
    """Keyed digests for values the server must recognize later (CSRF tokens)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)

    def sign(self, *parts: str) -> str:
        digest = hmac.new(self.key, "\0".join(parts).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two strings, False when either is missing."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())
