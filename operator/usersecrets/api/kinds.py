"""The kinds' names and the size of a value: what the CLI and the web UI need of the API, without
the models (importing pydantic would cost the CLI a noticeable part of a second)."""

from __future__ import annotations

from dataclasses import dataclass

from usersecrets import GROUP

#: A decoded secret value may be at most 1 MiB, like a Kubernetes Secret.
MAX_VALUE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CrdNames:
    """How a kind is named in the API; kept beside its model so the CRD cannot drift from it."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    categories: tuple[str, ...]

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


USERSECRET = CrdNames(
    kind="UserSecret",
    plural="usersecrets",
    singular="usersecret",
    short_names=("usec",),
    categories=("usersecrets",),
)
SECRETGRANT = CrdNames(
    kind="SecretGrant",
    plural="secretgrants",
    singular="secretgrant",
    short_names=("sgrant",),
    categories=("usersecrets",),
)
