"""The web UI's table of secrets: states in words, shares by key, never a value."""

from __future__ import annotations

from typing import Any

from usersecrets.user.views import secret_table


def usersecret(key: str, ready: str | None, message: str = "") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": key, "generation": 1},
        "spec": {"value": "c2VjcmV0"},
    }
    if ready is not None:
        obj["status"] = {
            "observedGeneration": 1,
            "namespaces": ["b-ns", "a-ns"],
            "conditions": [{"type": "Ready", "status": ready, "message": message}],
        }
    return obj


def grant(key: str, user: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{key}-{user}"}, "spec": {"secretName": key, "user": user}}


def test_rows_are_sorted_with_states_places_and_shares_and_no_value() -> None:
    rows = secret_table(
        [
            usersecret("zeta", "False", "copy refused"),
            usersecret("alpha", "True"),
            usersecret("mid", None),
        ],
        [grant("alpha", "carol"), grant("alpha", "bob"), grant("zeta", "dave")],
        lambda key: f"secret://c/alice/{key}",
    )
    assert [r["key"] for r in rows] == ["alpha", "mid", "zeta"]
    assert rows[0] == {
        "key": "alpha",
        "uri": "secret://c/alice/alpha",
        "ready": True,
        "copies": 0,
        "namespaces": ["a-ns", "b-ns"],
        "state": "ready",
        "message": "",
        "shares": [{"user": "bob", "ready": False}, {"user": "carol", "ready": False}],
    }
    assert (rows[1]["state"], rows[1]["shares"]) == ("pending", [])
    assert (rows[2]["state"], rows[2]["message"]) == ("failed", "copy refused")
    assert "c2VjcmV0" not in repr(rows)
