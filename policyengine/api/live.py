"""The server's view of its live cluster: the inventory it starts, and what the server reports of it.

`serve --kubeconfig PATH [--context C]` or `--in-cluster` makes `LiveCluster.start(settings, policy)`
connect and start the inventory (`policyengine.k8s.inventory`) in each worker. Evaluation reads
`observations()` (the latest immutable snapshot; nothing observed when no cluster is connected).
`/readyz` waits for the first sync and says so (`check()`); placement drift and region flags are
computed on the event loop from the latest inventory snapshot and policy (`refresh`), exported as
metrics, and a newly flagged cluster is logged once. A flag never changes a decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policyengine.observed import NOTHING_OBSERVED, Observations
from policyengine.placement import Drift, PlacementPolicy, RegionFlag, placement_drift, region_flags

if TYPE_CHECKING:
    from policyengine.api.settings import Settings
    from policyengine.decide import Decider
    from policyengine.k8s.inventory import Inventory, InventorySnapshot
    from policyengine.k8s.scan import Scanner
    from policyengine.policy import LoadedPolicy

log = logging.getLogger("policyengine.inventory")


@dataclass
class Placement:
    """Drift and flags of one (inventory snapshot, policy) pair."""

    drift: list[Drift] = field(default_factory=list)
    flags: list[RegionFlag] = field(default_factory=list)


@dataclass
class LiveCluster:
    """The inventory (and, with `--scan-interval`, the scanner) of the server's cluster."""

    inventory: Inventory
    where: str
    scanner: Scanner | None = None
    _seen: tuple[object, object] | None = None
    _placement: Placement = field(default_factory=Placement)
    _flags_logged: frozenset[str] = frozenset()

    @classmethod
    def start(cls, settings: Settings, policy: Callable[[], LoadedPolicy | None]) -> LiveCluster:
        """Connect as configured, start the inventory and, with a scan interval, the scanner (it
        decides with the policy `policy()` serves, on an engine of its own). Raises ClusterConfigError."""
        from policyengine.k8s.client import connect, in_cluster
        from policyengine.k8s.inventory import Inventory

        def fsm_key(key: str) -> str | None:
            loaded = policy()
            return loaded.cluster_by_fsm_key(key) if loaded is not None else None

        connection = in_cluster() if settings.in_cluster else connect(settings.kubeconfig, settings.kube_context)
        inventory = Inventory(
            connection.api, settings.cluster, resolve_fsm_key=fsm_key, watch_seconds=settings.watch_seconds
        )
        log.info("inventory: watching %s (context %s) as cluster %s", connection.server, connection.context,
                 settings.cluster)  # fmt: skip
        live = cls(inventory.start(), f"{connection.context} ({connection.server})")
        if settings.scan_interval_seconds > 0:
            live.scanner = _scanner(settings, connection.api, inventory, policy).start()
        return live

    def observations(self) -> Observations:
        return self.inventory.current()

    def stop(self) -> None:
        if self.scanner is not None:
            self.scanner.stop()
        self.inventory.stop()

    # -- on the event loop ------------------------------------------------------------------------------
    def refresh(self, policy: PlacementPolicy | None) -> Placement:
        """Drift and flags of the latest snapshot under `policy`, with their metrics (recomputed only when
        either changed); a cluster newly flagged is logged once."""
        from policyengine.k8s import metrics

        snapshot = self.inventory.snapshot()
        if policy is None or (self._seen is not None and self._seen[0] is snapshot and self._seen[1] is policy):
            return self._placement
        self._seen = (snapshot, policy)
        placement = Placement(
            placement_drift(policy, snapshot.observations), region_flags(policy, snapshot.observations)
        )
        self._placement = placement
        for kind, count in snapshot.counts.items():
            metrics.INVENTORY_OBJECTS.labels(kind).set(count)
        metrics.INVENTORY_SYNCED.set(1 if snapshot.synced else 0)
        if snapshot.last_sync is not None:
            metrics.INVENTORY_LAST_SYNC.set(snapshot.last_sync)
        metrics.PLACEMENT_DRIFT.set(len(placement.drift))
        flagged = frozenset(f.cluster for f in placement.flags)
        for cluster in self._flags_logged - flagged:
            metrics.REGION_FLAGGED.labels(cluster).set(0)
        for flag in placement.flags:
            metrics.REGION_FLAGGED.labels(flag.cluster).set(1)
            if flag.cluster not in self._flags_logged:
                log.warning("region flag: %s", flag.message)
        self._flags_logged = flagged
        return placement

    def check(self, policy: PlacementPolicy | None) -> dict[str, Any]:
        """The `/readyz` entry: ok once synced, with counts, drift and flagged clusters."""
        snapshot: InventorySnapshot = self.inventory.snapshot()
        placement = self.refresh(policy)
        entry: dict[str, Any] = {"ok": snapshot.synced, "cluster": self.where}
        if not snapshot.synced:
            entry["detail"] = "waiting for the inventory's first sync (list of every watched kind)"
        else:
            age = time.time() - snapshot.last_sync if snapshot.last_sync else None
            entry["detail"] = f"synced: {sum(snapshot.counts.values())} objects" + (
                f", last change {age:.0f}s ago" if age is not None else ""
            )
        entry["objects"] = dict(snapshot.counts)
        if snapshot.missing:
            entry["not_served"] = sorted(snapshot.missing)
        entry["drift"] = [d.message for d in placement.drift]
        entry["flagged_clusters"] = [f.message for f in placement.flags]
        return entry


class ScanDeciders:
    """The scan thread's Decider: rebuilt, with an engine of its own, when the served policy changes
    (an engine is never shared between threads). Used by the scan thread only."""

    def __init__(self, settings: Settings, policy: Callable[[], LoadedPolicy | None]) -> None:
        self.settings = settings
        self.policy = policy
        self._decider: Decider | None = None

    def __call__(self) -> Decider | None:
        from policyengine.decide import Decider
        from policyengine.engine import make_engine

        loaded = self.policy()
        if loaded is None:
            return None
        if self._decider is None or self._decider.policy is not loaded:
            engine = make_engine(self.settings.engine, opa_url=self.settings.opa_url, opa_token=self.settings.opa_token)
            self._decider = Decider(loaded, engine)
        return self._decider


def _scanner(settings: Settings, api: Any, inventory: Inventory, policy: Callable[[], LoadedPolicy | None]) -> Scanner:
    from policyengine.k8s.lease import LeaseElector
    from policyengine.k8s.scan import Scanner, ScanSettings

    namespace = settings.lease_namespace or settings.own_namespace
    elector = LeaseElector(api, namespace, duration_seconds=settings.lease_seconds)
    scan = ScanSettings(
        cluster=settings.cluster,
        interval_seconds=settings.scan_interval_seconds,
        report_api=settings.report_api,
        report_cap_bytes=settings.report_cap_bytes,
        audit_url=settings.audit_url,
        audit_spool_dir=str(settings.audit_spool_dir) if settings.audit_spool_dir else None,
        audit_timeout_seconds=settings.audit_timeout_seconds,
    )
    log.info("scan: every %gs while holding Lease %s/%s as %s", settings.scan_interval_seconds, namespace,
             elector.name, elector.identity)  # fmt: skip
    return Scanner(api, scan, elector, ScanDeciders(settings, policy), inventory.current)


def observations_of(live: LiveCluster | None) -> Observations:
    return live.observations() if live is not None else NOTHING_OBSERVED
