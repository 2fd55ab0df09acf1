"""Prometheus metrics, served with the probes on one plain-HTTP port (`main`).

Labels are bounded enumerations: never a user, a key, a namespace or a value.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram(
    "usersecrets_reconcile_duration_seconds",
    "Time to reconcile one secret (owner, key), by kind: its copies (compute, apply the "
    "difference) or its status (the statuses of its UserSecrets and grants, and their Events).",
    ["kind"],
)
RECONCILE_ERRORS = Counter(
    "usersecrets_reconcile_errors_total",
    "Reconciliations that failed and were retried, by kind (copies, status).",
    ["kind"],
)
SYNC_SECONDS = Histogram(
    "usersecrets_sync_duration_seconds",
    "Time from a change being observed to every copy of that secret being in sync.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
COPIES = Gauge("usersecrets_materialized_secrets", "Secrets the operator maintains.")
QUEUE_DEPTH = Gauge(
    "usersecrets_work_queue_depth",
    "Reconciliations of copies and of statuses waiting or in work (0: converged, but for "
    "failures waiting out their backoff, which usersecrets_reconcile_errors_total counts).",
)
LEADING = Gauge(
    "usersecrets_leader", "1 once this replica leads and has loaded the cluster's state."
)
WATCH_EVENTS = Counter(
    "usersecrets_watch_events_total", "Watch events received, by kind.", ["kind"]
)
ADMISSIONS = Counter(
    "usersecrets_admissions_total",
    "Pod admissions answered, by result (admitted, denied, malformed) and denial reason.",
    ["result", "reason"],
)
VALIDATIONS = Counter(
    "usersecrets_validations_total",
    "Writes of UserSecrets and SecretGrants checked, by result (admitted, labelled with their "
    "owner's shard slot, denied, malformed) and denial reason (not_readable: the author may not "
    "read the Secret it would copy; lookup: the namespace could not be looked up).",
    ["result", "reason"],
)
ADMISSION_SECONDS = Histogram(
    "usersecrets_admission_duration_seconds",
    "Time to answer one AdmissionReview, as measured inside the webhook.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
