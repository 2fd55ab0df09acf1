"""Values are encrypted at rest: read etcd directly, past the apiserver.

The local control plane runs its apiserver with the EncryptionConfiguration that SECURITY.md
gives operators (`controlplane.encryption_configuration`: secretbox for Secrets and for
UserSecrets, with a random key per cluster). A canary value goes in as a UserSecret's
spec.value and as a valueFrom source, comes out as copies; in etcd every one of those objects is
ciphertext, while through the API each reads back as it was written. A ConfigMap holding the
same canary, which the configuration does not cover, is found in plain text: the reading of etcd
would see a value that was not encrypted.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import pytest
from kubernetes import client

from fakes import copy_name
from kube import create_usersecret, get_object, wait_copy
from usersecrets import GROUP
from usersecrets_dev.controlplane import ENCRYPTED_PREFIX, ControlPlane
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration


def encodings(value: bytes) -> list[bytes]:
    """The canary as it would show in a stored object: raw (protobuf), base64 (JSON)."""
    return [value, base64.b64encode(value)]


def assert_encrypted(cluster: ControlPlane, key: str, canary: bytes) -> None:
    stored = cluster.etcd_value(key)
    assert stored is not None, f"nothing in etcd at {key}"
    assert stored.startswith(ENCRYPTED_PREFIX), stored[:40]
    for form in encodings(canary):
        assert form not in stored


def test_usersecrets_and_secrets_are_stored_encrypted_and_read_back_in_clear(
    cluster: ControlPlane,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    operator: OperatorProcess,  # makes the copies
) -> None:
    alice = users("alice")
    home, other = user_namespace(alice), user_namespace(alice)
    as_alice = user_client(alice)
    inline = f"canary-inline-{uuid.uuid4().hex}".encode()
    sourced = f"canary-source-{uuid.uuid4().hex}".encode()

    create_usersecret(as_alice, home, "inline", inline)
    client.CoreV1Api(as_alice).create_namespaced_secret(
        home,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="source"),
            data={"token": base64.b64encode(sourced).decode()},
        ),
    )
    create_usersecret(as_alice, home, "sourced", source=("source", "token"))
    for namespace in (home, other):
        wait_copy(admin, namespace, alice, "inline", inline)
        wait_copy(admin, namespace, alice, "sourced", sourced)

    # Through the API, everything reads back as written.
    assert get_object(as_alice, "usersecrets", home, "inline")["spec"]["value"] == (
        base64.b64encode(inline).decode()
    )
    source = client.CoreV1Api(as_alice).read_namespaced_secret("source", home)
    assert base64.b64decode(source.data["token"]) == sourced

    # In etcd, none of it is readable.
    assert_encrypted(cluster, f"/registry/{GROUP}/usersecrets/{home}/inline", inline)
    assert_encrypted(cluster, f"/registry/secrets/{home}/source", sourced)
    for namespace in (home, other):
        for key, value in (("inline", inline), ("sourced", sourced)):
            copy = copy_name(alice, key)
            assert_encrypted(cluster, f"/registry/secrets/{namespace}/{copy}", value)

    # What the configuration does not cover is stored as it is: the same reading sees it.
    client.CoreV1Api(admin).create_namespaced_config_map(
        home,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="plain"), data={"v": inline.decode()}),
    )
    plain = cluster.etcd_value(f"/registry/configmaps/{home}/plain")
    assert plain is not None
    assert not plain.startswith(b"k8s:enc:")
    assert inline in plain
