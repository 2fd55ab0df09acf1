"""Bad input: the webhook endpoint fuzzed directly over HTTPS, and malformed resources.

The webhook's failure policy is Fail, so an answer that is not a clear denial or a correct
admission blocks a user's pod with a message nobody can act on, and a crash blocks every pod
that asks for a secret. Whatever arrives, the answer must be a 4xx with an explanation or an
AdmissionReview whose denial says what is wrong; never a 500, and the process stays up.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import CLUSTER_NAME
from fakes import copy_name
from kube import (
    SECRETGRANTS,
    USERSECRETS,
    b64,
    create_usersecret,
    custom,
    post_review,
    usersecret_body,
    wait_copy,
    webhook_ca,
    webhook_healthy,
)
from usersecrets import GROUP, VERSION
from usersecrets_dev import pods
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

VOLUMES, ENV = "usersecrets.io/volumes", "usersecrets.io/env"
KEY = "k"
MIB = 1024 * 1024
EXAMPLES = 150  # per hypothesis strategy; each example is one HTTPS round trip


class Endpoint:
    """One operator's webhook, and a count of what was sent to it."""

    def __init__(self, operator: OperatorProcess, ca: str, namespace: str, user: str) -> None:
        self.operator, self.ca, self.namespace, self.user = operator, ca, namespace, user
        self.tried = 0

    def assert_alive(self) -> None:
        """The same process is still up, and its /healthz answers."""
        assert self.operator.process is not None
        assert self.operator.process.poll() is None
        assert webhook_healthy(self.operator.webhook_port, self.ca)

    def post(self, body: bytes, path: str = "/mutate-pods") -> tuple[int, bytes]:
        self.tried += 1
        status, answer = post_review(self.operator.webhook_port, self.ca, body, path=path)
        assert status != 500, (body[:300], answer[:300])
        assert status < 500, answer[:300]
        return status, answer

    def review(self, body: bytes, path: str = "/mutate-pods") -> dict[str, Any] | None:
        """The response of a well-formed answer, None for a 4xx, which must explain itself."""
        status, answer = self.post(body, path)
        if status != 200:
            assert answer.strip(), f"HTTP {status} without an explanation"
            return None
        review = json.loads(answer)
        assert review["apiVersion"] == "admission.k8s.io/v1"
        assert review["kind"] == "AdmissionReview"
        response: dict[str, Any] = review["response"]
        assert isinstance(response["allowed"], bool)
        assert isinstance(response["uid"], str)
        if response["allowed"]:
            if "patch" in response:
                assert response["patchType"] == "JSONPatch"
                patch = json.loads(base64.b64decode(response["patch"]))
                assert isinstance(patch, list)
                assert all(op["op"] == "add" for op in patch)
        else:
            message = response["status"]["message"]
            assert isinstance(message, str)
            assert message.strip()
            assert 400 <= response["status"]["code"] < 500
        return response

    def pod(self, annotations: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        body = pods.review(namespace or self.namespace, pods.pod(asks=annotations))
        response = self.review(json.dumps(body).encode())
        assert response is not None
        assert response["uid"] == body["request"]["uid"]
        return response


@pytest.fixture
def endpoint(
    operator: OperatorProcess,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> Endpoint:
    """alice's namespace, where her secret `k` has a copy, and the webhook to fuzz."""
    alice = f"alice-{uuid.uuid4().hex[:8]}"
    home = user_namespace(alice)
    create_usersecret(user_client(alice), home, KEY, b"fuzz")
    wait_copy(admin, home, alice, KEY, b"fuzz")
    return Endpoint(operator, webhook_ca(admin), home, alice)


# -- the mount path oracle, from the contract (DESIGN.md), not from the code ---------------------


def expected_mount(path: str) -> str | None:
    """`//`, `/./` and a trailing `/` are spelling; relative, `..`, control characters and the
    root itself are refused. Entries are trimmed of surrounding whitespace."""
    path = path.strip()
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if (
        not path.startswith("/")
        or ".." in parts
        or not parts
        or any(unicodedata.category(c) == "Cc" for c in path)
    ):
        return None
    return "/" + "/".join(parts)


def referenced_secrets(response: dict[str, Any]) -> set[str]:
    """Every Secret name the patch makes the pod use, as volumes or as env vars."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("secretName"), str):
                found.add(value["secretName"])
            if isinstance(value.get("secretKeyRef"), dict):
                found.add(value["secretKeyRef"]["name"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(base64.b64decode(response["patch"])))
    return found


def mount_paths(response: dict[str, Any]) -> list[str]:
    patch = json.loads(base64.b64decode(response["patch"]))
    mounts = [op["value"] for op in patch if "volumeMounts" in op["path"]]
    flat = [m for item in mounts for m in (item if isinstance(item, list) else [item])]
    return [m["mountPath"] for m in flat]


SEGMENTS = ["", ".", "..", "...", "a", "b.txt", ".hidden", "x..", "..y", "ü", "日本", "a b"]
ODD = ["\t", "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\u200b", "\ufeff", "\U0001f600"]

path_strategy = st.builds(
    lambda lead, segments, trail: lead + "/".join(segments) + trail,
    st.sampled_from(["/", "//", "/./", "", "./", "../", " "]),
    st.lists(st.sampled_from(SEGMENTS + ODD), max_size=6),
    st.sampled_from(["", "/", "/.", "/..", " ", "//"]),
)

FIXED_PATHS = [
    "/",
    "//",
    "/.",
    "/..",
    "..",
    "../x",
    "/../x",
    "/x/..",
    "/x/../y",
    "/x/..y",
    "/x../y",
    "/...",
    "//x//y//",
    "/x/./y/.",
    "/x/",
    "x",
    "./x",
    "/x\ty",
    "/x\x00",
    "/%2e%2e/x",
    "/x/%2F/y",
]


def test_mount_paths_are_normalized_or_refused(endpoint: Endpoint) -> None:
    def check(path: str) -> None:
        response = endpoint.pod({VOLUMES: f"secret:{KEY}:{path}"})
        wanted = expected_mount(path)
        if wanted is None:
            assert not response["allowed"], (path, response)
        else:
            assert response["allowed"], (path, response)
            assert mount_paths(response) == [wanted]

    for path in FIXED_PATHS:
        check(path)

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(path_strategy)
    def fuzz(path: str) -> None:
        check(path)

    fuzz()
    print(f"mount paths: {endpoint.tried} inputs")
    endpoint.assert_alive()


# -- the annotation grammar ------------------------------------------------------------------

REFS = [
    f"secret:{KEY}",
    f"secret:/{{user}}/{KEY}",
    f"secret://{CLUSTER_NAME}/{{user}}/{KEY}",
    "secret://other-cluster/{user}/k",
    "secret:/bob/k",
    "secret:",
    "secret:/",
    "secret://",
    "secret:///k",
    "secret:/{user}/",
    "secret:K_UPPER",
    "secret:" + "k" * 64,
    "secret:k#frag",
    "secret:k?q",
    "secret:/../k",
    "secret:/{user}/../k",
    "Secret:k",
    "https://example.com/k",
    "",
]
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(":/=,\n"),
    max_size=40,
)
ref_strategy = st.sampled_from(REFS) | TEXT
entry_strategy = st.one_of(
    st.builds(lambda r, p: f"{r}:{p}", ref_strategy, path_strategy | TEXT),
    st.builds(
        lambda n, sep, r: f"{n}{sep}{r}", TEXT | st.just("VAR"), st.sampled_from(":="), ref_strategy
    ),
    TEXT,
)
annotation_strategy = st.builds(
    lambda entries, sep: sep.join(entries),
    st.lists(entry_strategy, max_size=5),
    st.sampled_from(["\n", ",", "\r\n", " , ", "\n\n"]),
)


def test_annotation_grammar_fuzz(endpoint: Endpoint) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(annotation_strategy, annotation_strategy)
    def fuzz(volumes: str, env: str) -> None:
        user = endpoint.user
        response = endpoint.pod(
            {VOLUMES: volumes.replace("{user}", user), ENV: env.replace("{user}", user)}
        )
        if response["allowed"] and "patch" in response:
            # The only copy in the namespace is alice's `k`: whatever was admitted uses it.
            assert referenced_secrets(response) == {copy_name(user, KEY)}

    fuzz()
    print(f"annotation grammar: {endpoint.tried} inputs")
    endpoint.assert_alive()


# -- the AdmissionReview envelope ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def test_review_envelope_fuzz(endpoint: Endpoint) -> None:
    home = endpoint.namespace
    namespaces = st.sampled_from([home, "default", "kube-system", "usersecrets-system"]) | (
        json_values.filter(lambda v: not isinstance(v, str))
    )
    good_pod = pods.pod(env=f"X=secret:{KEY}")
    objects = (
        st.just(good_pod)
        | json_values
        | st.builds(lambda meta, spec: {"metadata": meta, "spec": spec}, json_values, json_values)
        | st.builds(
            lambda annotations: pods.pod(asks=annotations),
            st.dictionaries(st.sampled_from([VOLUMES, ENV, "other"]), json_values, max_size=3),
        )
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        st.one_of(
            json_values,
            st.builds(pods.review, namespaces, objects),
            st.builds(
                lambda ns, obj, extra: {**pods.review(ns, obj), **extra},
                namespaces,
                objects,
                st.dictionaries(TEXT, json_values, max_size=2),
            ),
            st.builds(
                lambda ns, obj, field, value: _replace(pods.review(ns, obj), field, value),
                namespaces,
                objects,
                st.sampled_from(["uid", "kind", "object", "namespace", "operation", "request"]),
                json_values,
            ),
        )
    )
    def fuzz(body: Any) -> None:
        endpoint.review(json.dumps(body).encode())

    fuzz()
    print(f"AdmissionReview envelopes: {endpoint.tried} inputs")
    endpoint.assert_alive()


def _replace(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    if field == "request":
        body["request"] = value
    else:
        body["request"][field] = value
    return body


def test_fixed_hostile_bodies_and_paths(endpoint: Endpoint) -> None:
    home = endpoint.namespace
    good = pods.review(home, pods.pod(env=f"X=secret:{KEY}"))
    raw_bodies: list[bytes] = [
        b"",
        b"{",
        b"null",
        b"[]",
        b"1",
        b'"review"',
        b"{}",
        b"\xff\xfe\x00{",
        b'{"request": null}',
        b'{"request": {"uid": 1}}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"request": {"uid": "' + b"9" * 10_000 + b'"}}',
        b'{"request": {"uid": "x", "namespace": "' + home.encode() + b'", "object": 1e999}}',
        b'{"request": {"uid": "x", "uid": "y"}}',
        b'{"request": {"uid": "\\ud800", "namespace": "' + home.encode() + b'", "object": {}}}',
        json.dumps(good).encode().replace(b"secret:k", b"secret:\\u0000k"),
        json.dumps(good).encode() + b"trailing",
        b" " * 10 + json.dumps(good).encode(),
        json.dumps({**good, "request": {**good["request"], "kind": {"kind": "Secret"}}}).encode(),
        json.dumps({**good, "request": {**good["request"], "uid": ""}}).encode(),
        json.dumps({**good, "request": {**good["request"], "namespace": ""}}).encode(),
        json.dumps({**good, "request": {**good["request"], "object": None}}).encode(),
    ]
    for body in raw_bodies:
        endpoint.review(body)

    # The limit on the body: beyond 3 MiB, 413 and nothing parsed.
    status, _ = endpoint.post(b"{" + b" " * (4 * MIB) + b"}")
    assert status == 413

    # Paths around the one route: nothing but /mutate-pods (and a query on it) reviews a pod.
    body = json.dumps(good).encode()
    for path in [
        "//mutate-pods",
        "/./mutate-pods",
        "/mutate-pods/",
        "/mutate-pods/.",
        "/mutate-pods/..",
        "/../mutate-pods",
        "/mutate-pods/../mutate-pods",
        "/%2e%2e/mutate-pods",
        "/mutate-pods%2F",
        "/MUTATE-PODS",
        "/mutate-pods;x",
        "/healthz",
        "/",
        "/" + "a/" * 2000,
    ]:
        status, _ = endpoint.post(body, path=path)
        assert status in (400, 404, 405), (path, status)
    response = endpoint.review(body, path="/mutate-pods?x=1&x=..")
    assert response is not None
    assert response["allowed"]
    print(f"fixed bodies and paths: {endpoint.tried} inputs")
    endpoint.assert_alive()


def test_huge_unicode_and_control_character_annotations(endpoint: Endpoint) -> None:
    started = time.monotonic()
    cases: list[tuple[dict[str, Any], bool]] = [
        ({VOLUMES: "x" * MIB}, False),
        ({ENV: "X=secret:" + "k" * MIB}, False),
        ({VOLUMES: ",".join(f"secret:{KEY}:/a/{i}" for i in range(MIB // 16))[:MIB]}, False),
        ({ENV: "\n" * MIB}, True),  # only blank lines: asks for nothing
        ({VOLUMES: f"secret:{KEY}:/etc/ключ"}, True),
        ({VOLUMES: f"secret:{KEY}:/etc/\U0001f511"}, True),
        ({ENV: f"ключ=secret:{KEY}"}, False),
        ({ENV: f"X\x00=secret:{KEY}"}, False),
        ({ENV: f"X=secret:{KEY}\x00"}, False),
        ({ENV: f"X=secret:{KEY}\u200b"}, False),
        ({ENV: f"X=secret:{KEY}", VOLUMES: 42}, True),  # a non-string counts as absent
        ({ENV: ["X=secret:k"]}, True),
        ({ENV: f"\ufeffX=secret:{KEY}"}, False),
        ({ENV: f"  X  =  secret:{KEY}  "}, True),
        ({ENV: f"X=secret:{KEY}\r\nY=secret:{KEY}\rZ:secret:{KEY}"}, True),
    ]
    for given_annotations, allowed in cases:
        response = endpoint.pod(given_annotations)
        assert response["allowed"] is allowed, (str(given_annotations)[:200], response)
        if not allowed:
            assert len(response["status"]["message"]) < 4 * MIB
    took = time.monotonic() - started
    print(f"huge and odd annotations: {endpoint.tried} inputs in {took:.1f}s")
    endpoint.assert_alive()


def test_hostile_reviews_neither_grow_memory_nor_delay_others(endpoint: Endpoint) -> None:
    """Admission runs before the apiserver's own size checks. Reviews near the body limit,
    with annotations of a megabyte and hundreds of containers, four at a time, are refused at
    the annotation bounds. The operator's memory grows by less than 20 MiB over a first wave and
    by less than 5 MiB over a second one: nothing is kept (measured: 82 MiB before and after).
    Ordinary reviews answered meanwhile take under 100 ms at the median and under 2 s each,
    even on a busy machine. (Before the bounds, one such pod took the operator from 80 to
    380-730 MiB and an unrelated pod timed out; before each request was answered in a frame of
    its own, a closed connection's body lived until the cyclic collector ran.)"""
    containers = [{"name": f"c{i}", "image": "busybox"} for i in range(400)]
    flood = {
        ENV: ",".join(f"V{i}=secret:{KEY}" for i in range(100_000)),
        VOLUMES: ",".join(f"secret:{KEY}:/s/{i}" for i in range(30_000)),
    }
    hostile_pod = {**pods.pod(asks=flood), "spec": {"containers": containers}}
    hostile = json.dumps(pods.review(endpoint.namespace, hostile_pod)).encode()
    assert 2 * MIB < len(hostile) < 3 * MIB
    ordinary = json.dumps(pods.review(endpoint.namespace, pods.pod(env=f"X=secret:{KEY}"))).encode()
    endpoint.post(ordinary)
    denials: list[str] = []
    latencies: list[float] = []

    def attack() -> None:
        for _ in range(5):
            status, answer = post_review(endpoint.operator.webhook_port, endpoint.ca, hostile)
            assert status == 200
            denials.append(json.loads(answer)["response"]["status"]["message"])

    def wave() -> None:
        attackers = [threading.Thread(target=attack) for _ in range(4)]
        for thread in attackers:
            thread.start()
        answered = 0
        while any(thread.is_alive() for thread in attackers) or answered < 25:
            started = time.monotonic()
            status, answer = post_review(endpoint.operator.webhook_port, endpoint.ca, ordinary)
            latencies.append(time.monotonic() - started)
            assert status == 200
            assert json.loads(answer)["response"]["allowed"] is True
            answered += 1
        for thread in attackers:
            thread.join()

    def rss() -> float:
        return endpoint.operator.memory_mib()[0]

    before = rss()
    wave()
    first = rss()
    wave()
    second = rss()
    latencies.sort()
    median, worst = latencies[len(latencies) // 2], latencies[-1]
    print(
        f"hostile reviews: RSS {before:.0f} -> {first:.0f} -> {second:.0f} MiB; ordinary ones "
        f"median {median * 1000:.1f} ms, worst {worst * 1000:.1f} ms over {len(latencies)}"
    )
    assert len(denials) == 40
    assert set(denials) == {
        "Annotation 'usersecrets.io/volumes' is 528889 characters long; at most 32768 are read; "
        "Annotation 'usersecrets.io/env' is 1588889 characters long; at most 32768 are read"
    }
    assert first - before < 20
    assert second - first < 5
    assert median < 0.1
    assert worst < 2
    endpoint.assert_alive()


def test_an_unknown_namespace_is_a_clear_denial(endpoint: Endpoint) -> None:
    response = endpoint.pod({ENV: f"X=secret:{KEY}"}, namespace="no-such-namespace")
    assert not response["allowed"]
    assert response["status"]["message"] == "Namespace 'no-such-namespace' not found"
    for namespace in ["..", "a/b", "x" * 300, "ns\u00e9"]:
        response = endpoint.pod({ENV: f"X=secret:{KEY}"}, namespace=namespace)
        assert not response["allowed"]
        assert namespace in response["status"]["message"]


# -- malformed UserSecrets and SecretGrants ----------------------------------------------------


def refusal(call: Callable[[], Any]) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status in (400, 422), refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


def test_malformed_resources_are_refused_with_clear_messages(
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> None:
    alice = f"alice-{uuid.uuid4().hex[:8]}"
    home = user_namespace(alice)
    objects = custom(user_client(alice))

    def create(plural: str, body: dict[str, Any], strict: bool = False) -> Callable[[], Any]:
        extra = {"field_validation": "Strict"} if strict else {}
        return lambda: objects.create_namespaced_custom_object(
            GROUP, VERSION, home, plural, body, **extra
        )

    def usersecret(spec: Any, name: str = "key") -> dict[str, Any]:
        body = usersecret_body(name)
        body["spec"] = spec
        return body

    def grant(spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SecretGrant",
            "metadata": {"name": "g"},
            "spec": spec,
        }

    source = {"secretKeyRef": {"name": "src", "key": "v"}}
    cases: list[tuple[Callable[[], Any], list[str]]] = [
        # Bad base64. Note: the API server quotes the refused text back to its submitter.
        (create(USERSECRETS, usersecret({"value": "not base64!"})), ["spec.value", "should match"]),
        (create(USERSECRETS, usersecret({"value": "YWJj="})), ["spec.value", "should match"]),
        (
            create(USERSECRETS, usersecret({"value": 12345})),
            ["spec.value", "must be of type string"],
        ),
        (
            create(USERSECRETS, usersecret({"value": b64(b"x"), "valueFrom": source})),
            ["spec.value and spec.valueFrom are mutually exclusive"],
        ),
        (create(USERSECRETS, usersecret({})), ["set one of spec.value", "spec.valueFrom"]),
        (
            create(
                USERSECRETS,
                usersecret(
                    {"valueFrom": {"secretKeyRef": {"name": "src", "key": "v", "namespace": "x"}}}
                ),
                strict=True,
            ),
            ['unknown field "spec.valueFrom.secretKeyRef.namespace"'],
        ),
        (
            create(
                USERSECRETS,
                usersecret({"valueFrom": {**source, "configMapKeyRef": {"name": "c"}}}),
                strict=True,
            ),
            ['unknown field "spec.valueFrom.configMapKeyRef"'],
        ),
        (
            create(USERSECRETS, usersecret({"valueFrom": {"secretKeyRef": {"name": "src"}}})),
            ["spec.valueFrom.secretKeyRef.key", "Required value"],
        ),
        (
            create(
                USERSECRETS,
                usersecret({"valueFrom": {"secretKeyRef": {"name": "other/src", "key": "v"}}}),
            ),
            ["spec.valueFrom.secretKeyRef.name", "should match"],
        ),
        (
            create(USERSECRETS, usersecret({"value": b64(b"x")}, name="k" * 64)),
            ["metadata.name is the secret's key and must be at most 63 characters"],
        ),
        (
            create(USERSECRETS, usersecret({"value": b64(b"x")}, name="Bad_Key")),
            ["metadata.name", "RFC 1123"],
        ),
        (create(SECRETGRANTS, grant({"secretName": "key"})), ["spec.user", "Required value"]),
        (create(SECRETGRANTS, grant({"user": "bob"})), ["spec.secretName", "Required value"]),
        (
            create(SECRETGRANTS, grant({"secretName": "key", "user": "bob@example.com"})),
            ["spec.user", "should match"],
        ),
        (
            create(SECRETGRANTS, grant({"secretName": "key", "user": "-bob"})),
            ["spec.user", "should match"],
        ),
        (
            create(SECRETGRANTS, grant({"secretName": "key", "user": "b" * 64})),
            ["spec.user", "63"],
        ),
        (create(SECRETGRANTS, grant({"secretName": "key", "user": ""})), ["spec.user"]),
        (
            create(SECRETGRANTS, grant({"secretName": "Key/../x", "user": "bob"})),
            ["spec.secretName", "should match"],
        ),
        (
            create(
                SECRETGRANTS,
                grant({"secretName": "key", "user": "bob", "namespace": "x"}),
                strict=True,
            ),
            ['unknown field "spec.namespace"'],
        ),
    ]
    for call, expected in cases:
        message = refusal(call)
        for part in expected:
            assert part in message, (part, message)
    # Nothing of it was stored.
    assert objects.list_namespaced_custom_object(GROUP, VERSION, home, USERSECRETS)["items"] == []
    assert objects.list_namespaced_custom_object(GROUP, VERSION, home, SECRETGRANTS)["items"] == []
    print(f"malformed resources: {len(cases)} refused")
