"""The pod annotation grammar: which secrets a pod wants, as files and as env vars.

Kept pure and total (it never raises, whatever the text) because it runs inside the admission
webhook, whose failure policy is Fail: a crash would block pods instead of explaining them.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

VOLUMES_ANNOTATION = "usersecrets.io/volumes"
ENV_ANNOTATION = "usersecrets.io/env"
CONTAINERS_ANNOTATION = "usersecrets.io/containers"

SCHEME = "secret"
KEY_MAX_LENGTH = 63
_FORMS = "expected secret:KEY, secret:/USER/KEY or secret://CLUSTER/USER/KEY"

# Neu.ro's own key grammar: what our users may have typed there and expect to work here.
_NEURO_KEY = re.compile(r"[a-zA-Z0-9_.-]{1,253}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# What _key_reasons finds nothing wrong with, checked in one step: every pod's keys pass here.
_KEY = re.compile(
    rf"(?=.{{1,{KEY_MAX_LENGTH}}}\Z)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
# A user is a namespace label value or a namespace name; both fit the label value syntax.
_USER = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
# The name rule every Kubernetes version accepts.
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_ENTRY = re.compile(r"[^\r\n,]+")
#: What one pod may ask for: far above what any job needs (a Neu.ro job takes a few), and a
#: bound on what a review costs, since admission runs before the apiserver's own size checks.
MAX_ANNOTATION_LENGTH = 32 * 1024
MAX_ENTRIES = 256


@dataclass(frozen=True, order=True)
class SecretRef:
    """A secret resolved to its owner, whatever form the reference took."""

    owner: str
    key: str


@dataclass(frozen=True)
class FileEntry:
    ref: SecretRef
    path: str


@dataclass(frozen=True)
class EnvEntry:
    name: str
    ref: SecretRef


@dataclass(frozen=True)
class References:
    """What the annotations ask for, plus every problem found; valid entries are kept even
    when others failed so that later checks can report their own problems too."""

    files: tuple[FileEntry, ...] = ()
    env: tuple[EnvEntry, ...] = ()
    #: Container names to inject into; None means every container and initContainer.
    containers: tuple[str, ...] | None = None
    errors: tuple[str, ...] = ()

    @property
    def refs(self) -> frozenset[SecretRef]:
        return frozenset(e.ref for e in self.files) | frozenset(e.ref for e in self.env)


def key_error(key: str) -> str | None:
    """Why `key` cannot name a secret here, or None.

    Keys are Kubernetes object names (DNS-1123 subdomains) of at most 63 characters, because
    they become Secret names and label values. Keys Neu.ro would accept get a message that says
    what to change, since users bring them from there.
    """
    if _KEY.fullmatch(key):
        return None
    if not key:
        return "Invalid secret key '': the key is empty"
    reasons = list(_key_reasons(key))  # _KEY accepts exactly the keys without one
    rule = (
        "keys are Kubernetes object names: lowercase letters, digits, '-' and '.', "
        f"starting and ending with a letter or digit, at most {KEY_MAX_LENGTH} characters"
    )
    if _NEURO_KEY.fullmatch(key) and key != "." and not key.startswith(".."):
        return (
            f"Secret key '{key}' is valid on Neu.ro but cannot be stored here: "
            f"{', '.join(reasons)} ({rule})"
        )
    return f"Invalid secret key '{key}': {', '.join(reasons)} ({rule})"


def _key_reasons(key: str) -> Iterator[str]:
    if len(key) > KEY_MAX_LENGTH:
        yield f"it is longer than {KEY_MAX_LENGTH} characters"
    if any(c.isupper() for c in key):
        yield "it contains uppercase letters"
    if "_" in key:
        yield "it contains '_'"
    others = sorted(
        {c for c in key if c not in "-._" and not c.isupper() and not _is_lower_alnum(c)}
    )
    if others:
        yield "it contains " + ", ".join(repr(c) for c in others)
    elif not all(_DNS_LABEL.fullmatch(p) for p in key.lower().replace("_", "-").split(".")):
        yield "it and each of its '.'-separated parts must start and end with a letter or digit"


def _is_lower_alnum(c: str) -> bool:
    return c.isascii() and (c.isdigit() or c.islower())


def split_ref(text: str) -> tuple[str | None, str | None, str] | str:
    """(cluster, user, key) as written, None where left implicit, or why `text` is not a
    reference: the grammar only, shared with the CLI; what is meant is the caller's to say."""
    if "#" in text or "?" in text:
        return f"Invalid secret reference '{text}': '#' and '?' are not allowed"
    scheme, colon, rest = text.partition(":")
    if not colon:
        return f"Invalid secret reference '{text}': {_FORMS}"
    if scheme != SCHEME:
        return f"Invalid URI scheme: '{scheme}' != '{SCHEME}'"
    # secret:KEY, secret:/USER/KEY or secret://CLUSTER/USER/KEY: a part per leading slash.
    # An empty KEY alone (secret:) gets the key's own message.
    slashes = 2 if rest.startswith("//") else 1 if rest.startswith("/") else 0
    parts = rest[slashes:].split("/")
    if len(parts) != slashes + 1 or (slashes and not all(parts)):
        return f"Invalid secret reference '{text}': {_FORMS}"
    return (parts[0] if slashes == 2 else None), (parts[-2] if slashes else None), parts[-1]


def parse_ref(text: str, *, user: str, cluster: str) -> SecretRef | list[str]:
    """Resolve one reference for a pod of `user`; on failure, every problem with it."""
    written = split_ref(text)
    if isinstance(written, str):
        return [written]
    ref_cluster, owner, key = written
    errors: list[str] = []
    if ref_cluster is not None and ref_cluster != cluster:
        errors.append(f"Invalid URI cluster: '{ref_cluster}' != '{cluster}'")
    owner = user if owner is None else owner
    if owner != user and not _USER.fullmatch(owner):
        errors.append(f"Invalid user name '{owner}' in secret reference '{text}'")
    problem = key_error(key)
    if problem:
        errors.append(problem)
    return errors or SecretRef(owner, key)


def normalize_path(path: str) -> str | list[str]:
    """The canonical form of a mount path, or every problem with it.

    Like Neu.ro's PurePosixPath: repeated `/`, `.` components and a trailing `/` are dropped
    (`//a/./b/` is `/a/b`), so that duplicates are found whatever the spelling. `..` is refused
    rather than resolved, and a path that normalizes to `/` names no file.
    """
    errors: list[str] = []
    if not path.startswith("/"):
        errors.append(f"Mount path must be absolute: '{path}'")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    controls = not path.isprintable() and any(unicodedata.category(c) == "Cc" for c in path)
    if ".." in parts or controls:
        errors.append(f"Invalid path: '{path}'")
    if not parts and not errors:
        errors.append(f"Mount path must name a file, not the root directory: '{path}'")
    return errors or "/" + "/".join(parts)


def _entries(text: str) -> Iterator[str]:
    for match in _ENTRY.finditer(text):
        entry = match.group(0).strip()
        if entry:
            yield entry


def _bounded(key: str, text: str, errors: list[str]) -> list[str]:
    """The entries of one annotation, or none and why, past the bounds."""
    if len(text) > MAX_ANNOTATION_LENGTH:
        errors.append(
            f"Annotation '{key}' is {len(text)} characters long; at most "
            f"{MAX_ANNOTATION_LENGTH} are read"
        )
        return []
    entries = list(itertools.islice(_entries(text), MAX_ENTRIES + 1))
    if len(entries) > MAX_ENTRIES:
        errors.append(f"Annotation '{key}' has more than {MAX_ENTRIES} entries")
        return []
    return entries


def _parse_files(entries: list[str], user: str, cluster: str, errors: list[str]) -> list[FileEntry]:
    files: list[FileEntry] = []
    for entry in entries:
        ref_text, _, raw_path = entry.rpartition(":")
        ref_text, raw_path = ref_text.strip(), raw_path.strip()
        # A reference always has a colon: without one, the user forgot `secret:` or the path.
        if ":" not in ref_text or not raw_path:
            errors.append(f"Invalid secret file specification '{entry}'")
            continue
        if raw_path in ("ro", "rw"):
            errors.append(
                f"Invalid secret file specification '{entry}': secret files are always "
                "read-only, remove the ':ro'/':rw' suffix"
            )
            continue
        ref = parse_ref(ref_text, user=user, cluster=cluster)
        path = normalize_path(raw_path)
        if isinstance(ref, list):
            errors.extend(ref)
        if isinstance(path, list):
            errors.extend(path)
        if isinstance(ref, SecretRef) and isinstance(path, str):
            files.append(FileEntry(ref, path))
    return _without_duplicates(files, errors)


def _parse_env(entries: list[str], user: str, cluster: str, errors: list[str]) -> list[EnvEntry]:
    env: list[EnvEntry] = []
    for entry in entries:
        cut = min((i for i in (entry.find(":"), entry.find("=")) if i >= 0), default=-1)
        if cut < 0:
            errors.append(
                f"Invalid secret environment variable specification '{entry}': "
                "expected NAME=secret:KEY or NAME:secret:KEY"
            )
            continue
        name, ref_text = entry[:cut].strip(), entry[cut + 1 :].strip()
        name_ok = bool(_ENV_NAME.fullmatch(name))
        if not name_ok:
            errors.append(
                f"Invalid environment variable name '{name}' in '{entry}': letters, digits, "
                "'_', '-' and '.', not starting with a digit"
            )
        ref = parse_ref(ref_text, user=user, cluster=cluster)
        if isinstance(ref, list):
            errors.extend(ref)
        elif name_ok:
            env.append(EnvEntry(name, ref))
    unique: dict[str, EnvEntry] = {}
    for e in env:
        if e.name in unique:
            errors.append(f"environment variable '{e.name}' was encountered multiple times")
        unique.setdefault(e.name, e)
    return list(unique.values())


def _without_duplicates(files: list[FileEntry], errors: list[str]) -> list[FileEntry]:
    """The first entry per path; reports paths used twice and files placed inside another.

    Sorting by components puts every path right after the paths that contain it, which finds
    nesting in O(n log n) even for absurdly deep paths.
    """
    unique: dict[str, FileEntry] = {}
    for f in files:
        if f.path in unique:
            errors.append(f"destination path '{f.path}' was encountered multiple times")
        unique.setdefault(f.path, f)
    outer = ""
    for path in sorted(unique, key=lambda p: p.split("/")):
        if outer and path.startswith(outer + "/"):
            errors.append(f"destination path '{path}' is inside the secret file '{outer}'")
        else:
            outer = path
    return list(unique.values())


def parse_containers(entries: list[str]) -> tuple[str, ...] | None:
    """Names from the narrowing annotation in order, duplicates dropped; None when blank,
    because an empty list would silently inject nowhere."""
    names = tuple(dict.fromkeys(entries))
    return names or None


def requests_secrets(annotations: Mapping[str, object]) -> bool:
    """Whether the pod asks for anything at all, decided before knowing whose pod it is."""
    return any(
        isinstance(text, str) and next(_entries(text), None) is not None
        for text in (annotations.get(VOLUMES_ANNOTATION), annotations.get(ENV_ANNOTATION))
    )


def parse(annotations: Mapping[str, object], *, user: str, cluster: str) -> References:
    """Everything a pod of `user` asks for; non-string annotation values count as absent."""
    errors: list[str] = []

    def text(key: str) -> str:
        value = annotations.get(key)
        return value if isinstance(value, str) else ""

    def entries(key: str) -> list[str]:
        return _bounded(key, text(key), errors)

    files = _parse_files(entries(VOLUMES_ANNOTATION), user, cluster, errors)
    env = _parse_env(entries(ENV_ANNOTATION), user, cluster, errors)
    containers = parse_containers(entries(CONTAINERS_ANNOTATION))
    return References(
        files=tuple(files),
        env=tuple(env),
        containers=containers,
        errors=tuple(dict.fromkeys(errors)),
    )
