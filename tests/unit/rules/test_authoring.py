"""What a write of a UserSecret or grant asks of its author."""

from __future__ import annotations

from usersecrets.rules.authoring import Author, access_review, exposes, refusal, value_source

FROM_TOKENS = {"spec": {"valueFrom": {"secretKeyRef": {"name": "tokens", "key": "k"}}}}
INLINE = {"spec": {"value": "dg=="}}


def test_a_usersecret_exposes_a_source_when_it_starts_or_changes_to_take_one() -> None:
    assert exposes("UserSecret", FROM_TOKENS, None)
    assert exposes("UserSecret", FROM_TOKENS, INLINE)
    other = {"spec": {"valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}}
    assert exposes("UserSecret", FROM_TOKENS, other)
    assert not exposes("UserSecret", FROM_TOKENS, FROM_TOKENS)  # labels, say
    assert not exposes("UserSecret", INLINE, None)
    assert not exposes("UserSecret", "garbage", None)


def test_a_grant_exposes_when_new_or_when_it_names_another_secret_or_user() -> None:
    grant = {"spec": {"secretName": "db", "user": "bob"}}
    assert exposes("SecretGrant", grant, None)
    assert exposes("SecretGrant", grant, {"spec": {"secretName": "db", "user": "carol"}})
    assert not exposes("SecretGrant", grant, {**grant, "metadata": {"labels": {"a": "b"}}})
    assert not exposes("Pod", grant, None)


def test_the_author_is_read_from_user_info_whatever_it_holds() -> None:
    assert Author.of(
        {"username": "alice", "uid": "u1", "groups": ["team", 3], "extra": {"x": ["y"]}}
    ) == (Author("alice", "u1", ("team",), {"x": ["y"]}))
    assert Author.of({"username": ""}) is None
    assert Author.of(None) is None
    assert Author.of({"username": "bob", "groups": "nope", "extra": [1]}) == Author(
        "bob", None, (), {}
    )


def test_the_access_review_asks_for_get_on_that_one_secret() -> None:
    review = access_review(Author("alice", "u1", ("team",), {"x": ["y"]}), "alice-ns", "tokens")
    assert review == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "alice",
            "uid": "u1",
            "groups": ["team"],
            "extra": {"x": ["y"]},
            "resourceAttributes": {
                "namespace": "alice-ns",
                "verb": "get",
                "group": "",
                "resource": "secrets",
                "name": "tokens",
            },
        },
    }


def test_refusals_say_what_to_do() -> None:
    assert refusal("UserSecret", "alice-ns", "tokens") == (
        "A UserSecret can only take its value from a Secret you may read: you may not read "
        "Secret 'tokens' in namespace 'alice-ns' (get secrets)"
    )
    assert refusal("SecretGrant", "alice-ns", "tokens", "db") == (
        "UserSecret 'db' takes its value from Secret 'tokens', and you may not read Secret "
        "'tokens' in namespace 'alice-ns' (get secrets): only someone who may read it can share it"
    )
    assert value_source(FROM_TOKENS) == "tokens"
    assert value_source(INLINE) is None


def test_what_is_not_a_name_or_a_uid_is_none() -> None:
    for name in ("", 5, None, ["tokens"]):
        assert value_source({"spec": {"valueFrom": {"secretKeyRef": {"name": name}}}}) is None
    assert Author.of({"username": "bob", "uid": 5}) == Author("bob", None, (), {})
