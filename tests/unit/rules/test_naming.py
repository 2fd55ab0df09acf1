"""Whose a namespace is, and the names and labels of what the operator creates, as literals:
they are read by people, by the chart's RBAC and by every copy already in a cluster."""

from __future__ import annotations

import hashlib

import pytest

from usersecrets.rules.naming import (
    copy_labels,
    copy_name,
    grant_name,
    secret_uri,
    user_of_namespace,
)
from usersecrets.settings import Settings

DEFAULTS = Settings()


@pytest.mark.parametrize(
    ("namespace", "labels", "user"),
    [
        ("alice", None, "alice"),  # no label: the namespace's own name
        ("team-x", {"usersecrets.io/user": "bob"}, "bob"),
        ("team-x", {"usersecrets.io/user": ""}, "team-x"),  # an empty label is no label
        ("team-x", {"other/user": "bob"}, "team-x"),
        ("usersecrets-system", None, None),  # the operator's own, label or not
        ("usersecrets-system", {"usersecrets.io/user": "mallory"}, None),
        ("kube-system", {"usersecrets.io/user": "mallory"}, None),
        ("kube-node-lease", None, None),
        ("kubeflow", None, "kubeflow"),  # "kube-*", not "kube*"
    ],
)
def test_the_user_of_a_namespace(
    namespace: str, labels: dict[str, str] | None, user: str | None
) -> None:
    assert user_of_namespace(namespace, labels, DEFAULTS) == user


def test_the_platform_chooses_the_label_the_fallback_and_the_system_namespaces() -> None:
    settings = Settings(
        user_label="example.com/owner",
        namespace_name_fallback=False,
        system_namespaces=("infra-*", "monitoring"),
        operator_namespace="secrets-operator",
    )
    assert user_of_namespace("team-x", {"example.com/owner": "bob"}, settings) == "bob"
    assert user_of_namespace("team-x", {"usersecrets.io/user": "bob"}, settings) is None
    assert user_of_namespace("alice", None, settings) is None
    labelled = {"example.com/owner": "mallory"}
    for system in ("secrets-operator", "infra-db", "monitoring"):
        assert user_of_namespace(system, labelled, settings) is None
    assert user_of_namespace("usersecrets-system", labelled, settings) == "mallory"
    assert user_of_namespace("kube-system", labelled, settings) == "mallory"


def test_copy_names_are_readable_and_end_in_the_digest_of_the_exact_pair() -> None:
    assert copy_name("alice", "db") == "usec-alice-db-9d8a53f9a3"
    assert copy_name("bob", "db") == "usec-bob-db-1956f4097c"
    # The digest is the first 10 hex digits of sha256("owner\0key"), computed here on its own.
    assert hashlib.sha256(b"bob\0db").hexdigest()[:10] == "1956f4097c"


def test_two_owners_whose_names_run_together_get_different_copies() -> None:
    """Owner "a-b" with key "c" and owner "a" with key "b-c" read alike: the digest decides."""
    assert copy_name("a-b", "c") == "usec-a-b-c-695274f6b8"
    assert copy_name("a", "b-c") == "usec-a-b-c-02654a5c0c"


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        ("Alice.Smith", "usec-alice-smith-db-f1ca0a707b"),  # lower case, '.' becomes '-'
        ("--x@@y--", "usec-x-y-db-a3a555b814"),  # runs of others become one '-', ends trimmed
        ("@@", "usec-user-db-73ddfc42a4"),  # nothing left: "user"
    ],
)
def test_owners_that_are_not_name_safe_are_slugged(owner: str, name: str) -> None:
    assert copy_name(owner, "db") == name


def test_grant_names() -> None:
    assert grant_name("k", "bob") == "k-bob-32641d"
    assert grant_name("db", "Bob.Smith") == "db-bob-smith-7de293"


def test_copy_labels() -> None:
    assert copy_labels("alice", "db", "owner") == {
        "app.kubernetes.io/managed-by": "usersecrets",
        "usersecrets.io/owner": "alice",
        "usersecrets.io/key": "db",
        "usersecrets.io/reason": "owner",
        "usersecrets.io/slot": "9",
    }


def test_secret_uri() -> None:
    assert secret_uri("neuro", "alice", "db") == "secret://neuro/alice/db"
