"""The validating check against a recording API: which lookups and reviews, and the answer."""

from __future__ import annotations

from typing import Any, cast

from fakes import FakeApi, Request, refusal
from usersecrets.webhook.validation import check

ALICE = {"username": "alice", "groups": ["system:authenticated"]}


def api(readable: bool, usersecret: dict[str, Any] | None = None) -> FakeApi:
    def answer(request: Request) -> Any:
        if request.path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
            return {"status": {"allowed": readable}}
        if usersecret is None:
            raise refusal(404, "not found")
        return usersecret

    return FakeApi(answer)


def request(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "uid": "1",
        "kind": {"group": "usersecrets.io", "version": "v1alpha1", "kind": kind},
        "namespace": "alice-ns",
        "object": obj,
        "oldObject": old,
        "userInfo": ALICE,
    }


FROM_TOKENS = {"spec": {"valueFrom": {"secretKeyRef": {"name": "tokens", "key": "k"}}}}
GRANT = {"spec": {"secretName": "db", "user": "bob"}}


def test_a_usersecret_from_a_secret_its_author_may_not_read_is_refused() -> None:
    fake = api(readable=False)
    decision = check(cast(Any, fake), request("UserSecret", FROM_TOKENS))
    assert (decision.allowed, decision.reason) == (False, "not_readable")
    assert decision.message == (
        "A UserSecret can only take its value from a Secret you may read: you may not read "
        "Secret 'tokens' in namespace 'alice-ns' (get secrets)"
    )
    [review] = fake.requests
    assert review.body["spec"]["user"] == "alice"
    assert review.body["spec"]["resourceAttributes"]["name"] == "tokens"
    assert check(cast(Any, api(readable=True)), request("UserSecret", FROM_TOKENS)).allowed


def test_a_grant_of_a_usersecret_from_a_secret_its_author_may_not_read_is_refused() -> None:
    fake = api(readable=False, usersecret=FROM_TOKENS)
    decision = check(cast(Any, fake), request("SecretGrant", GRANT))
    assert decision.allowed is False
    assert decision.message.startswith("UserSecret 'db' takes its value from Secret 'tokens'")
    assert fake.sent() == [
        ("GET", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db"),
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews"),
    ]


def test_what_exposes_nothing_asks_nothing() -> None:
    inline = api(readable=False, usersecret={"spec": {"value": "dg=="}})
    assert check(cast(Any, inline), request("SecretGrant", GRANT)).allowed
    assert inline.sent() == [
        ("GET", "/apis/usersecrets.io/v1alpha1/namespaces/alice-ns/usersecrets/db")
    ]
    missing = api(readable=False)
    assert check(cast(Any, missing), request("SecretGrant", GRANT)).allowed
    unchanged = api(readable=False)
    assert check(cast(Any, unchanged), request("UserSecret", FROM_TOKENS, FROM_TOKENS)).allowed
    assert unchanged.requests == []
