"""Prometheus metrics of the server, and their exposition (multiprocess-safe with several workers).

With several uvicorn workers, `policyengine serve` sets PROMETHEUS_MULTIPROC_DIR before any worker
starts: each worker writes its samples to files there and a scrape, whichever worker answers it, sums
every worker's files (`MultiProcessCollector`). Without the variable (one process, tests) the default
registry is exposed.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client import multiprocess as prometheus_multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

ADMISSION_REQUESTS = Counter(
    "policyengine_admission_requests_total",
    "Admission reviews answered, by endpoint, object kind and decision.",
    ["endpoint", "kind", "decision"],
)
ADMISSION_DURATION = Histogram(
    "policyengine_admission_request_duration_seconds",
    "Time from a parsed review to its answer (evaluation and audit), by endpoint, kind and decision.",
    ["endpoint", "kind", "decision"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ADMISSION_VIOLATIONS = Counter(
    "policyengine_admission_violations_total",
    "Violations found by admission, by regime and enforcement action.",
    ["regime", "enforcement"],
)
BAD_REQUESTS = Counter(
    "policyengine_admission_bad_requests_total",
    "Requests answered 400 (not a usable AdmissionReview), by endpoint and reason.",
    ["endpoint", "reason"],
)
POLICY_RELOADS = Counter(
    "policyengine_policy_reloads_total",
    "Policy reload attempts, by result (ok, unchanged, failed).",
    ["result"],
)
ROUTING_REQUESTS = Counter(
    "policyengine_routing_requests_total",
    "Routing filter answers (/v1/authz, /v1/decide), by endpoint and decision (allow, deny, rewrite).",
    ["endpoint", "decision"],
)
ROUTING_DURATION = Histogram(
    "policyengine_routing_request_duration_seconds",
    "Time from a received routing request to its answer (judging and audit), by endpoint and decision.",
    ["endpoint", "decision"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
BUNDLE_FETCHES = Counter(
    "policyengine_policy_bundle_fetches_total",
    "Polls of the policy bundle URL, by result (modified, not_modified, error).",
    ["result"],
)
# The audit spool's gauge is policyengine_audit_spool_rows (policyengine.audit.metrics), kept by the writer.
READY = Gauge(
    "policyengine_server_ready",
    "1 when the worker serves a loaded policy with a working audit store (minimum over workers).",
    multiprocess_mode="livemin",
)


_CHILDREN: dict[tuple[object, tuple[str, ...]], Any] = {}


def child(metric: Counter | Histogram, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: the per-request metrics repeat a few label sets, and
    `labels()` validates and locks on every call."""
    key = (metric, labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics and its content type."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_plain(host: str, port: int) -> None:
    """Serve the exposition over plain HTTP on `port` from a daemon thread of this process (for
    Prometheus inside the pod network; the supervisor of several workers reads their sample files)."""
    registry = REGISTRY
    if multiprocess_enabled():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the totals)."""
    if multiprocess_enabled():
        prometheus_multiprocess.mark_process_dead(pid)
