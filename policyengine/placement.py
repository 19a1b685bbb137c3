"""Where the repo says things are against where a live cluster shows them: placement drift and region flags.

Both are pure functions of a loaded policy and an `Observations` (`policyengine.observed`), so the
inventory's metric, `policyengine inventory` and the tests compute them the same way.

- `placement_drift(policy, observations)`: per service the cluster observes, the clusters it holds
  endpoints in that services.yaml does not list (`extra`; those the repo does not declare at all are
  also `unknown`: the rules deny routes to them) and the listed clusters it was not seen in
  (`missing`). A service that was not observed says nothing, so it has no drift.
- `region_flags(policy, observations)`: a cluster whose Nodes report a `topology.kubernetes.io/region`
  other than the region code clusters.yaml gives it (or that the repo does not declare). Decisions
  never read node regions (only clusters.yaml says where a cluster is), so a flag is for the operator:
  either the repo or the cluster is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from policyengine.observed import Observations


class _Cluster(Protocol):
    @property
    def region(self) -> str: ...


class _Service(Protocol):
    @property
    def clusters(self) -> Sequence[str]: ...


class PlacementPolicy(Protocol):
    """What drift needs of the loaded policy (`LoadedPolicy` has it)."""

    def cluster_info(self, name: str) -> _Cluster | None: ...

    def service(self, name: str) -> _Service | None: ...

    def service_names(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Drift:
    """One service whose observed placement differs from services.yaml."""

    service: str
    declared: tuple[str, ...]  # services.yaml clusters (empty when services.yaml does not list it)
    observed: tuple[str, ...]
    extra: tuple[str, ...]  # observed, not declared for the service
    missing: tuple[str, ...]  # declared, not observed
    unknown: tuple[str, ...]  # observed clusters clusters.yaml does not declare (denied by the rules)

    @property
    def message(self) -> str:
        parts = []
        if self.extra:
            parts.append(f"observed in {', '.join(self.extra)}, which services.yaml does not list")
        if self.unknown:
            parts.append(f"{', '.join(self.unknown)} not declared in clusters.yaml (routes there are denied)")
        if self.missing:
            parts.append(f"not observed in {', '.join(self.missing)}, which services.yaml lists")
        return f"{self.service}: " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class RegionFlag:
    """A cluster whose nodes report a region other than the repo's: never trusted for a decision."""

    cluster: str
    declared: str  # clusters.yaml region (provider/code), "" when the repo does not declare the cluster
    reported: tuple[str, ...]  # the node region labels seen

    @property
    def message(self) -> str:
        seen = ", ".join(self.reported)
        if not self.declared:
            return f"cluster {self.cluster}: nodes report region {seen}, but clusters.yaml does not declare the cluster"
        return (
            f"cluster {self.cluster}: nodes report region {seen}, clusters.yaml says {self.declared}; "
            "decisions use clusters.yaml only: fix the repo or the cluster"
        )


def placement_drift(policy: PlacementPolicy, observations: Observations) -> list[Drift]:
    """Every observed service whose placement differs from services.yaml, sorted by service."""
    drifts = []
    for service in sorted(observations.service_clusters):
        observed = set(observations.clusters_of(service))
        if not observed:
            continue
        info = policy.service(service)
        declared = set(info.clusters) if info is not None else set()
        extra = observed - declared
        missing = declared - observed
        if extra or missing:
            drifts.append(
                Drift(
                    service=service,
                    declared=tuple(sorted(declared)),
                    observed=tuple(sorted(observed)),
                    extra=tuple(sorted(extra)),
                    missing=tuple(sorted(missing)),
                    unknown=tuple(sorted(c for c in observed if policy.cluster_info(c) is None)),
                )
            )
    return drifts


def region_flags(policy: PlacementPolicy, observations: Observations) -> list[RegionFlag]:
    """Every cluster whose nodes report a region other than the code of its clusters.yaml region."""
    flags = []
    for cluster in sorted(observations.node_regions):
        reported = set(observations.node_regions[cluster])
        if not reported:
            continue
        info = policy.cluster_info(cluster)
        if info is None:
            flags.append(RegionFlag(cluster, "", tuple(sorted(reported))))
            continue
        code = info.region.partition("/")[2] or info.region
        if reported != {code}:
            flags.append(RegionFlag(cluster, info.region, tuple(sorted(reported))))
    return flags
