"""The reconciler against a real API server: users act with their own, RBAC-limited clients.

Users are shared by the whole session, and copies go to every namespace of a user, so each test
invents its own user names; namespaces are fresh per test.
"""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import CLUSTER_NAME, wait_for
from fakes import copy_labels, copy_name
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
    ready_condition,
    scrape,
    set_value,
    settled,
    usersecret_body,
    wait_converged,
    wait_copy,
    wait_reason,
)
from usersecrets import GROUP, VERSION
from usersecrets.api.resources import MAX_VALUE_BYTES, VALUE_TOO_LARGE_MESSAGE
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

MATERIALIZED = "Materialized"


@pytest.fixture(autouse=True)
def _operator(operator: OperatorProcess) -> OperatorProcess:
    return operator


@dataclass(frozen=True)
class User:
    """A user of one test: their name, their own RBAC-limited client, and new namespaces."""

    name: str
    api: client.ApiClient
    namespace: Callable[[], str]


@pytest.fixture
def user(
    users: Callable[[str], str],
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
) -> Callable[[str], User]:
    """`user("alice")`: a user only this test knows; `.namespace()` makes them a fresh one."""

    def make(name: str) -> User:
        name = users(name)
        return User(name, user_client(name), lambda: user_namespace(name))

    return make


def unique_key(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_materializes_a_copy_with_status(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    home, other = alice.namespace(), alice.namespace()
    key = unique_key()
    value = b"s3cr3t-" + uuid.uuid4().hex.encode()

    create_usersecret(alice.api, home, key, value)

    for namespace in (home, other):
        wait_copy(admin, namespace, alice.name, key, value)
        copy = read_copy(alice.api, namespace, alice.name, key)
        assert copy is not None
        assert copy.metadata.labels == copy_labels(alice.name, key, "owner")
        assert copy.metadata.annotations == {
            "usersecrets.io/uri": f"secret://{CLUSTER_NAME}/{alice.name}/{key}"
        }
        assert copy.type == "Opaque"
        assert list(copy.data) == ["value"]
        assert not copy.metadata.finalizers
        assert not copy.metadata.owner_references  # owner may live in another namespace
    obj = wait_reason(
        alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, other])
    )
    status = obj["status"]
    assert status["uri"] == f"secret://{CLUSTER_NAME}/{alice.name}/{key}"
    assert status["copies"] == 2
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    ready = ready_condition(obj)
    assert ready is not None
    assert ready["status"] == "True"
    assert not obj["metadata"].get("finalizers")

    # Working from the start is told by the status; Events are for problems and changes. One
    # would be posted right after the status: give it the time to show if it were.
    time.sleep(1)
    assert events_of(alice.api, home, key) == []


def test_update_of_the_value_changes_every_copy(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, bob = user("alice"), user("bob")
    first, second = alice.namespace(), alice.namespace()
    bobs = bob.namespace()
    key = unique_key()
    create_usersecret(alice.api, first, key, b"one")
    create_grant(alice.api, first, "to-bob", key, bob.name)
    for namespace in (first, second, bobs):
        wait_copy(admin, namespace, alice.name, key, b"one")

    set_value(alice.api, first, key, b"two")

    for namespace in (first, second, bobs):
        wait_copy(admin, namespace, alice.name, key, b"two")
    obj = wait_reason(alice.api, USERSECRETS, first, key, MATERIALIZED)
    assert obj["metadata"]["generation"] == 2
    assert obj["status"]["observedGeneration"] == 2
    assert obj["status"]["namespaces"] == sorted([first, second])  # bob's: counted, not named
    assert obj["status"]["copies"] == 3


def test_value_from_follows_its_source_secret(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    home, other = alice.namespace(), alice.namespace()
    core = client.CoreV1Api(alice.api)
    key, source = unique_key(), unique_key("sealed")
    core.create_namespaced_secret(
        home,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=source),
            data={"token": base64.b64encode(b"from-source-1").decode(), "other": "eA=="},
        ),
    )

    create_usersecret(alice.api, home, key, source=(source, "token"))
    for namespace in (home, other):
        wait_copy(admin, namespace, alice.name, key, b"from-source-1")
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, other]))

    core.patch_namespaced_secret(
        source, home, {"data": {"token": base64.b64encode(b"from-source-2").decode()}}
    )
    for namespace in (home, other):
        wait_copy(admin, namespace, alice.name, key, b"from-source-2")

    # The source goes away: the UserSecret says so; it comes back: copies follow again.
    core.delete_namespaced_secret(source, home)
    obj = wait_reason(alice.api, USERSECRETS, home, key, "SourceMissing")
    ready = ready_condition(obj)
    assert ready is not None
    message = ready["message"]
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
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, other]))
    for namespace in (home, other):
        wait_copy(admin, namespace, alice.name, key, b"from-source-3")


def test_value_from_created_before_its_source(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    home = alice.namespace()
    key, source = unique_key(), unique_key("external")

    create_usersecret(alice.api, home, key, source=(source, "v"))
    obj = wait_reason(alice.api, USERSECRETS, home, key, "SourceMissing", namespaces=[], copies=0)
    assert copy_value(admin, home, alice.name, key) is None
    missing = wait_for(lambda: events_of(alice.api, home, key), what="an Event SourceMissing")
    assert isinstance(missing, list)
    assert [(e.type, e.reason) for e in missing] == [("Warning", "SourceMissing")]
    assert missing[0].involved_object.kind == "UserSecret"
    assert missing[0].involved_object.uid == obj["metadata"]["uid"]
    assert missing[0].source.component == "usersecrets"

    # A source without the key is still missing.
    client.CoreV1Api(alice.api).create_namespaced_secret(
        home, client.V1Secret(metadata=client.V1ObjectMeta(name=source), string_data={"w": "x"})
    )
    client.CoreV1Api(alice.api).patch_namespaced_secret(source, home, {"stringData": {"v": "late"}})
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=[home])
    wait_copy(admin, home, alice.name, key, b"late")

    def recovered() -> list[client.CoreV1Event]:
        return [e for e in events_of(alice.api, home, key) if e.reason == MATERIALIZED]

    events = wait_for(recovered, what="an Event Materialized")
    assert isinstance(events, list)
    assert [e.type for e in events] == ["Normal"]


def test_delete_removes_every_copy_and_leaves_no_finalizer(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, bob = user("alice"), user("bob")
    home, other = alice.namespace(), alice.namespace()
    bobs = bob.namespace()
    key = unique_key()
    create_usersecret(alice.api, home, key, b"doomed")
    grant = create_grant(alice.api, home, "share", key, bob.name)
    for namespace in (home, other, bobs):
        wait_copy(admin, namespace, alice.name, key, b"doomed")
    wait_reason(alice.api, SECRETGRANTS, home, "share", "Granted", copies=1)
    for plural, name in ((USERSECRETS, key), (SECRETGRANTS, "share")):
        obj = get_object(alice.api, plural, home, name)
        assert not obj["metadata"].get("finalizers")
        assert not any("kopf" in a for a in obj["metadata"].get("annotations") or {})
    assert grant["metadata"]["name"] == "share"

    delete_object(alice.api, USERSECRETS, home, key)

    for namespace in (home, other, bobs):
        wait_copy(admin, namespace, alice.name, key, None)
    # Deleted at once (no finalizer), and the grant now points at nothing.
    with pytest.raises(ApiException) as gone:
        get_object(alice.api, USERSECRETS, home, key)
    assert gone.value.status == 404
    wait_reason(alice.api, SECRETGRANTS, home, "share", "SecretNotFound", copies=0)
    assert managed_copies(admin, alice.name) == {}


def test_grant_then_revoke(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, bob = user("alice"), user("bob")
    home = alice.namespace()
    bob_first, bob_second = bob.namespace(), bob.namespace()
    key = unique_key()
    create_usersecret(alice.api, home, key, b"shared")
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=[home])
    assert copy_value(bob.api, bob_first, alice.name, key) is None

    create_grant(alice.api, home, "to-bob", key, bob.name)

    for namespace in (bob_first, bob_second):
        wait_copy(
            bob.api, namespace, alice.name, key, b"shared"
        )  # bob reads it with his own rights
        copy = read_copy(bob.api, namespace, alice.name, key)
        assert copy is not None
        assert copy.metadata.labels == copy_labels(alice.name, key, "grant")
    bobs = sorted([bob_first, bob_second])
    grant = wait_reason(alice.api, SECRETGRANTS, home, "to-bob", "Granted", copies=len(bobs))
    assert grant["status"]["uri"] == f"secret://{CLUSTER_NAME}/{alice.name}/{key}"
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=[home], copies=3)
    # bob cannot read alice's UserSecret, nor act in her namespace.
    with pytest.raises(ApiException) as refused:
        get_object(bob.api, USERSECRETS, home, key)
    assert refused.value.status == 403

    delete_object(alice.api, SECRETGRANTS, home, "to-bob")

    for namespace in bobs:
        wait_copy(admin, namespace, alice.name, key, None)
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=[home], copies=1)
    assert copy_value(admin, home, alice.name, key) == b"shared"


def test_relabelled_namespace_changes_hands(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, carol = user("alice"), user("carol")
    home, moving = alice.namespace(), alice.namespace()
    carols = carol.namespace()
    alice_key, carol_key = unique_key("a"), unique_key("c")
    create_usersecret(alice.api, home, alice_key, b"alice's")
    create_usersecret(carol.api, carols, carol_key, b"carol's")
    wait_copy(admin, moving, alice.name, alice_key, b"alice's")
    wait_copy(admin, carols, carol.name, carol_key, b"carol's")

    client.CoreV1Api(admin).patch_namespace(
        moving, {"metadata": {"labels": {"usersecrets.io/user": carol.name}}}
    )

    wait_copy(admin, moving, alice.name, alice_key, None)
    wait_copy(admin, moving, carol.name, carol_key, b"carol's")
    wait_reason(alice.api, USERSECRETS, home, alice_key, MATERIALIZED, namespaces=[home])
    wait_reason(
        carol.api, USERSECRETS, carols, carol_key, MATERIALIZED, namespaces=sorted([carols, moving])
    )
    assert set(managed_copies(admin, alice.name)) == {(home, alice_key)}


def test_namespace_created_after_the_grant_gets_the_copy(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, bob = user("alice"), user("bob")
    home = alice.namespace()
    key = unique_key()
    create_usersecret(alice.api, home, key, b"for-later")
    create_grant(alice.api, home, "early", key, bob.name)
    grant = wait_reason(alice.api, SECRETGRANTS, home, "early", "Granted", copies=0)
    ready = ready_condition(grant)
    assert ready is not None
    assert ready["status"] == "True"
    assert "no namespace yet" in ready["message"]

    first = bob.namespace()
    wait_copy(admin, first, alice.name, key, b"for-later")
    wait_reason(alice.api, SECRETGRANTS, home, "early", "Granted", copies=1)
    later = bob.namespace()
    wait_copy(admin, later, alice.name, key, b"for-later")
    wait_reason(alice.api, SECRETGRANTS, home, "early", "Granted", copies=2)
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=[home], copies=3)


def test_grant_of_a_missing_usersecret_waits_for_it(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, bob = user("alice"), user("bob")
    home, bobs = alice.namespace(), bob.namespace()
    key = unique_key()

    create_grant(alice.api, home, "premature", key, bob.name)
    grant = wait_reason(alice.api, SECRETGRANTS, home, "premature", "SecretNotFound", copies=0)
    ready = ready_condition(grant)
    assert ready is not None
    assert ready["status"] == "False"
    assert key in ready["message"]
    assert copy_value(admin, bobs, alice.name, key) is None

    create_usersecret(alice.api, home, key, b"now-it-exists")
    wait_reason(alice.api, SECRETGRANTS, home, "premature", "Granted", copies=1)
    wait_copy(admin, bobs, alice.name, key, b"now-it-exists")


def test_a_namespace_without_a_user_is_told_so(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    """Nothing is materialized from a system namespace, and its UserSecrets and grants say
    why (so `--wait` fails with that reason rather than timing out)."""
    alice = user("alice")
    alice.namespace()  # where a copy would go, were the grant honoured
    namespace, key = "kube-public", unique_key()
    grant_name = f"{key}-to-alice"
    create_usersecret(admin, namespace, key, b"nobody's")
    create_grant(admin, namespace, grant_name, key, alice.name)
    try:
        why = (
            f"Namespace '{namespace}' belongs to no user (a system namespace, or one without "
            f"the 'usersecrets.io/user' label)"
        )
        for plural, name in ((USERSECRETS, key), (SECRETGRANTS, grant_name)):
            condition = ready_condition(wait_reason(admin, plural, namespace, name, "NoOwner"))
            assert condition is not None
            assert (condition["status"], condition["message"]) == ("False", why)

        def warned() -> list[client.CoreV1Event]:
            return events_of(admin, namespace, key)

        events = wait_for(warned, what="an Event NoOwner")
        assert isinstance(events, list)
        assert [(e.type, e.reason, e.message) for e in events] == [("Warning", "NoOwner", why)]
        selector = f"app.kubernetes.io/managed-by=usersecrets,usersecrets.io/key={key}"
        secrets = client.CoreV1Api(admin).list_secret_for_all_namespaces(label_selector=selector)
        assert secrets.items == []
    finally:
        delete_object(admin, USERSECRETS, namespace, key)
        delete_object(admin, SECRETGRANTS, namespace, grant_name)


def test_binary_value_round_trips_exactly(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    home = alice.namespace()
    key = unique_key()
    value = b"value\xff\x00"
    create_usersecret(alice.api, home, key, value)
    wait_copy(admin, home, alice.name, key, value)
    stored = get_object(alice.api, USERSECRETS, home, key)
    assert base64.b64decode(stored["spec"]["value"]) == value
    every_byte = bytes(range(256)) * 3
    set_value(alice.api, home, key, every_byte)
    wait_copy(admin, home, alice.name, key, every_byte)


def test_a_mebibyte_is_accepted_and_one_byte_more_is_refused(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    home = alice.namespace()
    marker = uuid.uuid4().hex.encode()
    largest = (marker * (MAX_VALUE_BYTES // len(marker) + 1))[:MAX_VALUE_BYTES]
    key = unique_key()
    create_usersecret(alice.api, home, key, largest)
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=[home])
    assert copy_value(admin, home, alice.name, key) == largest

    too_large = largest + b"x"
    with pytest.raises(ApiException) as refused:
        create_usersecret(alice.api, home, unique_key(), too_large)
    assert refused.value.status == 422
    body = (
        refused.value.body.decode() if isinstance(refused.value.body, bytes) else refused.value.body
    )
    assert VALUE_TOO_LARGE_MESSAGE in body
    assert marker.decode() not in body
    assert base64.b64encode(too_large).decode()[:64] not in body
    # Growing an existing one past the limit is refused the same way, and changes nothing.
    with pytest.raises(ApiException) as refused_update:
        set_value(alice.api, home, key, too_large)
    assert refused_update.value.status == 422
    assert VALUE_TOO_LARGE_MESSAGE in str(refused_update.value.body)
    assert marker.decode() not in str(refused_update.value.body)
    assert copy_value(admin, home, alice.name, key) == largest


def test_a_users_own_secret_with_the_copy_name_is_left_alone(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    home, taken = alice.namespace(), alice.namespace()
    core = client.CoreV1Api(alice.api)
    key = unique_key()
    mine = core.create_namespaced_secret(
        taken,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=copy_name(alice.name, key), labels={"mine": "yes"}),
            string_data={"hers": "untouched"},
        ),
    )

    create_usersecret(alice.api, home, key, b"operator's")

    wait_copy(admin, home, alice.name, key, b"operator's")
    obj = wait_reason(alice.api, USERSECRETS, home, key, "NameCollision", namespaces=[home])
    ready = ready_condition(obj)
    assert ready is not None
    assert ready["status"] == "False"
    assert taken in ready["message"]
    after = core.read_namespaced_secret(copy_name(alice.name, key), taken)
    assert after.metadata.resource_version == mine.metadata.resource_version
    assert after.metadata.labels == {"mine": "yes"}
    assert after.data == {"hers": base64.b64encode(b"untouched").decode()}

    # Once she removes hers, the copy takes its place.
    core.delete_namespaced_secret(copy_name(alice.name, key), taken)
    wait_copy(admin, taken, alice.name, key, b"operator's")
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, taken]))


def test_bob_cannot_make_the_operator_read_alices_secret(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, bob = user("alice"), user("bob")
    alices, bobs = alice.namespace(), bob.namespace()
    treasure = b"alice-only-" + uuid.uuid4().hex.encode()
    source = unique_key("private")
    client.CoreV1Api(alice.api).create_namespaced_secret(
        alices,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=source),
            data={"v": base64.b64encode(treasure).decode()},
        ),
    )
    objects = custom(bob.api)

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
    stored = get_object(bob.api, USERSECRETS, bobs, key)
    assert stored["spec"]["valueFrom"] == {"secretKeyRef": {"name": source, "key": "v"}}
    wait_reason(bob.api, USERSECRETS, bobs, key, "SourceMissing", namespaces=[], copies=0)

    # A later UserSecret, and a few changes to alice's Secret, change nothing for bob.
    other_key = unique_key()
    create_usersecret(bob.api, bobs, other_key, source=(source, "v"))
    wait_reason(bob.api, USERSECRETS, bobs, other_key, "SourceMissing")
    client.CoreV1Api(alice.api).patch_namespaced_secret(
        source, alices, {"data": {"v": base64.b64encode(treasure + b"-2").decode()}}
    )
    wait_reason(bob.api, USERSECRETS, bobs, key, "SourceMissing", namespaces=[], copies=0)
    wait_reason(bob.api, USERSECRETS, bobs, other_key, "SourceMissing", namespaces=[], copies=0)
    assert managed_copies(admin, bob.name) == {}
    everywhere = client.CoreV1Api(admin).list_secret_for_all_namespaces().items
    holders = [
        (s.metadata.namespace, s.metadata.name)
        for s in everywhere
        if any(treasure in base64.b64decode(v) for v in (s.data or {}).values())
    ]
    assert holders == [(alices, source)]


def test_bobs_grant_of_alices_key_shares_nothing(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice, bob, mallory = user("alice"), user("bob"), user("mallory")
    alices, bobs, mallorys = alice.namespace(), bob.namespace(), mallory.namespace()
    key = unique_key()
    create_usersecret(alice.api, alices, key, b"alice's own")
    wait_reason(alice.api, USERSECRETS, alices, key, MATERIALIZED, namespaces=[alices])

    # bob cannot create a grant in alice's namespace ...
    with pytest.raises(ApiException) as refused:
        create_grant(bob.api, alices, "steal", key, bob.name)
    assert refused.value.status == 403
    # ... and one in his own namespace names bob's (missing) secret of that key, not alice's.
    create_grant(bob.api, bobs, "to-me", key, bob.name)
    create_grant(bob.api, bobs, "to-mallory", key, mallory.name)
    to_me = wait_reason(bob.api, SECRETGRANTS, bobs, "to-me", "SecretNotFound", copies=0)
    assert to_me["status"]["uri"] == f"secret://{CLUSTER_NAME}/{bob.name}/{key}"
    wait_reason(bob.api, SECRETGRANTS, bobs, "to-mallory", "SecretNotFound", copies=0)
    wait_reason(alice.api, USERSECRETS, alices, key, MATERIALIZED, namespaces=[alices], copies=1)
    assert copy_value(admin, bobs, alice.name, key) is None
    assert copy_value(admin, mallorys, alice.name, key) is None
    assert set(managed_copies(admin, alice.name)) == {(alices, key)}
    assert managed_copies(admin, bob.name) == {}


def test_the_older_of_two_usersecrets_with_one_key_wins(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    # The older one lives in the namespace whose name sorts last, so that the tie-break on
    # names (for equal timestamps) cannot be what makes it win.
    younger_ns, older_ns = sorted([alice.namespace(), alice.namespace()])
    key = unique_key()
    older = create_usersecret(alice.api, older_ns, key, b"older")
    created = datetime.datetime.fromisoformat(older["metadata"]["creationTimestamp"])
    wait_for(
        lambda: datetime.datetime.now(datetime.UTC) >= created + datetime.timedelta(seconds=1),
        what="the next second, so that the two creation timestamps differ",
    )
    younger = create_usersecret(alice.api, younger_ns, key, b"younger")
    assert younger["metadata"]["creationTimestamp"] > older["metadata"]["creationTimestamp"]

    both = sorted([older_ns, younger_ns])
    wait_reason(alice.api, USERSECRETS, older_ns, key, MATERIALIZED, namespaces=both)
    conflict = wait_reason(alice.api, USERSECRETS, younger_ns, key, "Conflict", namespaces=[])
    ready = ready_condition(conflict)
    assert ready is not None
    assert ready["status"] == "False"
    assert older_ns in ready["message"]
    assert conflict["status"]["uri"] == f"secret://{CLUSTER_NAME}/{alice.name}/{key}"
    for namespace in both:
        assert copy_value(admin, namespace, alice.name, key) == b"older"
    # The younger one's updates do not leak into the copies while it loses ...
    set_value(alice.api, younger_ns, key, b"younger-2")
    wait_reason(alice.api, USERSECRETS, younger_ns, key, "Conflict", namespaces=[])
    for namespace in both:
        assert copy_value(admin, namespace, alice.name, key) == b"older"

    # ... and it takes over when the older one goes.
    delete_object(alice.api, USERSECRETS, older_ns, key)
    wait_reason(alice.api, USERSECRETS, younger_ns, key, MATERIALIZED, namespaces=both)
    for namespace in both:
        wait_copy(admin, namespace, alice.name, key, b"younger-2")


BURST = 200


@pytest.fixture
def restartable(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator, started again whatever happens to it in the test."""
    yield operator
    if operator.process is None:
        operator.start()


def test_kill_during_a_burst_converges_exactly(
    admin: client.ApiClient,
    user: Callable[[str], User],
    restartable: OperatorProcess,
) -> None:
    alice = user("alice")
    home, other = alice.namespace(), alice.namespace()
    core = client.CoreV1Api(admin)
    prefix = unique_key("burst")
    keys = [f"{prefix}-{i}" for i in range(BURST)]
    values = {key: f"{key}-v1-{uuid.uuid4().hex}".encode() for key in keys}

    for key in keys[: BURST // 2]:
        create_usersecret(alice.api, home, key, values[key])
    wait_for(lambda: managed_copies(admin, alice.name), what="the operator at work on the burst")
    restartable.stop(kill=True)  # SIGKILL: no cleanup, the Lease stays held until it expires

    # While it is down: more creates, updates, deletes, a copy deleted, a copy tampered with,
    # and a managed copy left over from a secret that no longer exists.
    for key in keys[BURST // 2 : BURST * 3 // 4]:
        create_usersecret(alice.api, home, key, values[key])
    for key in keys[:20]:
        values[key] = f"{key}-v2-{uuid.uuid4().hex}".encode()
        set_value(alice.api, home, key, values[key])
    for key in keys[20:40]:
        delete_object(alice.api, USERSECRETS, home, key)
        del values[key]
    live = sorted(values)
    copies_now = managed_copies(admin, alice.name)
    drifted = [key for key in live if (other, key) in copies_now][:2]
    if drifted:
        core.delete_namespaced_secret(copy_name(alice.name, drifted[0]), other)
        core.patch_namespaced_secret(
            copy_name(alice.name, drifted[-1]),
            other,
            {"data": {"value": base64.b64encode(b"tampered").decode()}},
        )
    ghost = f"{prefix}-ghost"
    core.create_namespaced_secret(
        other,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=copy_name(alice.name, ghost),
                labels=copy_labels(alice.name, ghost, "owner"),
            ),
            data={"value": base64.b64encode(b"left over").decode()},
        ),
    )

    restartable.start()
    for key in keys[BURST * 3 // 4 :]:
        create_usersecret(alice.api, home, key, values[key])

    copies = {
        (namespace, key): value for key, value in values.items() for namespace in (home, other)
    }
    expected = wait_converged(admin, alice.name, copies, timeout=90, what="after the restart")
    statuses = {key: {"namespaces": sorted([home, other])} for key in values}
    wait_for(
        lambda: settled(alice.api, home, USERSECRETS, statuses),
        timeout=30,
        interval=0.25,
        what="every UserSecret Ready after the restart",
    )
    assert managed_copies(admin, alice.name) == expected  # and it stays so
    metrics = scrape(restartable.metrics_port)
    assert "usersecrets_materialized_secrets" in metrics
    assert "usersecrets_reconcile_duration_seconds_count" in metrics


def test_a_namespace_stuck_terminating_does_not_block_the_others(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    alice = user("alice")
    home, doomed = alice.namespace(), alice.namespace()
    core = client.CoreV1Api(admin)
    key = unique_key()
    create_usersecret(alice.api, home, key, b"before")
    wait_copy(admin, doomed, alice.name, key, b"before")
    # A finalizer nobody removes keeps the namespace Terminating once its content is gone.
    core.create_namespaced_config_map(
        doomed,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="hold", finalizers=["test/hold"])),
    )
    try:
        core.delete_namespace(doomed)
        wait_copy(admin, doomed, alice.name, key, None)  # the namespace controller deleted it

        set_value(alice.api, home, key, b"after")

        wait_copy(admin, home, alice.name, key, b"after")
        wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED)
    finally:
        core.patch_namespaced_config_map("hold", doomed, {"metadata": {"finalizers": None}})


def test_a_namespace_refusing_its_copy_is_told_and_holds_up_no_other(
    admin: client.ApiClient,
    user: Callable[[str], User],
) -> None:
    """A quota allowing no Secret in one of alice's namespaces: her other namespace gets its
    copy, her status and an Event say where and why, and the copy comes once it fits."""
    alice = user("alice")
    home, full = alice.namespace(), alice.namespace()
    core = client.CoreV1Api(admin)
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-secrets"),
        spec=client.V1ResourceQuotaSpec(hard={"secrets": "0"}),
    )
    core.create_namespaced_resource_quota(full, quota)
    # What the quota controller (not run here) would count; admission reads it from the status.
    usage = {"hard": {"secrets": "0"}, "used": {"secrets": "0"}}
    core.patch_namespaced_resource_quota_status("no-secrets", full, {"status": usage})
    key, value = unique_key(), b"quota-canary-" + uuid.uuid4().hex.encode()

    create_usersecret(alice.api, home, key, value)

    wait_copy(admin, home, alice.name, key, value)
    obj = wait_reason(alice.api, USERSECRETS, home, key, "CopyFailed", namespaces=[home])
    ready = ready_condition(obj)
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["message"] == (
        f"The copy could not be written in 1 namespace ({full}: HTTP 403 Forbidden: "
        "exceeded quota: no-secrets, requested: secrets=1, used: secrets=0, limited: secrets=0). "
        "Usable in 1 namespace."
    )
    wait_for(
        lambda: [e.reason for e in events_of(alice.api, home, key)] == ["CopyFailed"],
        timeout=10,
        what="a Warning Event",
    )
    (event,) = events_of(alice.api, home, key)
    assert event.type == "Warning"
    assert value.decode() not in event.message

    core.delete_namespaced_resource_quota("no-secrets", full)

    wait_copy(admin, full, alice.name, key, value, timeout=90)  # the retries back off
    wait_reason(alice.api, USERSECRETS, home, key, MATERIALIZED, namespaces=sorted([home, full]))
