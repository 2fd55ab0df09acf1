"""What the shell is offered: names read as the user, users named as the operator names them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from usersecrets.user import completion
from usersecrets.user.space import Space


class Listing(Space):
    """A Space that answers the list calls completion makes, and has no API client: every
    method completion calls is one of these."""

    def __init__(self, **objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def list_objects(self, plural: str) -> list[dict[str, Any]]:
        return self.objects[plural]

    def request(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        name: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        assert (verb, resource, method, path, name, kwargs) == (
            "list",
            "namespaces",
            "GET",
            "/api/v1/namespaces",
            None,
            {},
        )
        return {"items": self.objects["namespaces"]}


def _named(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}}


def _grant(key: str, user: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{key}-{user}"}, "spec": {"secretName": key, "user": user}}


def test_keys_are_sorted_names() -> None:
    space = Listing(usersecrets=[_named("zeta"), _named("alpha")])
    assert completion.keys(space) == ["alpha", "zeta"]


def test_grantees_of_one_key_or_of_all() -> None:
    grants = [_grant("k", "carol"), _grant("k", "bob"), _grant("other", "dave"), _grant("k", "bob")]
    space = Listing(secretgrants=grants)
    assert completion.grantees(space, "k") == ["bob", "carol"]
    assert completion.grantees(space, None) == ["bob", "carol", "dave"]


def test_users_as_the_operator_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERSECRETS_SYSTEM_NAMESPACES", '["kube-*", "infra"]')
    space = Listing(
        namespaces=[
            _named("kube-system"),
            _named("infra"),
            _named("usersecrets-system"),
            _named("bob"),
            _named("team-a", {"usersecrets.io/user": "carol"}),
            _named("carol-dev", {"usersecrets.io/user": "carol"}),
        ]
    )
    assert completion.users(space) == ["bob", "carol"]
    assert completion.namespaces(space) == [
        "bob",
        "carol-dev",
        "infra",
        "kube-system",
        "team-a",
        "usersecrets-system",
    ]


def test_contexts_of_every_kubeconfig_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = []
    for name, contexts in (("a", ["prod", "dev"]), ("b", ["dev", "lab"])):
        path = tmp_path / name
        config = {"contexts": [{"name": c, "context": {}} for c in contexts]}
        path.write_text(yaml.safe_dump(config))
        files.append(str(path))
    monkeypatch.setenv("KUBECONFIG", ":".join(files))
    assert completion.contexts(None) == ["dev", "lab", "prod"]
    assert completion.contexts(files[1]) == ["dev", "lab"]
