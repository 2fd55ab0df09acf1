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
from usersecrets.rules import admission
from usersecrets.settings import Settings
from usersecrets.webhook.lookups import Lookups
from usersecrets.webhook.server import JSON, Answer, Handler, Routes, ok

MUTATE_PATH = "/mutate-pods"
VALIDATE_PATH = "/validate-usersecrets"
HEALTH_PATH = "/healthz"

Review = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def reviewer(lookups: Lookups, settings: Settings) -> Review:
    async def review(body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        request = admission.read_review(body)
        if isinstance(request, str):
            metrics.ADMISSIONS.labels("malformed", "").inc()
            return admission.malformed_response(body, request)
        known, user = lookups.known_user(request.namespace)
        if not known:
            try:
                user = await asyncio.to_thread(lookups.read_user, request.namespace)
            except Exception as error:  # a denial that says why, never a 500
                status = getattr(error, "status", None)
                problem = (
                    f"Namespace '{request.namespace}' not found"
                    if status == 404
                    else f"Could not look up namespace '{request.namespace}'; try again"
                )
                metrics.ADMISSIONS.labels("denied", "lookup").inc()
                return admission.review_response(
                    body, admission.Decision(allowed=False, message=problem, reason="lookup")
                )
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


def routes(review: Review, validate: Review | None = None) -> Routes:
    """What the apiserver may call on the webhook's port: pods to mutate, and (with
    `validate`) writes of UserSecrets and SecretGrants to check."""
    found: dict[bytes, tuple[bytes, Handler]] = {
        MUTATE_PATH.encode(): (b"POST", admission_handler(review)),
        HEALTH_PATH.encode(): (b"GET", ok),
    }
    if validate is not None:
        found[VALIDATE_PATH.encode()] = (b"POST", admission_handler(validate))
    return found
