"""bob against alice: every path the product offers, and none gives him her secret.

bob has what a user has: full rights on Secrets, pods, Jobs, UserSecrets and SecretGrants in his
own namespaces, and nothing elsewhere. alice has a secret `k` whose value is a canary; after
each attempt the canary must be in no Secret of bob's namespaces (unless alice shared it).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import CLUSTER_NAME, bind_user, wait_for
from fakes import copy_labels, copy_name
from kube import (
    SECRETGRANTS,
    USERSECRETS,
    copy_value,
    create_grant,
    create_usersecret,
    custom,
    delete_object,
    get_object,
    managed_copies,
    post_review,
    read_copy,
    usersecret_body,
    wait_copy,
    wait_reason,
    webhook_ca,
)
from usersecrets import GROUP, VERSION
from usersecrets_dev import pods
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

KEY = "k"
LABEL = "usersecrets.io/user"
WEBHOOK = "pods.usersecrets.io"


@dataclass
class World:
    admin: client.ApiClient
    alice: str
    bob: str
    alices: str
    bobs: str
    as_alice: client.ApiClient
    as_bob: client.ApiClient
    treasure: bytes

    def assert_bob_has_nothing(self) -> None:
        """alice's value is in no Secret of bob's namespace, under any name."""
        for secret in client.CoreV1Api(self.admin).list_namespaced_secret(self.bobs).items:
            for encoded in (secret.data or {}).values():
                assert self.treasure not in base64.b64decode(encoded), secret.metadata.name


@pytest.fixture
def world(
    operator: OperatorProcess,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> World:
    suffix = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{suffix}", f"bob-{suffix}"
    w = World(
        admin=admin,
        alice=alice,
        bob=bob,
        alices=user_namespace(alice),
        bobs=user_namespace(bob),
        as_alice=user_client(alice),
        as_bob=user_client(bob),
        treasure=f"alice-only-{uuid.uuid4().hex}".encode(),
    )
    create_usersecret(w.as_alice, w.alices, KEY, w.treasure)
    wait_copy(admin, w.alices, alice, KEY, w.treasure)
    return w


def pod_body(env: str | None = None, volumes: str | None = None) -> dict[str, Any]:
    return pods.pod(env=env, volumes=volumes, name=pods.unique_name(), restartPolicy="Never")


def forged(w: World, **metadata: Any) -> client.V1Secret:
    """A Secret of bob's that looks like a copy of alice's KEY: its name, its labels."""
    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=copy_name(w.alice, KEY), labels=copy_labels(w.alice, KEY, "grant"), **metadata
        ),
        data={"value": base64.b64encode(b"forged by bob").decode()},
    )


def refused(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> str:
    """The webhook's denial of a pod; the pod must not exist."""
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_pod(namespace, body)
    assert denied.value.status == 403, denied.value.body
    message: str = json.loads(denied.value.body)["message"]
    assert message.startswith(f'admission webhook "{WEBHOOK}" denied the request: '), message
    with pytest.raises(ApiException) as absent:
        core.read_namespaced_pod(body["metadata"]["name"], namespace)
    assert absent.value.status == 404
    return message


def webhook_sees_it_gone(w: World, operator: OperatorProcess) -> None:
    """Waits until the webhook refuses bob a pod asking for alice's KEY, his copy of it gone:
    its cache of copies hears of the deletion through its watch, after the apiserver has it."""
    ca = webhook_ca(w.admin)

    def refuses() -> bool:
        review = pods.review(w.bobs, pod_body(volumes=f"secret:/{w.alice}/{KEY}:/s/k"))
        status, answer = post_review(operator.webhook_port, ca, json.dumps(review).encode())
        assert status == 200
        return not json.loads(answer)["response"]["allowed"]

    wait_for(refuses, timeout=5, interval=0.05, what="the webhook to see the copy gone")


def forbidden(call: Callable[[], Any]) -> None:
    with pytest.raises(ApiException) as denied:
        call()
    assert denied.value.status == 403, denied.value.body


# -- direct access ---------------------------------------------------------------------------


def test_bob_cannot_read_list_overwrite_or_delete_alices_objects(world: World) -> None:
    w = world
    objects, core = custom(w.as_bob), client.CoreV1Api(w.as_bob)
    copy = copy_name(w.alice, KEY)
    patch = {"spec": {"value": base64.b64encode(b"bob's").decode()}}

    forbidden(
        lambda: objects.get_namespaced_custom_object(GROUP, VERSION, w.alices, USERSECRETS, KEY)
    )
    forbidden(lambda: objects.list_namespaced_custom_object(GROUP, VERSION, w.alices, USERSECRETS))
    forbidden(lambda: objects.list_cluster_custom_object(GROUP, VERSION, USERSECRETS))
    forbidden(lambda: objects.list_cluster_custom_object(GROUP, VERSION, SECRETGRANTS))
    forbidden(
        lambda: objects.patch_namespaced_custom_object(
            GROUP, VERSION, w.alices, USERSECRETS, KEY, patch
        )
    )
    forbidden(
        lambda: objects.create_namespaced_custom_object(
            GROUP, VERSION, w.alices, USERSECRETS, usersecret_body("planted", b"x")
        )
    )
    forbidden(lambda: delete_object(w.as_bob, USERSECRETS, w.alices, KEY))
    forbidden(lambda: create_grant(w.as_bob, w.alices, "steal", KEY, w.bob))
    forbidden(lambda: core.read_namespaced_secret(copy, w.alices))
    forbidden(lambda: core.list_namespaced_secret(w.alices))
    forbidden(lambda: core.list_secret_for_all_namespaces())
    forbidden(lambda: core.patch_namespaced_secret(copy, w.alices, {"data": {"value": "eA=="}}))
    forbidden(lambda: core.delete_namespaced_secret(copy, w.alices))
    forbidden(lambda: core.read_namespace(w.alices))

    # His own UserSecret of the same key is his (bob, k): alice's copies do not change.
    before = managed_copies(w.admin, w.alice)
    create_usersecret(w.as_bob, w.bobs, KEY, b"bob's own")
    wait_copy(w.admin, w.bobs, w.bob, KEY, b"bob's own")
    assert (
        managed_copies(w.admin, w.alice)
        == before
        == {(w.alices, KEY): managed_copies(w.admin, w.alice)[(w.alices, KEY)]}
    )
    assert copy_value(w.admin, w.alices, w.alice, KEY) == w.treasure
    assert get_object(w.as_alice, USERSECRETS, w.alices, KEY)["metadata"]["generation"] == 1
    w.assert_bob_has_nothing()


# -- pods ------------------------------------------------------------------------------------


def test_pod_annotations_in_every_reference_form_are_refused(world: World) -> None:
    w = world
    core = client.CoreV1Api(w.as_bob)
    a = w.alice
    not_shared = f"Secret 'secret://{CLUSTER_NAME}/{a}/{KEY}' is not shared with user '{w.bob}'"
    attempts: list[tuple[dict[str, Any], str]] = [
        (pod_body(volumes=f"secret:/{a}/{KEY}:/x"), not_shared),
        (pod_body(volumes=f"secret://{CLUSTER_NAME}/{a}/{KEY}:/x"), not_shared),
        (pod_body(volumes=f"   secret:/{a}/{KEY}   :   /x   "), not_shared),
        (pod_body(volumes=f"\n\n secret://{CLUSTER_NAME}/{a}/{KEY}:/x ,, \n"), not_shared),
        (pod_body(volumes=f"secret:/{a}/{KEY}:/x/../y"), "Invalid path: '/x/../y'"),
        (pod_body(env=f"X=secret:/{a}/{KEY}"), not_shared),
        (pod_body(env=f"X:secret:/{a}/{KEY}"), not_shared),
        (pod_body(env=f"  X  =  secret://{CLUSTER_NAME}/{a}/{KEY}  "), not_shared),
        (pod_body(env=f"X=secret:/{a}/{KEY},Y:secret://{CLUSTER_NAME}/{a}/{KEY}"), not_shared),
        (pod_body(env=f"X=secret:/{a}/{KEY}", volumes=f"secret:/{a}/{KEY}:/x"), not_shared),
        # Spellings that are not a reference to alice's secret at all.
        (pod_body(env=f"X=secret://other-cluster/{a}/{KEY}"), "Invalid URI cluster"),
        (pod_body(env=f"X=secret:///{a}/{KEY}"), "Invalid secret reference"),
        (pod_body(env=f"X=secret:/{a}//{KEY}"), "Invalid secret reference"),
        (pod_body(env=f"X=secret:/{a}/../{KEY}"), "Invalid secret reference"),
        (pod_body(env=f"X=secret:{a}/{KEY}"), "expected secret:KEY, secret:/USER/KEY"),
        (pod_body(env=f"X=secret: /{a}/{KEY}"), "Invalid secret"),
        (pod_body(env=f"X=secret:/{a}/{KEY}#"), "'#' and '?' are not allowed"),
        (pod_body(env=f"X=secret:/{a.upper()}/{KEY}"), "is not shared with user"),
        (pod_body(env=f"X=secret:/{a}/{copy_name(a, KEY)}"), "is not shared with user"),
    ]
    for body, problem in attempts:
        message = refused(core, w.bobs, body)
        assert problem in message, (body["metadata"]["annotations"], message)
    # A pod of bob's that names the copy directly, without annotations, never reaches the
    # webhook; Kubernetes resolves a secretKeyRef in the pod's own namespace, where alice's
    # copy does not exist. (The pod is accepted, and cannot start.)
    assert read_copy(w.admin, w.bobs, w.alice, KEY) is None
    w.assert_bob_has_nothing()
    print(f"pod annotation forms refused: {len(attempts)}")


def test_a_grant_in_bobs_namespace_naming_alices_secret_shares_nothing(world: World) -> None:
    w = world
    create_grant(w.as_bob, w.bobs, "to-me", KEY, w.bob)
    create_grant(w.as_bob, w.bobs, "to-alice", KEY, w.alice)
    to_me = wait_reason(w.as_bob, SECRETGRANTS, w.bobs, "to-me", "SecretNotFound", copies=0)
    assert to_me["status"]["uri"] == f"secret://{CLUSTER_NAME}/{w.bob}/{KEY}"
    wait_reason(w.as_bob, SECRETGRANTS, w.bobs, "to-alice", "SecretNotFound", copies=0)
    refused(client.CoreV1Api(w.as_bob), w.bobs, pod_body(env=f"X=secret:/{w.alice}/{KEY}"))
    assert set(managed_copies(w.admin, w.alice)) == {(w.alices, KEY)}
    assert managed_copies(w.admin, w.bob) == {}
    w.assert_bob_has_nothing()


NO_SECRETS = "usersecrets-test-no-secrets"


@pytest.fixture(scope="session")
def no_secrets_role(admin: client.ApiClient) -> str:
    """A role that may write UserSecrets and grants, but not read Secrets."""
    rules = [
        {
            "apiGroups": ["usersecrets.io"],
            "resources": ["usersecrets", "secretgrants"],
            "verbs": ["*"],
        }
    ]
    try:
        client.RbacAuthorizationV1Api(admin).create_cluster_role(
            {"metadata": {"name": NO_SECRETS}, "rules": rules}
        )
    except ApiException as error:
        if error.status != 409:
            raise
    return NO_SECRETS


def denial(call: Callable[[], Any]) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


def test_no_one_makes_the_operator_copy_a_secret_they_may_not_read(
    world: World,
    no_secrets_role: str,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> None:
    """mallory may write UserSecrets and grants in alice's namespace, not read its Secrets: the
    operator (which reads every Secret) must not read one for her, neither through a valueFrom
    of hers nor by sharing alice's valueFrom UserSecret with herself."""
    w = world
    mallory = f"mallory-{w.alice.split('-', 1)[1]}"
    bind_user(
        w.admin, w.alices, mallory, no_secrets_role, ("create", "usersecrets.io", "usersecrets")
    )
    mallorys = user_namespace(mallory)
    as_mallory = user_client(mallory)
    key_bytes = f"tls-key-{uuid.uuid4().hex}".encode()
    client.CoreV1Api(w.admin).create_namespaced_secret(
        w.alices,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="tls"),
            data={"tls.key": base64.b64encode(key_bytes).decode()},
        ),
    )
    hers = 'admission webhook "usersecrets.usersecrets.io" denied the request: '
    message = denial(
        lambda: create_usersecret(as_mallory, w.alices, "stolen", source=("tls", "tls.key"))
    )
    assert message == hers + (
        "A UserSecret can only take its value from a Secret you may read: you may not read "
        f"Secret 'tls' in namespace '{w.alices}' (get secrets)"
    )
    # alice may read it: hers is admitted and copied.
    create_usersecret(w.as_alice, w.alices, "cert", source=("tls", "tls.key"))
    wait_copy(w.admin, w.alices, w.alice, "cert", key_bytes)
    grants = 'admission webhook "secretgrants.usersecrets.io" denied the request: '
    message = denial(lambda: create_grant(as_mallory, w.alices, "to-me", "cert", mallory))
    assert message == grants + (
        f"UserSecret 'cert' takes its value from Secret 'tls', and you may not read Secret "
        f"'tls' in namespace '{w.alices}' (get secrets): only someone who may read it can share it"
    )
    # Nor by pointing an inline UserSecret of hers at it, later.
    create_usersecret(as_mallory, w.alices, "inline", b"mallory's own")
    message = denial(
        lambda: custom(as_mallory).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            w.alices,
            USERSECRETS,
            "inline",
            {
                "spec": {
                    "value": None,
                    "valueFrom": {"secretKeyRef": {"name": "tls", "key": "tls.key"}},
                }
            },
        )
    )
    assert message.startswith(hers + "A UserSecret can only take its value from a Secret")
    # What alice shares is hers to share.
    create_grant(w.as_alice, w.alices, "to-mallory", "cert", mallory)
    wait_copy(w.admin, mallorys, w.alice, "cert", key_bytes)


def test_a_service_account_token_is_never_copied(world: World) -> None:
    w = world
    core = client.CoreV1Api(w.as_alice)
    core.create_namespaced_secret(
        w.alices,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="sa-token", annotations={"kubernetes.io/service-account.name": "default"}
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    wait_for(
        lambda: (core.read_namespaced_secret("sa-token", w.alices).data or {}).get("token"),
        what="the token controller to fill the token",
    )
    create_usersecret(w.as_alice, w.alices, "token", source=("sa-token", "token"))
    found = wait_reason(w.as_alice, USERSECRETS, w.alices, "token", "SourceRefused", copies=0)
    assert found["status"]["conditions"][0]["message"] == (
        "The valueFrom Secret 'sa-token' is of type kubernetes.io/service-account-token, a "
        "credential of the cluster itself: it is not copied (the platform may allow the type "
        "with the chart's valueFrom.refusedTypes)"
    )
    assert read_copy(w.admin, w.alices, w.alice, "token") is None


def test_value_from_cannot_name_another_namespace(world: World) -> None:
    w = world
    source = "private"
    client.CoreV1Api(w.as_alice).create_namespaced_secret(
        w.alices,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=source),
            data={"v": base64.b64encode(w.treasure).decode()},
        ),
    )
    objects = custom(w.as_bob)
    body = usersecret_body("stolen", source=(source, "v"))
    body["spec"]["valueFrom"]["secretKeyRef"]["namespace"] = w.alices
    with pytest.raises(ApiException) as strict:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, w.bobs, USERSECRETS, body, field_validation="Strict"
        )
    assert (
        'unknown field "spec.valueFrom.secretKeyRef.namespace"'
        in json.loads(strict.value.body)["message"]
    )
    slashed = usersecret_body("slashed", source=(f"{w.alices}/{source}", "v"))
    with pytest.raises(ApiException) as pattern:
        objects.create_namespaced_custom_object(GROUP, VERSION, w.bobs, USERSECRETS, slashed)
    assert "spec.valueFrom.secretKeyRef.name" in json.loads(pattern.value.body)["message"]
    # Without strict validation the field is pruned: it names bob's own (missing) Secret.
    objects.create_namespaced_custom_object(GROUP, VERSION, w.bobs, USERSECRETS, body)
    wait_reason(w.as_bob, USERSECRETS, w.bobs, "stolen", "SourceMissing", namespaces=[])
    assert managed_copies(w.admin, w.bob) == {}
    w.assert_bob_has_nothing()


# -- a forged copy ---------------------------------------------------------------------------


def test_a_forged_copy_is_not_a_grant(world: World, operator: OperatorProcess) -> None:
    """bob writes, in his own namespace, a Secret with the copy's name and all our labels.

    What happens: the reconciler sees a managed copy of (alice, k) where none is desired and
    deletes it (with its resourceVersion as precondition), within a bounded time; it never
    writes alice's value into it. The webhook takes copies in the pod's namespace as the proof
    of a share, so in the moment before that deletion a pod of bob's asking for alice's secret
    may be admitted: it then mounts bob's own forged bytes, which are deleted under it. Once
    the forgery is gone, the pod is refused. A forged Secret without our managed-by label is
    bob's own: it is left alone, and proves nothing either.
    """
    w = world
    core = client.CoreV1Api(w.as_bob)
    name = copy_name(w.alice, KEY)
    uri = {"usersecrets.io/uri": f"secret://{CLUSTER_NAME}/{w.alice}/{KEY}"}
    ca = webhook_ca(w.admin)
    review = pods.review(w.bobs, pod_body(env=f"X=secret:/{w.alice}/{KEY}"), uid="forged")
    created = time.monotonic()
    core.create_namespaced_secret(w.bobs, forged(w, annotations=uri))
    status, answer = post_review(operator.webhook_port, ca, json.dumps(review).encode())
    assert status == 200
    response = json.loads(answer)["response"]
    in_the_window = response["allowed"]
    if in_the_window:  # what it was admitted with: the forged Secret of bob's own namespace
        patch = json.loads(base64.b64decode(response["patch"]))
        assert {op["value"][0]["valueFrom"]["secretKeyRef"]["name"] for op in patch} == {name}

    def gone() -> bool:
        return read_copy(w.admin, w.bobs, w.alice, KEY) is None

    wait_for(gone, timeout=10, interval=0.05, what="the operator to delete the forged copy")
    took = time.monotonic() - created
    print(
        f"forged copy deleted after {took:.2f}s; a pod right after forging was admitted: "
        f"{in_the_window}"
    )
    assert took < 10
    webhook_sees_it_gone(w, operator)
    message = refused(core, w.bobs, pod_body(env=f"X=secret:/{w.alice}/{KEY}"))
    assert "is not shared with user" in message
    w.assert_bob_has_nothing()

    # Without our label: his own Secret, left alone; still no share.
    mine = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels={"usersecrets.io/owner": w.alice}),
        data={"value": base64.b64encode(b"bob's own").decode()},
    )
    version = core.create_namespaced_secret(w.bobs, mine).metadata.resource_version
    refused(core, w.bobs, pod_body(env=f"X=secret:/{w.alice}/{KEY}"))
    time.sleep(1)
    assert core.read_namespaced_secret(name, w.bobs).metadata.resource_version == version
    assert set(managed_copies(w.admin, w.alice)) == {(w.alices, KEY)}
    w.assert_bob_has_nothing()


def test_a_finalizer_does_not_keep_a_revoked_share(world: World, operator: OperatorProcess) -> None:
    """bob puts a finalizer on his copy, then alice revokes: a DELETE alone would only mark it,
    and it would keep her value readable and count as a share. The operator empties it and
    takes the finalizer off, so it is gone, and bob's next pod is refused."""
    w = world
    create_grant(w.as_alice, w.alices, "to-bob", KEY, w.bob)
    wait_copy(w.admin, w.bobs, w.alice, KEY, w.treasure)
    core = client.CoreV1Api(w.as_bob)
    name = copy_name(w.alice, KEY)
    core.patch_namespaced_secret(name, w.bobs, {"metadata": {"finalizers": ["bob.example/keep"]}})
    delete_object(w.as_alice, SECRETGRANTS, w.alices, "to-bob")

    def gone() -> bool:
        return read_copy(w.admin, w.bobs, w.alice, KEY) is None

    wait_for(gone, timeout=10, interval=0.05, what="the finalized copy to be gone for good")
    webhook_sees_it_gone(w, operator)
    message = refused(core, w.bobs, pod_body(env=f"X=secret:/{w.alice}/{KEY}"))
    assert message.endswith(
        f"Secret 'secret://{CLUSTER_NAME}/{w.alice}/{KEY}' is not shared with user '{w.bob}'"
    )
    status = wait_reason(w.as_alice, USERSECRETS, w.alices, KEY, "Materialized", copies=1)
    assert status["status"]["namespaces"] == [w.alices]
    w.assert_bob_has_nothing()


def test_a_forged_copy_with_a_finalizer_goes_too(world: World, operator: OperatorProcess) -> None:
    w = world
    core = client.CoreV1Api(w.as_bob)
    core.create_namespaced_secret(w.bobs, forged(w, finalizers=["bob.example/keep"]))

    def gone() -> bool:
        return read_copy(w.admin, w.bobs, w.alice, KEY) is None

    wait_for(gone, timeout=10, interval=0.05, what="the finalized forgery to be gone for good")
    webhook_sees_it_gone(w, operator)
    refused(core, w.bobs, pod_body(volumes=f"secret:/{w.alice}/{KEY}:/s/k"))


# -- namespace labels ------------------------------------------------------------------------


def test_namespace_labels_decide_ownership_so_only_admins_may_set_them(world: World) -> None:
    """bob cannot relabel his namespace (he has no rights on namespaces). An admin who does
    moves the namespace to alice, with what that means: her secrets are materialized there,
    where bob's RBAC lets him read them, and his secrets there become hers. Hence SECURITY.md:
    whoever can set the user label of a namespace can act as that user."""
    w = world
    namespaces = client.CoreV1Api(w.as_bob)
    relabel = {"metadata": {"labels": {LABEL: w.alice}}}
    forbidden(lambda: namespaces.patch_namespace(w.bobs, relabel))
    forbidden(
        lambda: namespaces.patch_namespace(w.alices, {"metadata": {"labels": {LABEL: w.bob}}})
    )
    create_usersecret(w.as_bob, w.bobs, "mine", b"bob's")
    wait_copy(w.admin, w.bobs, w.bob, "mine", b"bob's")

    core = client.CoreV1Api(w.admin)
    core.patch_namespace(w.bobs, relabel)
    try:
        wait_copy(w.admin, w.bobs, w.alice, KEY, w.treasure, timeout=10)
        wait_copy(w.admin, w.alices, w.alice, "mine", b"bob's", timeout=10)
        wait_copy(w.admin, w.bobs, w.bob, "mine", None, timeout=10)
        # bob still holds his RoleBinding there: he can now read alice's value.
        assert copy_value(w.as_bob, w.bobs, w.alice, KEY) == w.treasure
    finally:
        core.patch_namespace(w.bobs, {"metadata": {"labels": {LABEL: w.bob}}})
    wait_copy(w.admin, w.bobs, w.alice, KEY, None, timeout=10)
    wait_copy(w.admin, w.alices, w.alice, "mine", None, timeout=10)
    wait_copy(w.admin, w.bobs, w.bob, "mine", b"bob's", timeout=10)
    w.assert_bob_has_nothing()


# -- racing a revoke -------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    started: float
    ended: float
    admitted: bool
    message: str


@pytest.fixture
def pod_loop() -> Iterator[Callable[[client.CoreV1Api, str, dict[str, Any]], list[Attempt]]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(core: client.CoreV1Api, namespace: str, template: dict[str, Any]) -> list[Attempt]:
        attempts: list[Attempt] = []

        def run() -> None:
            while not stop.is_set():
                body = json.loads(json.dumps(template))
                body["metadata"]["name"] = f"race-{uuid.uuid4().hex[:10]}"
                started = time.monotonic()
                try:
                    core.create_namespaced_pod(namespace, body)
                except ApiException as error:
                    text = json.loads(error.body).get("message", "") if error.body else ""
                    attempts.append(Attempt(started, time.monotonic(), False, text))
                else:
                    attempts.append(Attempt(started, time.monotonic(), True, ""))

        thread = threading.Thread(target=run, daemon=True)
        threads.append(thread)
        thread.start()
        return attempts

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


def test_racing_a_revoke(
    world: World,
    pod_loop: Callable[[client.CoreV1Api, str, dict[str, Any]], list[Attempt]],
) -> None:
    w = world
    create_grant(w.as_alice, w.alices, "to-bob", KEY, w.bob)
    wait_copy(w.admin, w.bobs, w.alice, KEY, w.treasure)
    template = pod_body(env=f"X=secret:/{w.alice}/{KEY}", volumes=f"secret:/{w.alice}/{KEY}:/k")
    attempts = pod_loop(client.CoreV1Api(w.as_bob), w.bobs, template)
    wait_for(lambda: any(a.admitted for a in attempts), what="bob's pods admitted while shared")

    revoked = time.monotonic()
    delete_object(w.as_alice, SECRETGRANTS, w.alices, "to-bob")
    wait_for(
        lambda: read_copy(w.admin, w.bobs, w.alice, KEY) is None,
        timeout=10,
        interval=0.02,
        what="the copy in bob's namespace to go after the revoke",
    )
    gone = time.monotonic()
    took = gone - revoked
    wait_for(lambda: sum(a.started > gone for a in attempts) >= 10, what="pods after the revoke")
    snapshot = list(attempts)
    after = [a for a in snapshot if a.started > gone]
    print(
        f"revoke: copy gone after {took:.2f}s; {len(snapshot)} pods tried, "
        f"{sum(a.admitted for a in snapshot)} admitted, all {len(after)} after it refused"
    )
    assert took < 10
    assert not [a for a in after if a.admitted]
    not_shared = f"Secret 'secret://{CLUSTER_NAME}/{w.alice}/{KEY}' is not shared with user"
    assert all(not_shared in a.message for a in after), {a.message for a in after}
    wait_reason(w.as_alice, USERSECRETS, w.alices, KEY, "Materialized", namespaces=[w.alices])
    w.assert_bob_has_nothing()
