"""The pod patch: secret volumes, subPath mounts and secretKeyRef env vars.

Pure, so the webhook answers in milliseconds and the same input always gives the same patch;
idempotent, so a reinvocation (policy IfNeeded) or a pod spec copied from a running pod yields
an empty patch instead of duplicates.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usersecrets.rules import naming
from usersecrets.rules.references import (
    CONTAINERS_ANNOTATION,
    References,
    SecretRef,
    normalize_path,
)

VOLUME_PREFIX = "usersecrets-"
#: A secret volume's files belong to root, and to the group fsGroup when the pod sets one: the
#: mode is the least open one that lets the container's user read.
#: Every targeted container is known to run as root (runAsUser: 0): owner-only, as on Neu.ro.
MODE_OWNER = 0o400
#: Any user, with an fsGroup: kubelet makes it the file's group and every process's extra group.
MODE_GROUP = 0o440
#: Any other user (set in the pod, or only in the image, which the webhook cannot see): only
#: "other" can be that user, so only the container's own processes see the file.
MODE_ALL = 0o444
CONTAINER_FIELDS = ("initContainers", "containers")
#: Mounts and variables one pod may get: a bound on the size of a patch (and of the memory
#: and time it takes), far above what a job needs.
MAX_ADDED = 4096
#: Container names a message lists.
LISTED = 10

JsonPatch = list[dict[str, Any]]


@dataclass(frozen=True)
class Injection:
    """The RFC 6902 patch that adds what was asked for, and every conflict found."""

    patch: JsonPatch
    errors: tuple[str, ...]


def secret_name(ref: SecretRef) -> str:
    return naming.copy_name(ref.owner, ref.key)


@functools.lru_cache(maxsize=4096)
def volume_name(secret: str) -> str:
    """A DNS-1123 label of 22 characters: Secret names are too long to be volume names."""
    return VOLUME_PREFIX + hashlib.sha256(secret.encode()).hexdigest()[:10]


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _matches(actual: object, wanted: object) -> bool:
    """Whether `actual` is what we would add, tolerating fields the API server defaulted."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and _matches(actual[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(map(_matches, actual, wanted))
        )
    return type(actual) is type(wanted) and actual == wanted


def _root(pod_context: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    """Whether the container surely runs as root: only `runAsUser: 0` says so. Without it the
    image's USER decides, and many images (most ML ones) name a non-root user there."""
    context = _dict(container.get("securityContext"))
    uid = context.get("runAsUser", pod_context.get("runAsUser"))
    return type(uid) is int and uid == 0


def file_mode(pod_context: Mapping[str, Any], containers: list[Mapping[str, Any]]) -> int:
    """The mode of the secret files that `containers` of a pod with `pod_context` will read."""
    if all(_root(pod_context, c) for c in containers):
        return MODE_OWNER
    return MODE_GROUP if type(pod_context.get("fsGroup")) is int else MODE_ALL


def _name(item: object, field: str = "name") -> str | None:
    value = _dict(item).get(field)
    return value if isinstance(value, str) else None


def _mount_path(mount: object) -> str | None:
    """Normalized like ours, so that `/a/b/` on the pod conflicts with our `/a/b`."""
    path = _name(mount, "mountPath")
    normal = normalize_path(path or "")
    return normal if isinstance(normal, str) else path


def _append(
    patch: JsonPatch, owner: Mapping[str, Any], field: str, pointer: str, items: list[Any]
) -> None:
    """Append to owner[field], creating it when absent."""
    if not items:
        return
    if isinstance(owner.get(field), list):
        patch.extend({"op": "add", "path": f"{pointer}/-", "value": item} for item in items)
    else:
        patch.append({"op": "add", "path": pointer, "value": items})


def _prepend(
    patch: JsonPatch, owner: Mapping[str, Any], field: str, pointer: str, items: list[Any]
) -> None:
    """Insert before the pod's own entries, so that they can use ours in `$(NAME)`."""
    if not items:
        return
    if isinstance(owner.get(field), list):
        patch.extend(
            {"op": "add", "path": f"{pointer}/{i}", "value": item} for i, item in enumerate(items)
        )
    else:
        patch.append({"op": "add", "path": pointer, "value": items})


def inject(pod: Mapping[str, Any], references: References) -> Injection:
    """Add what `references` asks for to the targeted containers of `pod`.

    The pod may be any JSON value shaped like a pod: fields of the wrong type count as absent
    (and are replaced if we need them), so garbage never makes this raise.
    """
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return Injection([], ())
    errors: list[str] = []
    targets: list[tuple[str, dict[str, Any]]] = []
    for field in CONTAINER_FIELDS:
        targets += [
            (f"/spec/{field}/{i}", c)
            for i, c in enumerate(_list(spec.get(field)))
            if isinstance(c, dict)
        ]
    if references.containers is not None:
        known = [_name(c) for _, c in targets]
        named = [f"'{n}'" for n in known if n is not None]
        has = ", ".join(named[:LISTED]) or "none"
        if len(named) > LISTED:
            has += f" and {len(named) - LISTED} more"
        errors.extend(
            f"Unknown container '{name}' in {CONTAINERS_ANNOTATION} (the pod has {has})"
            for name in references.containers
            if name not in known
        )
        targets = [(p, c) for p, c in targets if _name(c) in references.containers]

    patch: JsonPatch = []
    if not targets or not (references.files or references.env):
        return Injection(patch, tuple(errors))
    asked = len(references.files) + len(references.env)
    if len(targets) * asked > MAX_ADDED:
        errors.append(
            f"The pod asks for {len(targets) * asked} secret files and variables ({asked} in "
            f"each of {len(targets)} containers); at most {MAX_ADDED} are added"
        )
        return Injection(patch, tuple(errors))

    mode = file_mode(_dict(spec.get("securityContext")), [c for _, c in targets])

    volumes: dict[str | None, object] = {}
    for item in _list(spec.get("volumes")):
        volumes.setdefault(_name(item), item)
    new_volumes: list[dict[str, Any]] = []
    for secret in dict.fromkeys(secret_name(f.ref) for f in references.files):
        vname = volume_name(secret)
        volume: dict[str, Any] = {
            "name": vname,
            "secret": {
                "secretName": secret,
                "defaultMode": mode,
                "items": [{"key": naming.DATA_KEY, "path": naming.DATA_KEY, "mode": mode}],
            },
        }
        existing = volumes.setdefault(vname, volume)
        if existing is volume:
            new_volumes.append(volume)
        elif not _matches(existing, volume):
            errors.append(
                f"The pod already has a volume named '{vname}' that differs from the "
                f"one usersecrets adds for Secret '{secret}'"
            )
    _append(patch, spec, "volumes", "/spec/volumes", new_volumes)

    for pointer, container in targets:
        name = _name(container)
        mounts = {_mount_path(m): m for m in reversed(_list(container.get("volumeMounts")))}
        new_mounts = []
        for f in references.files:
            mount = {
                "name": volume_name(secret_name(f.ref)),
                "mountPath": f.path,
                "subPath": naming.DATA_KEY,
                "readOnly": True,
            }
            if f.path not in mounts:
                new_mounts.append(mount)
            elif not _matches(mounts[f.path], mount):
                errors.append(f"Container '{name}' already mounts a volume at '{f.path}'")
        _append(patch, container, "volumeMounts", f"{pointer}/volumeMounts", new_mounts)

        env = {_name(e): e for e in reversed(_list(container.get("env")))}
        new_env = []
        for e in references.env:
            var = {
                "name": e.name,
                "valueFrom": {"secretKeyRef": {"name": secret_name(e.ref), "key": naming.DATA_KEY}},
            }
            if e.name not in env:
                new_env.append(var)
            elif not _matches(env[e.name], var):
                errors.append(f"Container '{name}' already has environment variable '{e.name}'")
        _prepend(patch, container, "env", f"{pointer}/env", new_env)

    return Injection(patch, tuple(errors))
