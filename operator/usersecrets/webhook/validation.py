"""The validating webhook for UserSecrets and SecretGrants: the author of a write that would
have the operator copy a Secret must be allowed to read that Secret (`rules.authoring`).

Unlike pod admission this asks the apiserver (a lookup of the UserSecret a grant shares, and a
SubjectAccessReview), in a thread: these writes are rare, and each is a person's act.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from usersecrets import metrics
from usersecrets.kube import paths
from usersecrets.kube.client import ApiError, KubeApi
from usersecrets.rules import authoring
from usersecrets.rules.admission import Decision, malformed_response, review_response
from usersecrets.webhook.review import Review

log = logging.getLogger(__name__)

REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def may_read(api: KubeApi, author: authoring.Author, namespace: str, secret: str) -> bool:
    review = authoring.access_review(author, namespace, secret)
    return bool((api.json("POST", REVIEWS, body=review).get("status") or {}).get("allowed"))


def source_of_grant(api: KubeApi, namespace: str, grant: object) -> tuple[str, str | None]:
    """(the UserSecret a grant shares, the Secret it takes its value from, if any)."""
    spec = grant.get("spec") if isinstance(grant, dict) else None
    name = spec.get("secretName") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name:
        return "", None
    try:
        found = api.json("GET", f"{paths.custom('usersecrets', namespace)}/{name}")
    except ApiError as error:
        if error.status == 404:  # nothing to share yet: its own write is checked when it comes
            return name, None
        raise
    return name, authoring.value_source(found)


def check(api: KubeApi, request: dict[str, Any]) -> Decision:
    """Blocking: the decision on one write of a UserSecret or SecretGrant."""
    kind = (request.get("kind") or {}).get("kind")
    namespace, obj, old = request.get("namespace"), request.get("object"), request.get("oldObject")
    if not isinstance(namespace, str) or not authoring.exposes(str(kind), obj, old):
        return Decision(allowed=True)
    author = authoring.Author.of(request.get("userInfo"))
    if author is None:
        return Decision(allowed=False, message="The request names no user", reason="no_user")
    usersecret: str | None = None
    if kind == authoring.USERSECRET:
        secret = authoring.value_source(obj)
    else:
        usersecret, secret = source_of_grant(api, namespace, obj)
    if secret is None or may_read(api, author, namespace, secret):
        return Decision(allowed=True)
    message = authoring.refusal(str(kind), namespace, secret, usersecret)
    return Decision(allowed=False, message=message, reason="not_readable")


def validator(api: KubeApi) -> Review:
    async def review(body: dict[str, Any]) -> dict[str, Any]:
        request = body.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
            metrics.VALIDATIONS.labels("malformed", "").inc()
            return malformed_response(body, "no request.uid")
        try:
            decision = await asyncio.to_thread(check, api, request)
        except Exception as error:  # fail closed, and say why
            log.warning("validation failed with %s", type(error).__name__)
            decision = Decision(
                allowed=False,
                message="Could not check who may read the Secret this shares; try again",
                reason="lookup",
            )
        result = "admitted" if decision.allowed else "denied"
        metrics.VALIDATIONS.labels(result, decision.reason).inc()
        return review_response(body, decision)

    return review
