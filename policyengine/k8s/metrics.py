"""Prometheus metrics of the live-cluster parts: the inventory, placement drift, region flags, the scan.

Gauges are per worker (each runs its own inventory); with several workers the exposition shows the
live workers' maximum (`livemax`), since every worker watches the same cluster.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INVENTORY_OBJECTS = Gauge(
    "policyengine_inventory_objects",
    "Objects the inventory keeps (the few fields needed of each), by kind.",
    ["kind"],
    multiprocess_mode="livemax",
)
INVENTORY_SYNCED = Gauge(
    "policyengine_inventory_synced",
    "1 once every watched kind was listed (kinds whose CRD is not installed count as listed).",
    multiprocess_mode="livemin",
)
INVENTORY_LAST_SYNC = Gauge(
    "policyengine_inventory_last_sync_timestamp_seconds",
    "Unix time of the last change the inventory applied (a list or a watch event).",
    multiprocess_mode="livemax",
)
PLACEMENT_DRIFT = Gauge(
    "policyengine_placement_drift_services",
    "Services whose observed placement (ServiceImports, EndpointSlices) differs from services.yaml.",
    multiprocess_mode="livemax",
)
REGION_FLAGGED = Gauge(
    "policyengine_cluster_region_flagged",
    "1 for a cluster whose nodes report a region other than clusters.yaml's (never trusted for a decision).",
    ["cluster"],
    multiprocess_mode="livemax",
)
SCAN_DURATION = Histogram(
    "policyengine_scan_duration_seconds",
    "Time of one background scan (list every crossing kind, decide, audit, write the reports).",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
SCAN_OBJECTS = Counter(
    "policyengine_scan_objects_total",
    "Objects decided by background scans, by kind.",
    ["kind"],
)
SCAN_VIOLATIONS = Gauge(
    "policyengine_scan_violations",
    "Violations found by the last background scan, by regime and enforcement action.",
    ["regime", "enforcement"],
    multiprocess_mode="livemax",
)
SCAN_LEADER = Gauge(
    "policyengine_scan_leader",
    "1 while this worker holds the scan Lease.",
    multiprocess_mode="livesum",
)
