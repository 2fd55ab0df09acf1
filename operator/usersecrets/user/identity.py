"""Who the credentials belong to, and which namespaces they may act in: asked of the apiserver
with those same credentials (SelfSubjectReview, SelfSubjectAccessReview), never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from usersecrets import GROUP
from usersecrets.kube import paths
from usersecrets.kube.client import KubeApi
from usersecrets.user.errors import Failure, Operation, from_exception
from usersecrets.user.views import Obj, at

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
#: At most this many namespaces are offered, each checked with one access review.
MAX_CANDIDATES = 20
TIMEOUT = (10.0, 30.0)


@dataclass(frozen=True)
class Identity:
    """What the apiserver says the credentials are (SelfSubjectReview's userInfo)."""

    username: str
    groups: tuple[str, ...] = ()

    @property
    def service_account_namespace(self) -> str | None:
        """A ServiceAccount's namespace (`system:serviceaccount:NS:NAME`), else None."""
        if not self.username.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        namespace, _, name = self.username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
        return namespace if namespace and name else None


def is_namespace_name(text: str) -> bool:
    return bool(_DNS_LABEL.fullmatch(text))


def _post(api: KubeApi, op: Operation, path: str, body: Obj) -> Obj:
    try:
        return api.json("POST", path, body=body, timeout=TIMEOUT)
    except Exception as exc:
        raise from_exception(exc, op) from None


def who_am_i(api: KubeApi) -> Identity:
    """The user the apiserver authenticates these credentials as; a Failure (401) if none."""
    review = _post(
        api,
        Operation("create", "selfsubjectreviews.authentication.k8s.io"),
        paths.SELF_SUBJECT_REVIEWS,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    username = at(review, "status", "userInfo", "username")
    if not isinstance(username, str) or not username:
        raise Failure("The cluster did not say who these credentials belong to", "forbidden")
    groups = at(review, "status", "userInfo", "groups") or []
    return Identity(username, tuple(str(g) for g in groups))


def may(api: KubeApi, verb: str, resource: str, namespace: str, group: str = GROUP) -> bool:
    """Whether RBAC lets these credentials `verb` `resource` in `namespace`."""
    review = _post(
        api,
        Operation("create", "selfsubjectaccessreviews.authorization.k8s.io"),
        paths.SELF_SUBJECT_ACCESS_REVIEWS,
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                }
            },
        },
    )
    return at(review, "status", "allowed") is True


def _labelled(api: KubeApi, user_label: str, username: str) -> list[str]:
    """Namespaces labelled as `username`'s, where the user may list namespaces (most may not)."""
    if not _LABEL_VALUE.fullmatch(username):
        return []
    try:
        found = api.json(
            "GET",
            paths.NAMESPACES,
            query={"labelSelector": f"{user_label}={username}", "limit": MAX_CANDIDATES},
            timeout=TIMEOUT,
        )
    except Exception:
        return []  # forbidden for most users: the other candidates remain
    return [str(at(ns, "metadata", "name")) for ns in found.get("items") or []]


def my_namespaces(
    api: KubeApi, identity: Identity, remembered: Iterable[str], user_label: str
) -> list[str]:
    """The namespaces these credentials may manage secrets in, among the likely ones: a
    ServiceAccount's own, those used before, the one named like the user (the operator's
    fallback), and those labelled as the user's."""
    candidates = [identity.service_account_namespace or "", *remembered, identity.username]
    candidates += _labelled(api, user_label, identity.username)
    unique = [c for c in dict.fromkeys(candidates) if is_namespace_name(c)][:MAX_CANDIDATES]
    return [ns for ns in unique if may(api, "list", "usersecrets", ns)]
