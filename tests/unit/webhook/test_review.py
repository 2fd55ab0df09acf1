"""The admission route: what is not a JSON object is a 400 that says so; what is, is
answered from the caches and counted."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, cast

import pytest

import https
from fakes import Answer, FakeApi, Request, copy_labels, refusal
from samples import Growth
from usersecrets.kube.client import KubeApi
from usersecrets.settings import Settings
from usersecrets.webhook import review, tls
from usersecrets.webhook.lookups import Lookups
from usersecrets_dev import pods


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"review"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
)
def test_malformed_requests_are_400(data: bytes, message: str) -> None:
    bundle = https.bundle()

    async def scenario() -> None:
        async with https.served(tls.ssl_context_from_bundle(bundle)) as url:
            status, text = await https.post(url, https.client_context(bundle), data)
            assert status == 400
            assert message in text
            assert "Traceback" not in text

    asyncio.run(scenario())


# The review: the decision on a pod, and the metrics that count it.

ALICE_NS = {"name": "alice-ns", "labels": {"usersecrets.io/user": "alice"}}
DB_COPY = {
    "name": "usec-alice-db-9d8a53f9a3",
    "namespace": "alice-ns",
    "labels": copy_labels("alice", "db"),
}


def reviewing(answer: Answer | None = None) -> review.Review:
    """A reviewer whose caches know alice-ns (alice's, with her "db") and kube-system; any
    other namespace is asked of the API, which answers with `answer`."""
    lookups = Lookups(cast(KubeApi, FakeApi(answer)), Settings(cluster_name="c"))
    lookups.namespaces.load([{"metadata": ALICE_NS}, {"metadata": {"name": "kube-system"}}])
    lookups.copies.load([{"metadata": DB_COPY}])
    return review.reviewer(lookups, Settings(cluster_name="c"))


def pod_review(namespace: str, env: str) -> dict[str, Any]:
    return pods.review(namespace, pods.pod(env=env))


def answered(reviewer: review.Review, body: dict[str, Any]) -> dict[str, Any]:
    async def answer() -> dict[str, Any]:  # a Review is awaitable; asyncio.run takes a coroutine
        return await reviewer(body)

    response: dict[str, Any] = asyncio.run(answer())["response"]
    return response


ADMISSIONS = "usersecrets_admissions_total"


@pytest.mark.parametrize(
    ("namespace", "env", "labels", "message"),
    [
        ("alice-ns", "A=secret:db", '{result="admitted",reason=""}', None),
        (
            "alice-ns",
            "A=secret:nope",
            '{result="denied",reason="missing"}',
            "Missing secrets: 'nope'",
        ),
        (
            "alice-ns",
            "A=secret:/bob/db",
            '{result="denied",reason="not_shared"}',
            "Secret 'secret://c/bob/db' is not shared with user 'alice'",
        ),
        (
            "alice-ns",
            "1=secret:db",
            '{result="denied",reason="invalid"}',
            "Invalid environment variable name '1' in '1=secret:db': letters, digits, '_', '-' "
            "and '.', not starting with a digit",
        ),
        (
            "kube-system",
            "A=secret:db",
            '{result="denied",reason="no_user"}',
            "Namespace 'kube-system' belongs to no user, so its pods cannot use user secrets",
        ),
    ],
)
def test_each_answer_is_counted_by_result_and_reason(
    namespace: str, env: str, labels: str, message: str | None
) -> None:
    admissions, seconds = Growth(ADMISSIONS), Growth("usersecrets_admission_duration_seconds_count")
    response = answered(reviewing(), pod_review(namespace, env))
    assert response["allowed"] is (message is None)
    assert response.get("status", {}).get("message") == message
    assert admissions() == {labels: 1.0}
    assert seconds() == {"{}": 1.0}


def test_a_malformed_review_is_counted_as_such() -> None:
    admissions = Growth(ADMISSIONS)
    response = answered(reviewing(), {"request": {"uid": "u1"}})
    assert response["status"]["message"] == "Malformed AdmissionReview: no request.object"
    assert admissions() == {'{result="malformed",reason=""}': 1.0}


def test_a_namespace_newer_than_the_cache_is_read_once_and_a_failed_read_denies() -> None:
    def answer(request: Request) -> Any:
        name = request.path.removeprefix("/api/v1/namespaces/")
        if name == "gone":
            raise refusal(404, "not found")
        if name == "flaky":
            raise refusal(503, "unavailable")
        return {"metadata": {"name": name, "labels": {"usersecrets.io/user": "alice"}}}

    admissions, reviewer = Growth(ADMISSIONS), reviewing(answer)
    assert answered(reviewer, pod_review("alice-new", "A=secret:db"))["status"]["message"] == (
        "Missing secrets: 'db'"  # alice's, but no copy has reached it yet
    )
    assert answered(reviewer, pod_review("gone", "A=secret:db"))["status"]["message"] == (
        "Namespace 'gone' not found"
    )
    assert answered(reviewer, pod_review("flaky", "A=secret:db"))["status"]["message"] == (
        "Could not look up namespace 'flaky'; try again"
    )
    assert admissions() == {
        '{result="denied",reason="missing"}': 1.0,
        '{result="denied",reason="lookup"}': 2.0,
    }


# With shards: UserSecrets labelled with their owner's slot as they are written.


def labelling(answer: Answer | None = None) -> review.Review:
    lookups = Lookups(cast(KubeApi, FakeApi(answer)), Settings(cluster_name="c"))
    lookups.namespaces.load([{"metadata": ALICE_NS}, {"metadata": {"name": "kube-system"}}])
    return review.labeller(lookups)


def usersecret_review(namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "db", "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    obj = {"apiVersion": "usersecrets.io/v1alpha1", "kind": "UserSecret", "metadata": meta}
    request = {"uid": "u1", "namespace": namespace, "operation": "CREATE", "object": obj}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def patch_of(response: dict[str, Any]) -> Any:
    assert response["allowed"] is True
    if "patch" not in response:
        return None
    assert response["patchType"] == "JSONPatch"
    return json.loads(base64.b64decode(response["patch"]))


def test_a_usersecret_gets_its_owners_slot_and_one_that_has_it_is_left_alone() -> None:
    validations, labeller = Growth(VALIDATIONS), labelling()
    add = {"op": "add", "path": "/metadata/labels", "value": {"usersecrets.io/slot": "9"}}
    assert patch_of(answered(labeller, usersecret_review("alice-ns"))) == [add]
    slot = {"usersecrets.io/slot": "9"}
    assert patch_of(answered(labeller, usersecret_review("alice-ns", slot))) is None
    # Namespaces without a user have a slot too: their UserSecrets' statuses say so.
    added = patch_of(answered(labeller, usersecret_review("kube-system", {"a": "b"})))
    assert added == [{"op": "add", "path": "/metadata/labels/usersecrets.io~1slot", "value": "2"}]
    assert validations() == {
        '{result="labelled",reason=""}': 2.0,
        '{result="admitted",reason=""}': 1.0,
    }


def test_a_usersecret_whose_namespace_cannot_be_looked_up_is_refused_with_why() -> None:
    def unavailable(_: Request) -> Any:
        raise refusal(503, "unavailable")

    labeller = labelling(unavailable)
    response = answered(labeller, usersecret_review("new-ns"))
    assert response["allowed"] is False
    assert response["status"]["message"] == "Could not look up namespace 'new-ns'; try again"
    malformed = answered(labeller, {"request": {"uid": "u2", "namespace": "alice-ns"}})
    assert malformed["status"]["message"] == (
        "Malformed AdmissionReview: no request.object or request.namespace"
    )


VALIDATIONS = "usersecrets_validations_total"
