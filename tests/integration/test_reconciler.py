"""The reconciler against a real API server: users act with their own, RBAC-limited clients.

Users are shared by the whole session, and copies go to every namespace of a user, so each test
invents its own user names; namespaces are fresh per test.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import CLUSTER_NAME, wait_for
from kube import (
    SECRETGRANTS,
    USERSECRETS,
    copy_value,
    create_grant,
    create_usersecret,
    custom,
    delete_object,
    events_of,
    get_object,
    managed_copies,
    read_copy,
    scrape,
    set_value,
    usersecret_body,
    wait_copy,
    wait_reason,
)
from usersecrets import GROUP, VERSION, naming
from usersecrets.devcluster import OperatorProcess
from usersecrets.resources import MAX_VALUE_BYTES, VALUE_TOO_LARGE_MESSAGE

pytestmark = pytest.mark.integration

MATERIALIZED = "Materialized"


@pytest.fixture(autouse=True)
def _operator(operator: OperatorProcess) -> OperatorProcess:
    return operator


@pytest.fixture
def users() -> Callable[[str], str]:
    """Per-test user names: `users("alice")` is the same name for the whole test."""
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"


def unique_key(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_materializes_a_copy_with_status_and_event(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    home, other = user_namespace(alice), user_namespace(alice)
    as_alice = user_client(alice)
    key = unique_key()
    value = b"s3cr3t-" + uuid.uuid4().hex.encode()

    create_usersecret(as_alice, home, key, value)

    for namespace in (home, other):
        wait_copy(admin, namespace, alice, key, value)
        copy = read_copy(as_alice, namespace, alice, key)
        assert copy is not None
        assert copy.metadata.labels == naming.copy_labels(alice, key, naming.REASON_OWNER)
        assert copy.metadata.annotations == {
            naming.URI_ANNOTATION: f"secret://{CLUSTER_NAME}/{alice}/{key}"
        }
        assert copy.type == "Opaque"
        assert list(copy.data) == [naming.DATA_KEY]
        assert not copy.metadata.finalizers
        assert not copy.metadata.owner_references  # owner may live in another namespace
    obj = wait_reason(
        as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, other])
    )
    status = obj["status"]
    assert status["uri"] == f"secret://{CLUSTER_NAME}/{alice}/{key}"
    assert status["copies"] == 2
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert not obj["metadata"].get("finalizers")

    def materialized_event() -> list[client.CoreV1Event]:
        return [e for e in events_of(as_alice, home, key) if e.reason == MATERIALIZED]

    events = wait_for(materialized_event, what="an Event Materialized")
    assert isinstance(events, list)
    event = events[0]
    assert event.type == "Normal"
    assert event.involved_object.kind == "UserSecret"
    assert event.involved_object.uid == obj["metadata"]["uid"]
    assert event.source.component == "usersecrets"


def test_update_of_the_value_changes_every_copy(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    first, second = user_namespace(alice), user_namespace(alice)
    bobs = user_namespace(bob)
    as_alice = user_client(alice)
    key = unique_key()
    create_usersecret(as_alice, first, key, b"one")
    create_grant(as_alice, first, "to-bob", key, bob)
    for namespace in (first, second, bobs):
        wait_copy(admin, namespace, alice, key, b"one")

    set_value(as_alice, first, key, b"two")

    for namespace in (first, second, bobs):
        wait_copy(admin, namespace, alice, key, b"two")
    obj = wait_reason(as_alice, USERSECRETS, first, key, MATERIALIZED)
    assert obj["metadata"]["generation"] == 2
    assert obj["status"]["observedGeneration"] == 2
    assert obj["status"]["namespaces"] == sorted([first, second, bobs])


def test_value_from_follows_its_source_secret(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    home, other = user_namespace(alice), user_namespace(alice)
    as_alice = user_client(alice)
    core = client.CoreV1Api(as_alice)
    key, source = unique_key(), unique_key("sealed")
    core.create_namespaced_secret(
        home,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=source),
            data={"token": base64.b64encode(b"from-source-1").decode(), "other": "eA=="},
        ),
    )

    create_usersecret(as_alice, home, key, source=(source, "token"))
    for namespace in (home, other):
        wait_copy(admin, namespace, alice, key, b"from-source-1")
    wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, other]))

    core.patch_namespaced_secret(
        source, home, {"data": {"token": base64.b64encode(b"from-source-2").decode()}}
    )
    for namespace in (home, other):
        wait_copy(admin, namespace, alice, key, b"from-source-2")

    # The source goes away: the UserSecret says so; it comes back: copies follow again.
    core.delete_namespaced_secret(source, home)
    obj = wait_reason(as_alice, USERSECRETS, home, key, "SourceMissing")
    message = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert source in message
    assert "token" in message
    assert "from-source" not in message

    core.create_namespaced_secret(
        home,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=source),
            data={"token": base64.b64encode(b"from-source-3").decode()},
        ),
    )
    wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, other]))
    for namespace in (home, other):
        wait_copy(admin, namespace, alice, key, b"from-source-3")


def test_value_from_created_before_its_source(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    home = user_namespace(alice)
    as_alice = user_client(alice)
    key, source = unique_key(), unique_key("external")

    create_usersecret(as_alice, home, key, source=(source, "v"))
    wait_reason(as_alice, USERSECRETS, home, key, "SourceMissing", namespaces=[], copies=0)
    assert copy_value(admin, home, alice, key) is None

    # A source without the key is still missing.
    client.CoreV1Api(as_alice).create_namespaced_secret(
        home, client.V1Secret(metadata=client.V1ObjectMeta(name=source), string_data={"w": "x"})
    )
    client.CoreV1Api(as_alice).patch_namespaced_secret(source, home, {"stringData": {"v": "late"}})
    wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=[home])
    wait_copy(admin, home, alice, key, b"late")


def test_delete_removes_every_copy_and_leaves_no_finalizer(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    home, other = user_namespace(alice), user_namespace(alice)
    bobs = user_namespace(bob)
    as_alice = user_client(alice)
    key = unique_key()
    create_usersecret(as_alice, home, key, b"doomed")
    grant = create_grant(as_alice, home, "share", key, bob)
    for namespace in (home, other, bobs):
        wait_copy(admin, namespace, alice, key, b"doomed")
    wait_reason(as_alice, SECRETGRANTS, home, "share", "Granted", namespaces=[bobs])
    for plural, name in ((USERSECRETS, key), (SECRETGRANTS, "share")):
        obj = get_object(as_alice, plural, home, name)
        assert not obj["metadata"].get("finalizers")
        assert not any("kopf" in a for a in obj["metadata"].get("annotations") or {})
    assert grant["metadata"]["name"] == "share"

    delete_object(as_alice, USERSECRETS, home, key)

    for namespace in (home, other, bobs):
        wait_copy(admin, namespace, alice, key, None)
    # Deleted at once (no finalizer), and the grant now points at nothing.
    with pytest.raises(ApiException) as gone:
        get_object(as_alice, USERSECRETS, home, key)
    assert gone.value.status == 404
    wait_reason(as_alice, SECRETGRANTS, home, "share", "SecretNotFound", namespaces=[])
    assert managed_copies(admin, alice) == {}


def test_grant_then_revoke(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    home = user_namespace(alice)
    bob_first, bob_second = user_namespace(bob), user_namespace(bob)
    as_alice, as_bob = user_client(alice), user_client(bob)
    key = unique_key()
    create_usersecret(as_alice, home, key, b"shared")
    wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=[home])
    assert copy_value(as_bob, bob_first, alice, key) is None

    create_grant(as_alice, home, "to-bob", key, bob)

    for namespace in (bob_first, bob_second):
        wait_copy(as_bob, namespace, alice, key, b"shared")  # bob reads it with his own rights
        copy = read_copy(as_bob, namespace, alice, key)
        assert copy is not None
        assert copy.metadata.labels == naming.copy_labels(alice, key, naming.REASON_GRANT)
    bobs = sorted([bob_first, bob_second])
    grant = wait_reason(as_alice, SECRETGRANTS, home, "to-bob", "Granted", namespaces=bobs)
    assert grant["status"]["uri"] == f"secret://{CLUSTER_NAME}/{alice}/{key}"
    wait_reason(
        as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, *bobs]), copies=3
    )
    # bob cannot read alice's UserSecret, nor act in her namespace.
    with pytest.raises(ApiException) as refused:
        get_object(as_bob, USERSECRETS, home, key)
    assert refused.value.status == 403

    delete_object(as_alice, SECRETGRANTS, home, "to-bob")

    for namespace in bobs:
        wait_copy(admin, namespace, alice, key, None)
    wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=[home], copies=1)
    assert copy_value(admin, home, alice, key) == b"shared"


def test_relabelled_namespace_changes_hands(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, carol = users("alice"), users("carol")
    home, moving = user_namespace(alice), user_namespace(alice)
    carols = user_namespace(carol)
    as_alice, as_carol = user_client(alice), user_client(carol)
    alice_key, carol_key = unique_key("a"), unique_key("c")
    create_usersecret(as_alice, home, alice_key, b"alice's")
    create_usersecret(as_carol, carols, carol_key, b"carol's")
    wait_copy(admin, moving, alice, alice_key, b"alice's")
    wait_copy(admin, carols, carol, carol_key, b"carol's")

    client.CoreV1Api(admin).patch_namespace(
        moving, {"metadata": {"labels": {"usersecrets.io/user": carol}}}
    )

    wait_copy(admin, moving, alice, alice_key, None)
    wait_copy(admin, moving, carol, carol_key, b"carol's")
    wait_reason(as_alice, USERSECRETS, home, alice_key, MATERIALIZED, namespaces=[home])
    wait_reason(
        as_carol, USERSECRETS, carols, carol_key, MATERIALIZED, namespaces=sorted([carols, moving])
    )
    assert set(managed_copies(admin, alice)) == {(home, alice_key)}


def test_namespace_created_after_the_grant_gets_the_copy(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    home = user_namespace(alice)
    as_alice = user_client(alice)
    key = unique_key()
    create_usersecret(as_alice, home, key, b"for-later")
    create_grant(as_alice, home, "early", key, bob)
    grant = wait_reason(as_alice, SECRETGRANTS, home, "early", "Granted", namespaces=[])
    ready = next(c for c in grant["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert "no namespace yet" in ready["message"]

    first = user_namespace(bob)
    wait_copy(admin, first, alice, key, b"for-later")
    wait_reason(as_alice, SECRETGRANTS, home, "early", "Granted", namespaces=[first])
    later = user_namespace(bob)
    wait_copy(admin, later, alice, key, b"for-later")
    wait_reason(as_alice, SECRETGRANTS, home, "early", "Granted", namespaces=sorted([first, later]))
    wait_reason(
        as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, first, later])
    )


def test_grant_of_a_missing_usersecret_waits_for_it(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    home, bobs = user_namespace(alice), user_namespace(bob)
    as_alice = user_client(alice)
    key = unique_key()

    create_grant(as_alice, home, "premature", key, bob)
    grant = wait_reason(as_alice, SECRETGRANTS, home, "premature", "SecretNotFound", namespaces=[])
    ready = next(c for c in grant["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert key in ready["message"]
    assert copy_value(admin, bobs, alice, key) is None

    create_usersecret(as_alice, home, key, b"now-it-exists")
    wait_reason(as_alice, SECRETGRANTS, home, "premature", "Granted", namespaces=[bobs])
    wait_copy(admin, bobs, alice, key, b"now-it-exists")


def test_binary_value_round_trips_exactly(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    home = user_namespace(alice)
    as_alice = user_client(alice)
    key = unique_key()
    value = b"value\xff\x00"
    create_usersecret(as_alice, home, key, value)
    wait_copy(admin, home, alice, key, value)
    stored = get_object(as_alice, USERSECRETS, home, key)
    assert base64.b64decode(stored["spec"]["value"]) == value
    every_byte = bytes(range(256)) * 3
    set_value(as_alice, home, key, every_byte)
    wait_copy(admin, home, alice, key, every_byte)


def test_a_mebibyte_is_accepted_and_one_byte_more_is_refused(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    home = user_namespace(alice)
    as_alice = user_client(alice)
    marker = uuid.uuid4().hex.encode()
    largest = (marker * (MAX_VALUE_BYTES // len(marker) + 1))[:MAX_VALUE_BYTES]
    key = unique_key()
    create_usersecret(as_alice, home, key, largest)
    wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=[home])
    assert copy_value(admin, home, alice, key) == largest

    too_large = largest + b"x"
    with pytest.raises(ApiException) as refused:
        create_usersecret(as_alice, home, unique_key(), too_large)
    assert refused.value.status == 422
    body = (
        refused.value.body.decode() if isinstance(refused.value.body, bytes) else refused.value.body
    )
    assert VALUE_TOO_LARGE_MESSAGE in body
    assert marker.decode() not in body
    assert base64.b64encode(too_large).decode()[:64] not in body
    # Growing an existing one past the limit is refused the same way, and changes nothing.
    with pytest.raises(ApiException) as refused_update:
        set_value(as_alice, home, key, too_large)
    assert refused_update.value.status == 422
    assert VALUE_TOO_LARGE_MESSAGE in str(refused_update.value.body)
    assert marker.decode() not in str(refused_update.value.body)
    assert copy_value(admin, home, alice, key) == largest


def test_a_users_own_secret_with_the_copy_name_is_left_alone(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    home, taken = user_namespace(alice), user_namespace(alice)
    as_alice = user_client(alice)
    core = client.CoreV1Api(as_alice)
    key = unique_key()
    mine = core.create_namespaced_secret(
        taken,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=naming.copy_name(alice, key), labels={"mine": "yes"}),
            string_data={"hers": "untouched"},
        ),
    )

    create_usersecret(as_alice, home, key, b"operator's")

    wait_copy(admin, home, alice, key, b"operator's")
    obj = wait_reason(as_alice, USERSECRETS, home, key, "NameCollision", namespaces=[home])
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert taken in ready["message"]
    after = core.read_namespaced_secret(naming.copy_name(alice, key), taken)
    assert after.metadata.resource_version == mine.metadata.resource_version
    assert after.metadata.labels == {"mine": "yes"}
    assert after.data == {"hers": base64.b64encode(b"untouched").decode()}

    # Once she removes hers, the copy takes its place.
    core.delete_namespaced_secret(naming.copy_name(alice, key), taken)
    wait_copy(admin, taken, alice, key, b"operator's")
    wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, taken]))


def test_bob_cannot_make_the_operator_read_alices_secret(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    alices, bobs = user_namespace(alice), user_namespace(bob)
    as_alice, as_bob = user_client(alice), user_client(bob)
    treasure = b"alice-only-" + uuid.uuid4().hex.encode()
    source = unique_key("private")
    client.CoreV1Api(as_alice).create_namespaced_secret(
        alices,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=source),
            data={"v": base64.b64encode(treasure).decode()},
        ),
    )
    objects = custom(as_bob)

    # valueFrom has no namespace field: strict validation refuses it ...
    key = unique_key()
    body = usersecret_body(key, source=(source, "v"))
    body["spec"]["valueFrom"]["secretKeyRef"]["namespace"] = alices
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, bobs, USERSECRETS, body, field_validation="Strict"
        )
    assert refused.value.status in (400, 422)
    assert "namespace" in str(refused.value.body)
    # ... and otherwise the API server prunes it: what is stored names a Secret in bob's own
    # namespace, which does not exist.
    objects.create_namespaced_custom_object(GROUP, VERSION, bobs, USERSECRETS, body)
    stored = get_object(as_bob, USERSECRETS, bobs, key)
    assert stored["spec"]["valueFrom"] == {"secretKeyRef": {"name": source, "key": "v"}}
    wait_reason(as_bob, USERSECRETS, bobs, key, "SourceMissing", namespaces=[], copies=0)

    # A later UserSecret, and a few changes to alice's Secret, change nothing for bob.
    other_key = unique_key()
    create_usersecret(as_bob, bobs, other_key, source=(source, "v"))
    wait_reason(as_bob, USERSECRETS, bobs, other_key, "SourceMissing")
    client.CoreV1Api(as_alice).patch_namespaced_secret(
        source, alices, {"data": {"v": base64.b64encode(treasure + b"-2").decode()}}
    )
    wait_reason(as_bob, USERSECRETS, bobs, key, "SourceMissing", namespaces=[], copies=0)
    wait_reason(as_bob, USERSECRETS, bobs, other_key, "SourceMissing", namespaces=[], copies=0)
    assert managed_copies(admin, bob) == {}
    everywhere = client.CoreV1Api(admin).list_secret_for_all_namespaces().items
    holders = [
        (s.metadata.namespace, s.metadata.name)
        for s in everywhere
        if any(treasure in base64.b64decode(v) for v in (s.data or {}).values())
    ]
    assert holders == [(alices, source)]


def test_bobs_grant_of_alices_key_shares_nothing(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob, mallory = users("alice"), users("bob"), users("mallory")
    alices, bobs, mallorys = user_namespace(alice), user_namespace(bob), user_namespace(mallory)
    as_alice, as_bob = user_client(alice), user_client(bob)
    key = unique_key()
    create_usersecret(as_alice, alices, key, b"alice's own")
    wait_reason(as_alice, USERSECRETS, alices, key, MATERIALIZED, namespaces=[alices])

    # bob cannot create a grant in alice's namespace ...
    with pytest.raises(ApiException) as refused:
        create_grant(as_bob, alices, "steal", key, bob)
    assert refused.value.status == 403
    # ... and one in his own namespace names bob's (missing) secret of that key, not alice's.
    create_grant(as_bob, bobs, "to-me", key, bob)
    create_grant(as_bob, bobs, "to-mallory", key, mallory)
    to_me = wait_reason(as_bob, SECRETGRANTS, bobs, "to-me", "SecretNotFound", namespaces=[])
    assert to_me["status"]["uri"] == f"secret://{CLUSTER_NAME}/{bob}/{key}"
    wait_reason(as_bob, SECRETGRANTS, bobs, "to-mallory", "SecretNotFound", namespaces=[])
    wait_reason(as_alice, USERSECRETS, alices, key, MATERIALIZED, namespaces=[alices], copies=1)
    assert copy_value(admin, bobs, alice, key) is None
    assert copy_value(admin, mallorys, alice, key) is None
    assert set(managed_copies(admin, alice)) == {(alices, key)}
    assert managed_copies(admin, bob) == {}


def test_the_older_of_two_usersecrets_with_one_key_wins(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    # The older one lives in the namespace whose name sorts last, so that the tie-break on
    # names (for equal timestamps) cannot be what makes it win.
    younger_ns, older_ns = sorted([user_namespace(alice), user_namespace(alice)])
    as_alice = user_client(alice)
    key = unique_key()
    older = create_usersecret(as_alice, older_ns, key, b"older")
    created = datetime.datetime.fromisoformat(older["metadata"]["creationTimestamp"])
    wait_for(
        lambda: datetime.datetime.now(datetime.UTC) >= created + datetime.timedelta(seconds=1),
        what="the next second, so that the two creation timestamps differ",
    )
    younger = create_usersecret(as_alice, younger_ns, key, b"younger")
    assert younger["metadata"]["creationTimestamp"] > older["metadata"]["creationTimestamp"]

    both = sorted([older_ns, younger_ns])
    wait_reason(as_alice, USERSECRETS, older_ns, key, MATERIALIZED, namespaces=both)
    conflict = wait_reason(as_alice, USERSECRETS, younger_ns, key, "Conflict", namespaces=[])
    ready = next(c for c in conflict["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert older_ns in ready["message"]
    assert conflict["status"]["uri"] == f"secret://{CLUSTER_NAME}/{alice}/{key}"
    for namespace in both:
        assert copy_value(admin, namespace, alice, key) == b"older"
    # The younger one's updates do not leak into the copies while it loses ...
    set_value(as_alice, younger_ns, key, b"younger-2")
    wait_reason(as_alice, USERSECRETS, younger_ns, key, "Conflict", namespaces=[])
    for namespace in both:
        assert copy_value(admin, namespace, alice, key) == b"older"

    # ... and it takes over when the older one goes.
    delete_object(as_alice, USERSECRETS, older_ns, key)
    wait_reason(as_alice, USERSECRETS, younger_ns, key, MATERIALIZED, namespaces=both)
    for namespace in both:
        wait_copy(admin, namespace, alice, key, b"younger-2")


BURST = 200


@pytest.fixture
def restartable(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator, started again whatever happens to it in the test."""
    yield operator
    if operator.process is None:
        operator.start()


def test_kill_during_a_burst_converges_exactly(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    restartable: OperatorProcess,
) -> None:
    alice = users("alice")
    home, other = user_namespace(alice), user_namespace(alice)
    as_alice = user_client(alice)
    core = client.CoreV1Api(admin)
    prefix = unique_key("burst")
    keys = [f"{prefix}-{i}" for i in range(BURST)]
    values = {key: f"{key}-v1-{uuid.uuid4().hex}".encode() for key in keys}

    for key in keys[: BURST // 2]:
        create_usersecret(as_alice, home, key, values[key])
    wait_for(lambda: managed_copies(admin, alice), what="the operator at work on the burst")
    restartable.stop(kill=True)  # SIGKILL: no cleanup, the Lease stays held until it expires

    # While it is down: more creates, updates, deletes, a copy deleted, a copy tampered with,
    # and a managed copy left over from a secret that no longer exists.
    for key in keys[BURST // 2 : BURST * 3 // 4]:
        create_usersecret(as_alice, home, key, values[key])
    for key in keys[:20]:
        values[key] = f"{key}-v2-{uuid.uuid4().hex}".encode()
        set_value(as_alice, home, key, values[key])
    for key in keys[20:40]:
        delete_object(as_alice, USERSECRETS, home, key)
        del values[key]
    live = sorted(values)
    copies_now = managed_copies(admin, alice)
    drifted = [key for key in live if (other, key) in copies_now][:2]
    if drifted:
        core.delete_namespaced_secret(naming.copy_name(alice, drifted[0]), other)
        core.patch_namespaced_secret(
            naming.copy_name(alice, drifted[-1]),
            other,
            {"data": {naming.DATA_KEY: base64.b64encode(b"tampered").decode()}},
        )
    ghost = f"{prefix}-ghost"
    core.create_namespaced_secret(
        other,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=naming.copy_name(alice, ghost),
                labels=naming.copy_labels(alice, ghost, naming.REASON_OWNER),
            ),
            data={naming.DATA_KEY: base64.b64encode(b"left over").decode()},
        ),
    )

    restartable.start()
    for key in keys[BURST * 3 // 4 :]:
        create_usersecret(as_alice, home, key, values[key])

    expected = {
        (namespace, key): hashlib.sha256(value).hexdigest()
        for key, value in values.items()
        for namespace in (home, other)
    }
    wait_for(
        lambda: managed_copies(admin, alice) == expected,
        timeout=90,
        interval=0.25,
        what=f"exactly {len(expected)} current copies after the restart",
    )

    def all_ready() -> bool:
        items = custom(as_alice).list_namespaced_custom_object(GROUP, VERSION, home, USERSECRETS)[
            "items"
        ]
        return sorted(i["metadata"]["name"] for i in items) == sorted(values) and all(
            (i.get("status") or {}).get("observedGeneration") == i["metadata"]["generation"]
            and (i.get("status") or {}).get("namespaces") == sorted([home, other])
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (i.get("status") or {}).get("conditions") or []
            )
            for i in items
        )

    wait_for(all_ready, timeout=30, interval=0.25, what="every UserSecret Ready after the restart")
    assert managed_copies(admin, alice) == expected  # and it stays so
    metrics = scrape(restartable.metrics_port)
    assert "usersecrets_materialized_secrets" in metrics
    assert "usersecrets_reconcile_duration_seconds_count" in metrics


def test_a_namespace_stuck_terminating_does_not_block_the_others(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice = users("alice")
    home, doomed = user_namespace(alice), user_namespace(alice)
    as_alice = user_client(alice)
    core = client.CoreV1Api(admin)
    key = unique_key()
    create_usersecret(as_alice, home, key, b"before")
    wait_copy(admin, doomed, alice, key, b"before")
    # A finalizer nobody removes keeps the namespace Terminating once its content is gone.
    core.create_namespaced_config_map(
        doomed,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="hold", finalizers=["test/hold"])),
    )
    try:
        core.delete_namespace(doomed)
        wait_copy(admin, doomed, alice, key, None)  # the namespace controller deleted it

        set_value(as_alice, home, key, b"after")

        wait_copy(admin, home, alice, key, b"after")
        wait_reason(as_alice, USERSECRETS, home, key, MATERIALIZED)
    finally:
        core.patch_namespaced_config_map("hold", doomed, {"metadata": {"finalizers": None}})
