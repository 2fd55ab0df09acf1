"""An AdmissionReview in, its answer out: what `admission.decide` needs, from memory.

The decision itself is pure (`rules.admission`); this adds the lookups, the metrics and the
HTTP answer, and turns anything the request gets wrong into a denial that says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from usersecrets import metrics
from usersecrets.rules import admission, sharding
from usersecrets.rules.desired import NO_OWNER
from usersecrets.settings import Settings
from usersecrets.webhook.lookups import Lookups
from usersecrets.webhook.server import JSON, Answer, Handler, Routes, ok

MUTATE_PATH = "/mutate-pods"
VALIDATE_PATH = "/validate-usersecrets"
LABEL_PATH = "/label-usersecrets"
HEALTH_PATH = "/healthz"

Review = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class UnknownNamespace(Exception):
    """The namespace could not be looked up; `denial` says why (never a 500)."""

    def __init__(self, denial: admission.Decision) -> None:
        super().__init__(denial.message)
        self.denial = denial


async def user_of(lookups: Lookups, namespace: str) -> str | None:
    """The namespace's user, from the cache or, for one newer than it, the apiserver."""
    known, user = lookups.known_user(namespace)
    if known:
        return user
    try:
        return await asyncio.to_thread(lookups.read_user, namespace)
    except Exception as error:
        status = getattr(error, "status", None)
        problem = (
            f"Namespace '{namespace}' not found"
            if status == 404
            else f"Could not look up namespace '{namespace}'; try again"
        )
        denial = admission.Decision(allowed=False, message=problem, reason="lookup")
        raise UnknownNamespace(denial) from None


def reviewer(lookups: Lookups, settings: Settings) -> Review:
    async def review(body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        request = admission.read_review(body)
        if isinstance(request, str):
            metrics.ADMISSIONS.labels("malformed", "").inc()
            return admission.malformed_response(body, request)
        try:
            user = await user_of(lookups, request.namespace)
        except UnknownNamespace as unknown:
            metrics.ADMISSIONS.labels("denied", unknown.denial.reason).inc()
            return admission.review_response(body, unknown.denial)
        decision = admission.decide(
            request.pod,
            namespace=request.namespace,
            user=user,
            available=lookups.available(request.namespace) if user is not None else set(),
            settings=settings,
        )
        result = "admitted" if decision.allowed else "denied"
        metrics.ADMISSIONS.labels(result, decision.reason).inc()
        metrics.ADMISSION_SECONDS.observe(time.perf_counter() - started)
        return admission.review_response(body, decision)

    return review


def labeller(lookups: Lookups) -> Review:
    """With shards: a UserSecret written without its owner's slot label gets it, so that the
    owner's shard, which selects by it, follows it from its first version on."""

    async def review(body: dict[str, Any]) -> dict[str, Any]:
        request = body.get("request")
        obj = request.get("object") if isinstance(request, dict) else None
        namespace = request.get("namespace") if isinstance(request, dict) else None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict) or not isinstance(namespace, str) or not namespace:
            metrics.VALIDATIONS.labels("malformed", "").inc()
            return admission.malformed_response(body, "no request.object or request.namespace")
        try:
            user = await user_of(lookups, namespace)
        except UnknownNamespace as unknown:
            metrics.VALIDATIONS.labels("denied", unknown.denial.reason).inc()
            return admission.review_response(body, unknown.denial)
        labels = meta.get("labels")
        patch = sharding.slot_patch(labels if isinstance(labels, dict) else None, user or NO_OWNER)
        metrics.VALIDATIONS.labels("labelled" if patch else "admitted", "").inc()
        return admission.review_response(body, admission.Decision(allowed=True, patch=patch))

    return review


def admission_handler(review: Review) -> Handler:
    """The POST body as JSON, answered by `review`; what is not a JSON object is a 400."""

    async def handle(body: bytearray) -> Answer:
        try:
            parsed = orjson.loads(body)
        except (ValueError, RecursionError):
            return Answer(400, b"request body is not valid JSON\n")
        if not isinstance(parsed, dict):
            return Answer(400, b"request body must be a JSON object\n")
        return Answer(200, orjson.dumps(await review(parsed)), JSON)

    return handle


def routes(review: Review, validate: Review | None = None, label: Review | None = None) -> Routes:
    """What the apiserver may call on the webhook's port: pods to mutate, and (with
    `validate`) writes of UserSecrets and SecretGrants to check, (with `label`) UserSecrets to
    label with their slot."""
    found: dict[bytes, tuple[bytes, Handler]] = {
        MUTATE_PATH.encode(): (b"POST", admission_handler(review)),
        HEALTH_PATH.encode(): (b"GET", ok),
    }
    if validate is not None:
        found[VALIDATE_PATH.encode()] = (b"POST", admission_handler(validate))
    if label is not None:
        found[LABEL_PATH.encode()] = (b"POST", admission_handler(label))
    return found
