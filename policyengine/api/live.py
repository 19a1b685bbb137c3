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
    from policyengine.k8s.inventory import Inventory, InventorySnapshot
    from policyengine.k8s.scan import Scanner

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
    def start(cls, settings: Settings, fsm_key: Callable[[str], str | None]) -> LiveCluster:
        """Connect as configured and start the inventory. Raises ClusterConfigError."""
        from policyengine.k8s.client import connect, in_cluster
        from policyengine.k8s.inventory import Inventory

        connection = in_cluster() if settings.in_cluster else connect(settings.kubeconfig, settings.kube_context)
        inventory = Inventory(
            connection.api, settings.cluster, resolve_fsm_key=fsm_key, watch_seconds=settings.watch_seconds
        )
        log.info("inventory: watching %s (context %s) as cluster %s", connection.server, connection.context,
                 settings.cluster)  # fmt: skip
        return cls(inventory.start(), f"{connection.context} ({connection.server})")

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


def observations_of(live: LiveCluster | None) -> Observations:
    return live.observations() if live is not None else NOTHING_OBSERVED
