"""The admission decision for a pod, and the AdmissionReview around it.

Pure: the caller lists which copies exist (one API call) and this decides, so every rule is
unit-tested without a cluster. Only names pass through here, never a secret value.
"""

from __future__ import annotations

import base64
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from usersecrets.rules import naming
from usersecrets.rules.injection import JsonPatch, inject
from usersecrets.rules.references import SecretRef, parse, requests_secrets
from usersecrets.settings import Settings

REVIEW_API_VERSION = "admission.k8s.io/v1"
#: Joins the problems of a denial: one line keeps Events and logs readable.
SEPARATOR = "; "


@dataclass(frozen=True)
class Decision:
    allowed: bool
    patch: JsonPatch = field(default_factory=list)
    message: str = ""
    #: The first kind of problem, for metrics: no_user, invalid, missing or not_shared.
    reason: str = ""


@dataclass(frozen=True)
class PodReview:
    """What the decision needs from an AdmissionReview request."""

    uid: str
    namespace: str
    pod: dict[str, Any]


def _deny(problems: list[str], reason: str) -> Decision:
    return Decision(allowed=False, message=SEPARATOR.join(dict.fromkeys(problems)), reason=reason)


def _annotations(pod: Mapping[str, Any]) -> dict[str, str]:
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}


def decide(
    pod: Mapping[str, Any],
    *,
    namespace: str,
    user: str | None,
    available: Container[SecretRef],
    settings: Settings,
) -> Decision:
    """Allow with a patch, or deny listing every problem.

    A secret of another user that has no copy here is reported as not shared whether or not
    it exists, so that probing pods teach nobody which keys another user has.
    """
    annotations = _annotations(pod)
    if not requests_secrets(annotations):
        return Decision(allowed=True)
    if user is None:
        return _deny(
            [f"Namespace '{namespace}' belongs to no user, so its pods cannot use user secrets"],
            "no_user",
        )
    references = parse(annotations, user=user, cluster=settings.cluster_name)
    injection = inject(pod, references)
    problems = [*references.errors, *injection.errors]
    reason = "invalid" if problems else ""
    absent = sorted(ref for ref in references.refs if ref not in available)
    missing = [ref.key for ref in absent if ref.owner == user]
    if missing:
        problems.append("Missing secrets: " + ", ".join(f"'{key}'" for key in missing))
        reason = reason or "missing"
    unshared = [ref for ref in absent if ref.owner != user]
    problems.extend(
        f"Secret '{naming.secret_uri(settings.cluster_name, ref.owner, ref.key)}' "
        f"is not shared with user '{user}'"
        for ref in unshared
    )
    if problems:
        return _deny(problems, reason or "not_shared")
    return Decision(allowed=True, patch=injection.patch)


def read_review(body: object) -> PodReview | str:
    """The pod review in `body`, or what is wrong with it; never raises on any JSON."""
    request = body.get("request") if isinstance(body, dict) else None
    if not isinstance(request, dict):
        return "no request"
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        return "no request.uid"
    pod = request.get("object")
    if not isinstance(pod, dict):
        return "no request.object"
    kind = request.get("kind")
    if isinstance(kind, dict) and kind.get("kind") != "Pod":
        return f"request.kind is {kind.get('kind')!r}, not 'Pod'"
    namespace = request.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        return "no request.namespace"
    return PodReview(uid=uid, namespace=namespace, pod=pod)


def _uid(review: object) -> str:
    request = review.get("request") if isinstance(review, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    return uid if isinstance(uid, str) else ""


def _review(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview", "response": response}


def review_response(review: object, decision: Decision) -> dict[str, Any]:
    """The AdmissionReview v1 answering `review` with `decision`."""
    response: dict[str, Any] = {"uid": _uid(review), "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": decision.message}
    elif decision.patch:
        encoded = orjson.dumps(decision.patch)
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(encoded).decode()
    return _review(response)


def malformed_response(body: object, problem: str) -> dict[str, Any]:
    """A denial for a body that is not a pod AdmissionReview: failing closed, like the policy."""
    status = {
        "code": 400,
        "reason": "BadRequest",
        "message": f"Malformed AdmissionReview: {problem}",
    }
    return _review({"uid": _uid(body), "allowed": False, "status": status})
