"""Prometheus metrics of the audit trail, registered once per process on the default registry and
served by the server's /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "policyengine_audit_records_total",
    "Decisions made durable, by where they went (database or spool).",
    ["store"],
)
RECORDS_IN_DATABASE = RECORDS.labels(store="database")  # bound once: labels() locks on every call
RECORDS_IN_SPOOL = RECORDS.labels(store="spool")
SPOOL_ROWS = Gauge(
    "policyengine_audit_spool_rows",
    "Rows waiting in local spools for the audit database (summed over the live workers).",
    multiprocess_mode="livesum",
)
DEGRADED = Gauge(
    "policyengine_audit_degraded",
    "1 while a worker's audit rows go to its spool instead of the database (maximum over workers).",
    multiprocess_mode="livemax",
)
SHIPPED = Counter(
    "policyengine_audit_spool_shipped_total",
    "Spooled rows shipped to the database after an outage.",
)
FAILURES = Counter(
    "policyengine_audit_failures_total",
    "Decisions that could not be recorded anywhere (the caller got an error).",
)
OUTAGES = Counter(
    "policyengine_audit_database_errors_total",
    "Commits to the audit database that failed and fell back to the spool.",
)
BATCH_ROWS = Histogram(
    "policyengine_audit_commit_batch_rows",
    "Rows per group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
SIGNED_HEADS = Counter(
    "policyengine_audit_signed_heads_total",
    "Chain heads signed into the audit registry (checkpoints).",
)
SIGNING_FAILURES = Counter(
    "policyengine_audit_signing_failures_total",
    "Attempts to sign a chain head that failed (the database did not take it); retried.",
)
UNSIGNED_ROWS = Gauge(
    "policyengine_audit_unsigned_rows",
    "Rows in the database after their chain's newest signed head (summed over workers).",
    multiprocess_mode="livesum",
)
