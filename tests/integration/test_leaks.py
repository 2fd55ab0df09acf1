"""A secret value exists only in its UserSecret (or source) and in its copies: proven with canaries.

Canary values go through every path the operator has (create, update, grant, revoke, valueFrom,
a source that disappears, a conflict, delete); then no log line (at DEBUG), Event, annotation,
status or metric may contain one, raw or base64-encoded at any alignment.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from kubernetes import client

import policy_webhook
from fakes import copy_name
from kube import (
    SECRETGRANTS,
    USERSECRETS,
    create_grant,
    create_usersecret,
    custom,
    delete_object,
    ready_condition,
    scrape,
    set_value,
    wait_copy,
    wait_reason,
)
from usersecrets import GROUP, VERSION
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration


def new_canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


def encoded_forms(canary: str) -> set[str]:
    """The canary raw, in hex, and in base64 at each of the 3 alignments it can have in a value.

    Only the characters that depend on the canary's bytes alone are kept, so the form is found
    whatever surrounds it in a longer, encoded value.
    """
    raw = canary.encode()
    forms = {canary, raw.hex()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        start = 4 if shift else 0
        end = (shift + len(raw)) // 3 * 4
        forms.add(encoded[start:end])
    return forms


def found_in(text: str, canaries: Iterable[str]) -> list[str]:
    return sorted(
        form for canary in canaries for form in encoded_forms(canary) if form and form in text
    )


def value_of(canary: str) -> bytes:
    """A realistic value: the canary with something before and after it."""
    return f"password={canary}\n".encode()


def assert_nowhere(
    admin: client.ApiClient,
    operator: OperatorProcess,
    namespaces: list[str],
    canaries: list[str],
) -> None:
    core = client.CoreV1Api(admin)
    serialize = admin.sanitize_for_serialization

    log = operator.log.read_text(errors="replace")
    assert all(namespace in log for namespace in namespaces), "not the log of this operator"
    leaking_lines = [line for line in log.splitlines() if found_in(line, canaries)]
    assert not leaking_lines, f"the operator log holds a value: {leaking_lines[:3]}"

    for namespace in namespaces:
        for event in core.list_namespaced_event(namespace).items:
            text = json.dumps(serialize(event))
            assert not found_in(text, canaries), f"Event {event.metadata.name} holds a value"

    annotated: list[tuple[str, Any]] = []
    for plural in (USERSECRETS, SECRETGRANTS):
        items = custom(admin).list_cluster_custom_object(GROUP, VERSION, plural)["items"]
        for item in items:
            where = f"{plural} {item['metadata']['namespace']}/{item['metadata']['name']}"
            annotated.append((where, item["metadata"].get("annotations")))
            status = json.dumps(item.get("status") or {})
            assert not found_in(status, canaries), f"the status of {where} holds a value"
    for secret in core.list_secret_for_all_namespaces().items:
        where = f"Secret {secret.metadata.namespace}/{secret.metadata.name}"
        annotated.append((where, secret.metadata.annotations))
    for namespace_object in core.list_namespace().items:
        annotated.append(
            (f"Namespace {namespace_object.metadata.name}", namespace_object.metadata.annotations)
        )
    for where, found in annotated:
        text = json.dumps(found or {})
        assert not found_in(text, canaries), f"an annotation of {where} holds a value"

    assert not found_in(scrape(operator.metrics_port), canaries), "the metrics hold a value"


def test_values_appear_nowhere_but_in_secrets(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    operator: OperatorProcess,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{suffix}", f"bob-{suffix}"
    home, second = user_namespace(alice), user_namespace(alice)
    bobs = user_namespace(bob)
    namespaces = [home, second, bobs]
    as_alice = user_client(alice)
    core = client.CoreV1Api(as_alice)
    canaries = [new_canary() for _ in range(6)]
    created, updated, sourced, resourced, conflicting, collided = canaries
    key, from_source, source = f"inline-{suffix}", f"from-{suffix}", f"sealed-{suffix}"

    # Create, update.
    create_usersecret(as_alice, home, key, value_of(created))
    wait_copy(admin, second, alice, key, value_of(created))
    # The detector finds the value where it must be: in the copy and in the UserSecret.
    copy = client.CoreV1Api(admin).read_namespaced_secret(copy_name(alice, key), second)
    assert found_in(json.dumps(copy.data), [created])
    stored = custom(as_alice).get_namespaced_custom_object(GROUP, VERSION, home, USERSECRETS, key)
    assert found_in(json.dumps(stored["spec"]), [created])
    assert not found_in(json.dumps(stored["spec"]), [updated])
    set_value(as_alice, home, key, value_of(updated))
    wait_copy(admin, second, alice, key, value_of(updated))

    # Grant, then revoke.
    create_grant(as_alice, home, "share", key, bob)
    wait_copy(admin, bobs, alice, key, value_of(updated))
    wait_reason(as_alice, SECRETGRANTS, home, "share", "Granted", copies=1)
    delete_object(as_alice, SECRETGRANTS, home, "share")
    wait_copy(admin, bobs, alice, key, None)

    # valueFrom: the source is read, changes, goes away.
    core.create_namespaced_secret(
        home,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=source),
            data={"v": base64.b64encode(value_of(sourced)).decode()},
        ),
    )
    create_usersecret(as_alice, home, from_source, source=(source, "v"))
    wait_copy(admin, second, alice, from_source, value_of(sourced))
    core.patch_namespaced_secret(
        source, home, {"data": {"v": base64.b64encode(value_of(resourced)).decode()}}
    )
    wait_copy(admin, second, alice, from_source, value_of(resourced))

    # A conflict: the same key in her other namespace, with another value. creationTimestamp
    # has whole seconds: let one pass so that the first is the older one.
    time.sleep(1.1)
    create_usersecret(as_alice, second, key, value_of(conflicting))
    wait_reason(as_alice, USERSECRETS, second, key, "Conflict")
    # A name collision with a Secret of her own holding a value.
    collision_key = f"collide-{suffix}"
    core.create_namespaced_secret(
        second,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=copy_name(alice, collision_key)),
            data={"v": base64.b64encode(b"hers").decode()},
        ),
    )
    create_usersecret(as_alice, home, collision_key, value_of(collided))
    wait_reason(as_alice, USERSECRETS, home, collision_key, "NameCollision")

    # Everything alive: statuses, Events and annotations exist and say nothing of the values.
    assert_nowhere(admin, operator, namespaces, canaries)

    core.delete_namespaced_secret(source, home)
    wait_reason(as_alice, USERSECRETS, home, from_source, "SourceMissing")
    for namespace, name in ((home, key), (home, from_source), (second, key), (home, collision_key)):
        delete_object(as_alice, USERSECRETS, namespace, name)
    for namespace in (home, second):
        wait_copy(admin, namespace, alice, key, None)
        wait_copy(admin, namespace, alice, from_source, None)
    wait_copy(admin, home, alice, collision_key, None)

    assert_nowhere(admin, operator, namespaces, canaries)


def test_a_refusal_that_echoes_the_copy_is_scrubbed_everywhere(
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    operator: OperatorProcess,
) -> None:
    """A policy that refuses bob's copy and echoes it, data and all, in a message shaped like
    the apiserver's own: what reaches alice's statuses and Events has the value scrubbed."""
    suffix = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{suffix}", f"bob-{suffix}"
    home, bobs = user_namespace(alice), user_namespace(bob)
    as_alice = user_client(alice)
    canary = new_canary()
    key = f"echoed-{suffix}"

    def echo(request: dict[str, Any]) -> dict[str, Any]:
        copy = request["object"]
        return policy_webhook.refuse(f"exceeded quota: {copy['data']} in {json.dumps(copy)}")

    with (
        policy_webhook.serving(echo) as (port, ca_pem),
        policy_webhook.registered(
            admin, f"echo-{suffix}", port, ca_pem, resource="secrets", namespace=bobs
        ),
    ):
        create_usersecret(as_alice, home, key, value_of(canary))
        create_grant(as_alice, home, "share", key, bob)
        found = wait_reason(as_alice, SECRETGRANTS, home, "share", "CopyFailed")
        ready = ready_condition(found)
        assert ready is not None
        message = ready["message"]
        assert message.startswith(
            "The copy could not be written in 1 namespace (1 namespace of users it is shared "
            "with: HTTP 403 Forbidden: exceeded quota: {'value': '<redacted>'} in {"
        ), message
        assert "<redacted>" in message
        wait_reason(as_alice, USERSECRETS, home, key, "CopyFailed")
        assert_nowhere(admin, operator, [home, bobs], [canary])
