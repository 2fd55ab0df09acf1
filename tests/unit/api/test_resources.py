"""The models accept what the API server accepts, and refuse the rest without echoing values."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from usersecrets.api.resources import (
    SecretGrant,
    SecretGrantSpec,
    UserSecret,
    UserSecretSpec,
    UserSecretStatus,
)

CANARY = b"canary-7f3a9c-do-not-leak"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_inline_value_is_decoded() -> None:
    spec = UserSecretSpec.model_validate({"value": b64(CANARY)})
    assert spec.decoded_value() == CANARY
    assert spec.value_from is None


def test_value_from_same_namespace_secret() -> None:
    spec = UserSecretSpec.model_validate(
        {"valueFrom": {"secretKeyRef": {"name": "sealed-db", "key": "password"}}}
    )
    assert spec.value_from is not None
    assert spec.value_from.secret_key_ref.name == "sealed-db"
    assert spec.value_from.secret_key_ref.key == "password"
    assert spec.decoded_value() is None


def test_python_names_work_too() -> None:
    spec = UserSecretSpec(value=b64(b"x"))
    assert spec.to_json() == {"value": b64(b"x")}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({}, "set one of"),
        (
            {"value": b64(b"x"), "valueFrom": {"secretKeyRef": {"name": "a", "key": "b"}}},
            "mutually exclusive",
        ),
        ({"value": "not base64!"}, "pattern"),
        (
            {"valueFrom": {"secretKeyRef": {"name": "a", "key": "b", "namespace": "other"}}},
            "namespace",
        ),
        ({"valueFrom": {"secretKeyRef": {"name": "Not_DNS", "key": "b"}}}, "name"),
        ({"valueFrom": {"secretKeyRef": {"name": "a", "key": "bad/key"}}}, "key"),
        ({"valueFrom": {}}, "secretKeyRef"),
    ],
)
def test_invalid_specs(spec: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        UserSecretSpec.model_validate(spec)


def test_size_limit_is_on_decoded_bytes() -> None:
    UserSecretSpec.model_validate({"value": b64(b"\0" * 1024 * 1024)})
    with pytest.raises(ValidationError, match="1 MiB"):
        UserSecretSpec.model_validate({"value": b64(b"\0" * (1024 * 1024 + 1))})


def test_base64_must_be_standard_and_unwrapped_as_the_crd_pattern_says() -> None:
    wrapped = base64.encodebytes(CANARY * 10).decode()
    assert "\n" in wrapped
    with pytest.raises(ValidationError):
        UserSecretSpec.model_validate({"value": wrapped})
    with pytest.raises(ValidationError):
        UserSecretSpec.model_validate(
            {"value": base64.urlsafe_b64encode(b"value\xff\x00").decode()}
        )
    binary = UserSecretSpec.model_validate({"value": b64(b"value\xff\x00")})
    assert binary.decoded_value() == b"value\xff\x00"


def test_errors_and_repr_never_show_the_value() -> None:
    encoded = b64(CANARY)
    spec = UserSecretSpec.model_validate({"value": encoded})
    assert encoded not in repr(spec)
    assert encoded not in str(spec)
    bad = {"value": encoded, "valueFrom": {"secretKeyRef": {"name": "a", "key": "b"}}}
    with pytest.raises(ValidationError) as info:
        UserSecretSpec.model_validate(bad)
    assert encoded not in str(info.value)
    not_b64 = CANARY.decode() + "!"
    with pytest.raises(ValidationError) as info:
        UserSecretSpec.model_validate({"value": not_b64})
    assert CANARY.decode() not in str(info.value)
    assert info.value.__cause__ is None


def _usersecret(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "usersecrets.io/v1alpha1",
        "kind": "UserSecret",
        "metadata": {"name": name, "namespace": "alice", "generation": 2, "uid": "u"},
        "spec": {"value": b64(b"x")},
    }


def test_whole_object_parses_and_ignores_unknown_metadata() -> None:
    body = _usersecret("db-pass")
    body["metadata"] = {**body["metadata"], "managedFields": [{}]}
    obj = UserSecret.model_validate(body)
    assert obj.metadata.name == "db-pass"
    assert obj.metadata.generation == 2
    assert obj.status is None


@pytest.mark.parametrize("name", ["a" * 64, "Upper", "under_score", "-lead"])
def test_usersecret_name_is_a_short_dns_subdomain(name: str) -> None:
    with pytest.raises(ValidationError):
        UserSecret.model_validate(_usersecret(name))


def test_usersecret_name_at_63_is_fine() -> None:
    UserSecret.model_validate(_usersecret("a" * 63))
    UserSecret.model_validate(_usersecret("aws.credentials"))


def test_status_round_trip() -> None:
    status = UserSecretStatus.model_validate(
        {
            "uri": "secret://c/alice/db",
            "observedGeneration": 1,
            "copies": 2,
            "namespaces": ["a", "b"],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Materialized",
                    "message": "ok",
                    "lastTransitionTime": "2024-01-01T00:00:00Z",
                }
            ],
            "somethingNew": 1,
        }
    )
    assert status.to_json()["conditions"][0]["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    assert "somethingNew" not in status.to_json()


def test_secret_grant() -> None:
    grant = SecretGrant.model_validate(
        {
            "metadata": {"name": "g", "namespace": "alice"},
            "spec": {"secretName": "db-pass", "user": "Bob.Smith_2"},
        }
    )
    assert grant.spec.user == "Bob.Smith_2"
    assert grant.kind == "SecretGrant"


@pytest.mark.parametrize(
    "spec",
    [
        {"secretName": "db", "user": ""},
        {"secretName": "db", "user": "b" * 64},
        {"secretName": "db", "user": "-bob"},
        {"secretName": "db", "user": "bob/x"},
        {"secretName": "a" * 64, "user": "bob"},
        {"secretName": "db"},
        {"secretName": "db", "user": "bob", "namespace": "x"},
    ],
)
def test_invalid_grants(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SecretGrantSpec.model_validate(spec)
