"""Who may make the operator copy a Secret's value: whoever may read it themselves.

The operator can read every Secret. A UserSecret whose `valueFrom` names a Secret, and a grant
that shares such a UserSecret, would otherwise let someone who may write UserSecrets (or
grants) in a namespace, but not read its Secrets, have a ServiceAccount token or a TLS key
copied to where they can read it. So the author of such a write must be allowed to `get` that
Secret, asked of the apiserver (a SubjectAccessReview) when the object is written.

Pure: the validating webhook does the lookups and the review; this says what to ask and what
to answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

USERSECRET = "UserSecret"
SECRETGRANT = "SecretGrant"


@dataclass(frozen=True)
class Author:
    """Who wrote the object, as the apiserver tells the webhook (AdmissionReview userInfo)."""

    username: str
    uid: str | None
    groups: tuple[str, ...]
    extra: Mapping[str, list[str]]

    @classmethod
    def of(cls, user_info: object) -> Author | None:
        info = user_info if isinstance(user_info, dict) else {}
        name = info.get("username")
        if not isinstance(name, str) or not name:
            return None
        groups = info.get("groups")
        extra = info.get("extra")
        uid = info.get("uid")
        return cls(
            name,
            uid if isinstance(uid, str) else None,
            tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
            {k: v for k, v in extra.items() if isinstance(v, list)}
            if isinstance(extra, dict)
            else {},
        )


def _spec(obj: object) -> dict[str, Any]:
    spec = obj.get("spec") if isinstance(obj, dict) else None
    return spec if isinstance(spec, dict) else {}


def value_source(usersecret: object) -> str | None:
    """The name of the Secret a UserSecret takes its value from, if it does."""
    ref = (_spec(usersecret).get("valueFrom") or {}).get("secretKeyRef")
    name = ref.get("name") if isinstance(ref, dict) else None
    return name if isinstance(name, str) and name else None


def exposes(kind: str, obj: object, old: object | None) -> bool:
    """Whether this write may expose a Secret's value to someone new, so that its author's
    right to read it must be checked: a new or changed valueFrom; a new grant, or one that
    now names another secret or another user. Anything else (labels, status, deletion) asks
    nothing."""
    if kind == USERSECRET:
        source = value_source(obj)
        return source is not None and (old is None or value_source(old) != source)
    if kind == SECRETGRANT:
        return old is None or _spec(old) != _spec(obj)
    return False


def access_review(author: Author, namespace: str, secret: str) -> dict[str, Any]:
    """The SubjectAccessReview asking whether `author` may read Secret `secret`."""
    spec: dict[str, Any] = {
        "user": author.username,
        "groups": list(author.groups),
        "resourceAttributes": {
            "namespace": namespace,
            "verb": "get",
            "group": "",
            "resource": "secrets",
            "name": secret,
        },
    }
    if author.uid:
        spec["uid"] = author.uid
    if author.extra:
        spec["extra"] = dict(author.extra)
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    }


def refusal(kind: str, namespace: str, secret: str, usersecret: str | None = None) -> str:
    """Why the write is refused, in words the author can act on."""
    cannot = f"you may not read Secret '{secret}' in namespace '{namespace}' (get secrets)"
    if kind == USERSECRET:
        return f"A UserSecret can only take its value from a Secret you may read: {cannot}"
    return (
        f"UserSecret '{usersecret}' takes its value from Secret '{secret}', and {cannot}: "
        "only someone who may read it can share it"
    )
