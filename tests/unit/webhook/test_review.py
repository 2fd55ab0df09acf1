"""The admission route: what is not a JSON object is a 400 that says so; what is, is
answered from the caches and counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import https
from fakes import Answer, FakeApi, Request, copy_labels, refusal
from samples import Growth
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
    lookups = Lookups(FakeApi(answer), Settings(cluster_name="c"))
    lookups.namespaces.load([{"metadata": ALICE_NS}, {"metadata": {"name": "kube-system"}}])
    lookups.copies.load([{"metadata": DB_COPY}])
    return review.reviewer(lookups, Settings(cluster_name="c"))


def pod_review(namespace: str, env: str) -> dict[str, Any]:
    return pods.review(namespace, pods.pod(env=env))


def answered(reviewer: review.Review, body: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = asyncio.run(reviewer(body))["response"]
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
