"""The workers: copies first, statuses after.

A pair whose copies are in sync goes from the copies' queue to the reports' queue, whose fewer
workers write its statuses: a report never delays the copies pods wait for. A pair whose copies
the apiserver refused is reported at once, while its copies wait for their retry.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field

from usersecrets import metrics
from usersecrets.controller.queue import WorkQueue
from usersecrets.kube.client import ApiError
from usersecrets.rules.desired import OwnerKey

logger = logging.getLogger(__name__)

Step = Callable[[OwnerKey], Awaitable[None]]
#: Seconds a status waits at most while copies wait to be written.
REPORT_PATIENCE = 1.0


@dataclass
class Queues:
    #: Pairs whose copies may differ from the desired ones.
    copies: WorkQueue = field(default_factory=WorkQueue)
    #: Pairs whose statuses may differ from what they should say.
    reports: WorkQueue = field(default_factory=WorkQueue)

    def __len__(self) -> int:
        return len(self.copies) + len(self.reports)


async def copy_worker(queues: Queues, step: Step, refused: Container[OwnerKey]) -> None:
    """Brings copies in sync, pair after pair; a pair in sync goes on to be reported."""
    while True:
        pair = await queues.copies.get()
        ok = await attempt("copies", step, pair)
        waited = queues.copies.done(pair, ok)
        # Once its copies are in sync; or now, if the apiserver refused some: the status tells
        # where and why while the queue retries.
        if (ok and not queues.copies.pending(pair)) or pair in refused:
            queues.reports.add(pair)
        if waited is not None:
            metrics.SYNC_SECONDS.observe(waited)


async def report_worker(
    queues: Queues,
    step: Step,
    refused: Container[OwnerKey],
    patience: float = REPORT_PATIENCE,
) -> None:
    """Writes the statuses of pairs whose copies are in sync, or that wait for a retry of
    copies the apiserver refused. A pair back in the copies' queue is skipped: its status is
    written after it.

    While other copies wait to be written, a status waits too, until they have waited
    `patience` seconds without a break: in a burst the CPU goes to the copies pods wait for
    (the burst's rate went from 0.29-0.40 to 0.43-0.46 of direct writes, with UserSecrets off
    kopf too; `make bench ARGS="--only materialization"`), and a steady stream
    of them does not hold the statuses back by more than that."""
    copies = queues.copies

    def skipped(pair: OwnerKey) -> bool:
        return copies.busy(pair) or (copies.pending(pair) and pair not in refused)

    while True:
        pair = await queues.reports.get()
        if not skipped(pair):
            await copies.drained(patience)
        ok = skipped(pair) or await attempt("status", step, pair)
        queues.reports.done(pair, ok)


async def attempt(kind: str, step: Step, pair: OwnerKey) -> bool:
    """One step for one pair; a failure is logged and counted, and the queue retries it."""
    started = time.monotonic()
    try:
        await step(pair)
    except ApiError as error:
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        logger.warning(
            "%s of %s/%s failed: HTTP %s %s; retrying",
            kind,
            pair.owner,
            pair.key,
            error.status,
            error.reason,
        )
    except Exception as error:
        # Its message may quote a value: the type and where it happened are enough to find it.
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        logger.error(
            "%s of %s/%s failed with %s; retrying\n%s",
            kind,
            pair.owner,
            pair.key,
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)).rstrip(),
        )
    else:
        return True
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)
    return False
