"""The validating check against a recording API: which lookups and reviews, the answer, and
the metric that counts it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from fakes import FakeApi, Request, refusal
from samples import Growth
from usersecrets.webhook.validation import check, validator

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


VALIDATIONS = "usersecrets_validations_total"


def validated(fake: FakeApi, body: dict[str, Any]) -> dict[str, Any]:
    async def answer() -> dict[str, Any]:  # a Review is awaitable; asyncio.run takes a coroutine
        return await validator(cast(Any, fake))(body)

    response: dict[str, Any] = asyncio.run(answer())["response"]
    return response


def test_each_answer_is_counted_by_result_and_reason() -> None:
    validations = Growth(VALIDATIONS)
    assert validated(api(readable=True), {"request": request("UserSecret", FROM_TOKENS)}) == {
        "uid": "1",
        "allowed": True,
    }
    assert validations() == {'{result="admitted",reason=""}': 1.0}

    validations = Growth(VALIDATIONS)
    refused = validated(api(readable=False), {"request": request("UserSecret", FROM_TOKENS)})
    assert (refused["allowed"], refused["status"]["code"]) == (False, 403)
    assert validations() == {'{result="denied",reason="not_readable"}': 1.0}

    validations = Growth(VALIDATIONS)
    nobody = {**request("SecretGrant", GRANT), "userInfo": {}}
    assert validated(api(readable=True), {"request": nobody})["status"]["message"] == (
        "The request names no user"
    )
    assert validations() == {'{result="denied",reason="no_user"}': 1.0}

    validations = Growth(VALIDATIONS)
    malformed = validated(api(readable=True), {"request": {"uid": 1}})
    assert malformed["status"]["message"] == "Malformed AdmissionReview: no request.uid"
    assert validations() == {'{result="malformed",reason=""}': 1.0}


def test_a_failed_lookup_denies_and_says_to_try_again() -> None:
    def answer(_: Request) -> Any:
        raise refusal(503, "unavailable")

    validations = Growth(VALIDATIONS)
    response = validated(FakeApi(answer), {"request": request("SecretGrant", GRANT)})
    assert response["status"]["message"] == (
        "Could not check who may read the Secret this shares; try again"
    )
    assert validations() == {'{result="denied",reason="lookup"}': 1.0}
