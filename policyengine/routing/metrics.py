"""The routing table's completeness as a Prometheus gauge.

`policyengine_routing_table_complete{revision=...}` is 1 once the table of that policy revision is
complete (every key of the known services judged) and serves, 0 while it is being built; the gauge of a
replaced revision is dropped. With several workers the minimum over live workers counts: 1 only when
every worker's table is complete.
"""

from __future__ import annotations

import threading

from prometheus_client import Gauge

TABLE_COMPLETE = Gauge(
    "policyengine_routing_table_complete",
    "1 when the routing table of the revision is complete and serves, 0 while it is built (minimum over workers).",
    ["revision"],
    multiprocess_mode="livemin",
)

_shown: set[str] = set()
_lock = threading.Lock()


def table_building(revision: str) -> None:
    with _lock:
        if revision not in _shown:
            TABLE_COMPLETE.labels(revision).set(0)
            _shown.add(revision)


def table_complete(revision: str) -> None:
    with _lock:
        TABLE_COMPLETE.labels(revision).set(1)
        for old in _shown - {revision}:
            TABLE_COMPLETE.remove(old)
        _shown.clear()
        _shown.add(revision)
