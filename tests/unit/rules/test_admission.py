"""The admission decision and the AdmissionReview around it."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from usersecrets.rules.admission import (
    Decision,
    PodReview,
    decide,
    malformed_response,
    read_review,
    review_response,
)
from usersecrets.rules.references import SecretRef
from usersecrets.settings import Settings
from usersecrets_dev import pods

SETTINGS = Settings(cluster_name="neuro-compute")
BOB_DB = SecretRef("bob", "db")
UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def make_pod(volumes: str | None = None, env: str | None = None) -> dict[str, Any]:
    return pods.pod(volumes=volumes, env=env, name="job")


def decide_for(
    pod: dict[str, Any], available: Collection[SecretRef] = (BOB_DB,), user: str | None = "bob"
) -> Decision:
    return decide(pod, namespace="bob-ns", user=user, available=available, settings=SETTINGS)


def allowed(pod: dict[str, Any], available: Collection[SecretRef] = (BOB_DB,)) -> dict[str, Any]:
    """Allowed, and the patched pod is allowed again with no patch (reinvocation)."""
    decision = decide_for(pod, available)
    assert decision.allowed, decision.message
    assert decision.message == ""
    patched: dict[str, Any] = jsonpatch.apply_patch(pod, decision.patch)
    assert decide_for(patched, available) == Decision(allowed=True)
    return patched


def denied(pod: dict[str, Any], reason: str, available: Collection[SecretRef] = (BOB_DB,)) -> str:
    """Denied for `reason` (the metric's label: the first kind of problem); the message."""
    decision = decide_for(pod, available)
    assert (decision.allowed, decision.reason) == (False, reason)
    assert decision.patch == []
    return decision.message


def test_pod_without_annotations_is_untouched() -> None:
    pod = make_pod()
    assert decide_for(pod) == Decision(allowed=True)
    del pod["metadata"]["annotations"]
    assert decide_for(pod, user=None) == Decision(allowed=True)


def test_blank_annotations_ask_for_nothing() -> None:
    assert decide_for(make_pod(" \n", ",, "), user=None) == Decision(allowed=True)


def test_namespace_without_user() -> None:
    assert decide_for(make_pod("secret:db:/db"), user=None) == Decision(
        allowed=False,
        message="Namespace 'bob-ns' belongs to no user, so its pods cannot use user secrets",
        reason="no_user",
    )


def test_one_env_and_one_file() -> None:
    patched = allowed(make_pod("secret:db:/etc/db", "DB=secret:db"))
    container = patched["spec"]["containers"][0]
    secret = "usec-bob-db-1956f4097c"
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "value"}
    assert container["volumeMounts"][0]["mountPath"] == "/etc/db"
    assert patched["spec"]["volumes"][0]["secret"]["secretName"] == secret


def test_another_users_shared_secret() -> None:
    alice = SecretRef("alice", "db")
    patched = allowed(make_pod("secret:/alice/db:/a", "X=secret://neuro-compute/alice/db"), [alice])
    secret = "usec-alice-db-9d8a53f9a3"
    assert patched["spec"]["volumes"][0]["secret"]["secretName"] == secret


def test_another_users_secret_without_copy() -> None:
    pod = make_pod("secret:/alice/db:/a, secret:/alice/zz:/b", "X=secret:/carol/k")
    assert denied(pod, "not_shared") == (
        "Secret 'secret://neuro-compute/alice/db' is not shared with user 'bob'; "
        "Secret 'secret://neuro-compute/alice/zz' is not shared with user 'bob'; "
        "Secret 'secret://neuro-compute/carol/k' is not shared with user 'bob'"
    )


def test_own_secret_by_full_uri_is_missing_not_unshared() -> None:
    assert (
        denied(make_pod(env="A=secret://neuro-compute/bob/zz"), "missing")
        == "Missing secrets: 'zz'"
    )


def test_all_missing() -> None:
    pod = make_pod("secret:b:/b, secret:a:/a", "C=secret:c, B=secret:b")
    assert denied(pod, "missing", []) == "Missing secrets: 'a', 'b', 'c'"


def test_some_missing() -> None:
    pod = make_pod("secret:zeta:/z, secret:db:/db", "A=secret:alpha")
    assert denied(pod, "missing") == "Missing secrets: 'alpha', 'zeta'"


def test_missing_comes_before_not_shared() -> None:
    pod = make_pod("secret:/alice/db:/a, secret:zeta:/z")
    assert denied(pod, "missing") == (
        "Missing secrets: 'zeta'; "
        "Secret 'secret://neuro-compute/alice/db' is not shared with user 'bob'"
    )


@pytest.mark.parametrize(
    ("volumes", "env", "message"),
    [
        ("storage:db:/db", None, "Invalid URI scheme: 'storage' != 'secret'"),
        (None, "A=secret://other/bob/db", "Invalid URI cluster: 'other' != 'neuro-compute'"),
        ("secret:db:/etc/../db", None, "Invalid path: '/etc/../db'"),
        ("secret:db:etc/db", None, "Mount path must be absolute: 'etc/db'"),
        ("secret:db", None, "Invalid secret file specification 'secret:db'"),
        (
            "secret:db:/x, secret:db:/x",
            None,
            "destination path '/x' was encountered multiple times",
        ),
        (
            None,
            "A=secret:db, A=secret:db",
            "environment variable 'A' was encountered multiple times",
        ),
    ],
)
def test_refused(volumes: str | None, env: str | None, message: str) -> None:
    assert denied(make_pod(volumes, env), "invalid") == message


def test_every_problem_is_listed() -> None:
    pod = make_pod("secret:db:rel, secret:gone:/gone, secret:/alice/x:/x", "1=secret:db")
    pod["metadata"]["annotations"]["usersecrets.io/containers"] = "main, nope"
    pod["spec"]["containers"][0]["env"] = [{"name": "Z", "value": "1"}]
    pod["metadata"]["annotations"]["usersecrets.io/env"] += ", Z=secret:db"
    assert denied(pod, "invalid").split("; ") == [
        "Mount path must be absolute: 'rel'",
        "Invalid environment variable name '1' in '1=secret:db': letters, digits, '_', '-' "
        "and '.', not starting with a digit",
        "Unknown container 'nope' in usersecrets.io/containers (the pod has 'main')",
        "Container 'main' already has environment variable 'Z'",
        "Missing secrets: 'gone'",
        "Secret 'secret://neuro-compute/alice/x' is not shared with user 'bob'",
    ]


def test_unshared_looks_the_same_whether_or_not_it_exists() -> None:
    """Bob's pods learn nothing about alice's keys: `available` only has bob's namespace."""
    exists = denied(make_pod("secret:/alice/db:/a"), "not_shared", [BOB_DB])
    assert exists == "Secret 'secret://neuro-compute/alice/db' is not shared with user 'bob'"


def test_conflicting_pod_fields() -> None:
    pod = make_pod("secret:db:/etc/db")
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "x", "mountPath": "/etc/db"}]
    assert denied(pod, "invalid") == "Container 'main' already mounts a volume at '/etc/db'"


# AdmissionReview


def review(obj: object = None, **request: object) -> dict[str, Any]:
    namespace = request.pop("namespace", "bob-ns")
    return pods.review(namespace, make_pod() if obj is None else obj, uid=UID, **request)


def test_response_allowed_without_patch() -> None:
    assert review_response(review(), Decision(allowed=True)) == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": UID, "allowed": True},
    }


def test_response_with_patch() -> None:
    decision = decide_for(make_pod("secret:db:/db"))
    response = review_response(review(), decision)["response"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == decision.patch


def test_response_denied() -> None:
    response = review_response(review(), Decision(allowed=False, message="Missing secrets: 'a'"))
    assert response["response"] == {
        "uid": UID,
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": "Missing secrets: 'a'"},
    }


def test_read_review() -> None:
    pod = make_pod("secret:db:/db")
    assert read_review(review(pod)) == PodReview(uid=UID, namespace="bob-ns", pod=pod)


@pytest.mark.parametrize(
    ("body", "problem", "uid"),
    [
        (None, "no request", ""),
        ([], "no request", ""),
        ({"request": "x"}, "no request", ""),
        ({"request": {}}, "no request.uid", ""),
        ({"request": {"uid": 5}}, "no request.uid", ""),
        (review(obj=[]), "no request.object", UID),
        (review(kind={"kind": "Secret"}), "request.kind is 'Secret', not 'Pod'", UID),
        (review(namespace=None), "no request.namespace", UID),
        (review(namespace=""), "no request.namespace", UID),
    ],
)
def test_malformed_reviews(body: object, problem: str, uid: str) -> None:
    assert read_review(body) == problem
    assert malformed_response(body, problem) == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": False,
            "status": {
                "code": 400,
                "reason": "BadRequest",
                "message": f"Malformed AdmissionReview: {problem}",
            },
        },
    }


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(body=JSON | st.fixed_dictionaries({"request": JSON}))
def test_garbage_review_bodies_never_raise(body: object) -> None:
    result = read_review(body)
    if isinstance(result, str):
        assert malformed_response(body, result)["response"]["allowed"] is False
    review_response(body, Decision(allowed=True))


TOKENS = [*"secret:/,\n=.-_#?aAb0 \t", "secret:", "secret://neuro-compute/", "/alice/", "..", "db"]
ANNOTATION = st.text(max_size=80) | st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
REFS = st.lists(
    st.builds(SecretRef, st.sampled_from(["bob", "alice"]), st.sampled_from(["db", "a", "b"]))
)


@given(
    volumes=ANNOTATION,
    env=ANNOTATION,
    containers=st.none() | st.sampled_from(["main", "other", ""]),
    available=REFS,
    user=st.none() | st.sampled_from(["bob", "alice"]),
)
def test_decide_on_random_annotations(
    volumes: str, env: str, containers: str | None, available: list[SecretRef], user: str | None
) -> None:
    pod = make_pod(volumes, env)
    if containers is not None:
        pod["metadata"]["annotations"]["usersecrets.io/containers"] = containers
    decision = decide(pod, namespace="ns", user=user, available=available, settings=SETTINGS)
    if not decision.allowed:
        assert decision.message
        assert decision.patch == []
        return
    patched = jsonpatch.apply_patch(pod, decision.patch)
    again = decide(patched, namespace="ns", user=user, available=available, settings=SETTINGS)
    assert again == Decision(allowed=True)
    review_response(review(pod), decision)


@pytest.mark.parametrize("metadata", [None, "x", ["annotations"], {"annotations": ["x"]}])
def test_a_pod_without_readable_annotations_asks_for_nothing(metadata: object) -> None:
    pod = {"metadata": metadata, "spec": {"containers": [{"name": "main"}]}}
    assert decide_for(pod, user=None) == Decision(allowed=True)
