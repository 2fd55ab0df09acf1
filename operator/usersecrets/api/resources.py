"""The UserSecret and SecretGrant resources: the single source of truth for their CRD schemas.

`usersecrets.api.crds` turns these models into CustomResourceDefinitions, so every constraint the
API server enforces is written here once, next to the Python validation the operator and the
CLI use. Keep both in step: a constraint that only exists in one place lets the operator accept
what the cluster refuses, or the reverse.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from usersecrets import API_VERSION, GROUP, VERSION
from usersecrets.api.kinds import MAX_VALUE_BYTES, SECRETGRANT, USERSECRET, CrdNames

#: Base64 of MAX_VALUE_BYTES: 4 characters per started group of 3 bytes.
MAX_VALUE_BASE64_CHARS = -(-MAX_VALUE_BYTES // 3) * 4
#: Keys travel as label values on every copy, and label values stop at 63 characters.
MAX_KEY_LENGTH = 63
MAX_DNS_SUBDOMAIN_LENGTH = 253

DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
SECRET_DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105  (a pattern, not a password)
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MAX_CONDITION_MESSAGE_LENGTH = 32768

KEY_TOO_LONG_MESSAGE = (
    "metadata.name is the secret's key and must be at most 63 characters: "
    "every copy of the secret carries it as a label value"
)
VALUE_TOO_LARGE_MESSAGE = "spec.value must be at most 1 MiB (1048576 bytes) once base64-decoded"
#: Standard, padded base64 as Secret.data carries it (no line breaks).
BASE64_PATTERN = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
VALUE_NOT_BASE64_MESSAGE = "spec.value must be base64-encoded (standard alphabet, padded)"
VALUE_REQUIRED_MESSAGE = (
    "set one of spec.value (the secret's bytes, base64-encoded) "
    "or spec.valueFrom.secretKeyRef (a Secret in this namespace)"
)
VALUE_EXCLUSIVE_MESSAGE = "spec.value and spec.valueFrom are mutually exclusive: set only one"

ConditionStatus = Literal["True", "False", "Unknown"]


def _int64(**extra: Any) -> dict[str, Any]:
    return {"format": "int64", **extra}


class _Model(BaseModel):
    """Kubernetes spells fields in camelCase; Python code uses snake_case for the same fields.

    Inputs are never echoed in validation errors: they may hold secret values.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        hide_input_in_errors=True,
        frozen=True,
    )

    def to_json(self) -> dict[str, Any]:
        """Ready for the Kubernetes API: camelCase, and unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Spec(_Model):
    """Unknown spec fields are an error, as the API server prunes or (strictly) refuses them."""

    model_config = ConfigDict(extra="forbid")


class _Lenient(_Model):
    """Status and metadata may carry fields other writers added; reading must not fail on them."""

    model_config = ConfigDict(extra="ignore")


# --- Shared pieces -----------------------------------------------------------------------------


class SecretKeySelector(_Spec):
    """One key of a Secret in the UserSecret's own namespace (never another namespace)."""

    name: str = Field(
        description=(
            "Name of a Secret in the same namespace as this UserSecret. "
            "Other namespaces cannot be referenced."
        ),
        min_length=1,
        max_length=MAX_DNS_SUBDOMAIN_LENGTH,
        pattern=DNS1123_SUBDOMAIN_PATTERN,
    )
    key: str = Field(
        description="Key inside that Secret's data whose bytes become the secret's value.",
        min_length=1,
        max_length=MAX_DNS_SUBDOMAIN_LENGTH,
        pattern=SECRET_DATA_KEY_PATTERN,
    )


class ValueSource(_Spec):
    """Where a value maintained by another tool (Sealed Secrets, External Secrets, SOPS) lives."""

    secret_key_ref: SecretKeySelector = Field(
        description=(
            "Selects a key of a Secret in this namespace. The UserSecret follows it: "
            "when the Secret changes, every copy changes."
        ),
    )


class Condition(_Lenient):
    """Kubernetes API conventions, so generic tooling (kubectl wait, Argo CD) understands it."""

    type: str = Field(
        description="Type of condition in CamelCase; this operator reports `Ready`.",
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: int | None = Field(
        None,
        description="metadata.generation of the object this condition was computed from.",
        ge=0,
        json_schema_extra=_int64(),
    )
    last_transition_time: datetime = Field(
        description="Last time the condition's status changed.",
    )
    reason: str = Field(
        description="Machine-readable CamelCase reason for the condition's last transition.",
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
    )
    message: str = Field(
        description="Human-readable details. Never contains a secret value.",
        max_length=MAX_CONDITION_MESSAGE_LENGTH,
    )


_CONDITIONS_SCHEMA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class ObjectMeta(_Lenient):
    """The few metadata fields the operator reads; the API server owns the full schema."""

    name: str = Field(description="Name of the object, unique within its namespace.")
    namespace: str | None = Field(None, description="Namespace of the object.")
    uid: str | None = Field(None, description="Unique identifier assigned by the API server.")
    generation: int | None = Field(None, description="Incremented on every spec change.")
    resource_version: str | None = Field(None, description="Opaque version for concurrency.")
    creation_timestamp: str | None = Field(None, description="RFC 3339 creation time.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the object.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of the object."
    )


class UserSecretMeta(ObjectMeta):
    """A UserSecret's name is its key, which copies carry as a label value (63 characters)."""

    name: str = Field(
        description="The secret's key.",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=DNS1123_SUBDOMAIN_PATTERN,
    )


_API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. "
    "Servers should convert recognized schemas to the latest internal value, and may reject "
    "unrecognized values."
)
_KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. "
    "Servers may infer this from the endpoint the client submits requests to. In CamelCase."
)


class Resource(_Lenient):
    """A kind of this API: its names and apiVersion; each kind adds kind, metadata, spec, status."""

    NAMES: ClassVar[CrdNames]

    api_version: str = Field(API_VERSION, description=_API_VERSION_DESCRIPTION)


class Status(_Lenient):
    """What the operator observed and did, for `kubectl get` and `kubectl wait`."""

    uri: str | None = Field(
        None,
        description="How pods and people refer to the secret: secret://CLUSTER/OWNER/KEY.",
    )
    observed_generation: int | None = Field(
        None,
        description="metadata.generation this status was computed from.",
        ge=0,
        json_schema_extra=_int64(),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Current state. `Ready` is True when every namespace that may use the secret has "
            "a copy of its current value."
        ),
        json_schema_extra=_CONDITIONS_SCHEMA,
    )
    copies: int | None = Field(
        None,
        description="Number of namespaces where a copy of the secret can be used.",
        ge=0,
        json_schema_extra=_int64(),
    )


# --- UserSecret --------------------------------------------------------------------------------


class UserSecretSpec(_Spec):
    """Exactly one of `value` and `valueFrom`; the rules below hold in Python and in the CRD."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.value) || has(self.valueFrom)",
                    "message": VALUE_REQUIRED_MESSAGE,
                },
                {
                    "rule": "!(has(self.value) && has(self.valueFrom))",
                    "message": VALUE_EXCLUSIVE_MESSAGE,
                },
                # On the object, not on the string: the API server quotes a failing string's
                # value in its error, and this value is a secret. Not `format: byte`, whose
                # CEL conversion uses the URL-safe alphabet and refuses '+' and '/'
                # (kubernetes/kube-openapi#633); the decoded size is computed from the text.
                {
                    "rule": (
                        "!has(self.value) || size(self.value) / 4 * 3 - "
                        "(self.value.endsWith('==') ? 2 : self.value.endsWith('=') ? 1 : 0)"
                        f" <= {MAX_VALUE_BYTES}"
                    ),
                    "fieldPath": ".value",
                    "message": VALUE_TOO_LARGE_MESSAGE,
                },
            ]
        }
    )

    value: str | None = Field(
        None,
        description=(
            "The secret's bytes, base64-encoded (like a Secret's data). At most 1 MiB decoded. "
            "Mutually exclusive with valueFrom."
        ),
        max_length=MAX_VALUE_BASE64_CHARS,
        repr=False,
        # A pattern, not CEL: Go's linear-time regexp has no CEL cost limit at 1 MiB.
        pattern=BASE64_PATTERN,
    )
    value_from: ValueSource | None = Field(
        None,
        description=(
            "Take the value from a Secret in this namespace, for secrets managed by GitOps "
            "tools. Mutually exclusive with value."
        ),
    )

    _decoded: bytes | None = PrivateAttr(default=None)

    @field_validator("value")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            _decode(value)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> UserSecretSpec:
        if self.value is None and self.value_from is None:
            raise ValueError(VALUE_REQUIRED_MESSAGE)
        if self.value is not None and self.value_from is not None:
            raise ValueError(VALUE_EXCLUSIVE_MESSAGE)
        if self.value is not None:
            self._decoded = _decode(self.value)
        return self

    def decoded_value(self) -> bytes | None:
        """The inline value's bytes, or None when the value comes from a Secret."""
        return self._decoded


def _decode(value: str) -> bytes:
    """Accept exactly what the CRD's rules accept; never echo the input."""
    if not re.fullmatch(BASE64_PATTERN, value):
        raise ValueError(VALUE_NOT_BASE64_MESSAGE)
    decoded = base64.b64decode(value)
    if len(decoded) > MAX_VALUE_BYTES:
        raise ValueError(VALUE_TOO_LARGE_MESSAGE)
    return decoded


class UserSecretStatus(Status):
    """Also names the owner's own namespaces that hold a copy (never a grantee's)."""

    namespaces: list[str] = Field(
        default_factory=list,
        description=(
            "Sorted names of the owner's namespaces where the secret can be used. The "
            "namespaces of users it is shared with are counted in copies, never named."
        ),
    )


class UserSecret(Resource):
    """A user's personal, named secret; its owner is the user of its namespace."""

    NAMES: ClassVar[CrdNames] = USERSECRET

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.metadata.name) || self.metadata.name.size() <= 63",
                    "message": KEY_TOO_LONG_MESSAGE,
                }
            ]
        }
    )

    kind: str = Field("UserSecret", description=_KIND_DESCRIPTION)
    metadata: UserSecretMeta = Field(description="Standard object metadata.")
    spec: UserSecretSpec = Field(
        description=(
            "The secret's value: inline (value) or taken from a Secret in this namespace "
            "(valueFrom). The name of the UserSecret is the secret's key."
        ),
    )
    status: UserSecretStatus | None = Field(
        None,
        description=(
            "Observed state, maintained by the operator: the owner's namespaces where the "
            "secret can be used, and how many namespaces hold a copy in all."
        ),
    )


# --- SecretGrant -------------------------------------------------------------------------------


class SecretGrantSpec(_Spec):
    """A grant lives in the owner's namespace, so only the owner (by RBAC) can share."""

    secret_name: str = Field(
        description="Name (key) of a UserSecret in this namespace to share.",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=DNS1123_SUBDOMAIN_PATTERN,
    )
    user: str = Field(
        description=(
            "The user to share it with. Every namespace of that user gets a copy; "
            "deleting the grant takes them away."
        ),
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
    )


class SecretGrant(Resource):
    """Shares one UserSecret with one other user until the grant is deleted."""

    NAMES: ClassVar[CrdNames] = SECRETGRANT

    kind: str = Field("SecretGrant", description=_KIND_DESCRIPTION)
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: SecretGrantSpec = Field(
        description="Which UserSecret of this namespace is shared, and with whom.",
    )
    status: Status | None = Field(
        None,
        description=(
            "Observed state, maintained by the operator, so the owner sees the effect of "
            "sharing: in how many of the grantee's namespaces the secret can now be used "
            "(never their names)."
        ),
    )


#: Every kind this package defines, in the order the CRDs are generated.
RESOURCES: tuple[type[Resource], ...] = (UserSecret, SecretGrant)

__all__ = [
    "API_VERSION",
    "GROUP",
    "MAX_VALUE_BASE64_CHARS",
    "MAX_VALUE_BYTES",
    "RESOURCES",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "CrdNames",
    "ObjectMeta",
    "Resource",
    "SecretGrant",
    "SecretGrantSpec",
    "SecretKeySelector",
    "Status",
    "UserSecret",
    "UserSecretMeta",
    "UserSecretSpec",
    "UserSecretStatus",
    "ValueSource",
]
