"""What an extractor reports: the cross-cluster crossings a manifest creates, and how to undo them.

A `Crossing` is one route a manifest opens between the local cluster (where the object is applied)
and another cluster (its `far` end). A `RewritePlan` is the RFC 6902 patch that keeps only the
permitted crossings, with one line per removed part for the admission warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

JsonPatch = list[dict[str, Any]]


class ClusterFacts(Protocol):
    """The few facts about a cluster the extractors use (policy's `ClusterInfo` has them)."""

    @property
    def name(self) -> str: ...

    @property
    def fsm_key(self) -> str: ...

    @property
    def locality(self) -> str: ...


class ServiceFacts(Protocol):
    """Where a known service runs (policy's `ServiceInfo` has it)."""

    @property
    def clusters(self) -> Sequence[str]: ...


class ClusterDirectory(Protocol):
    """The policy lookups extractors need; `policyengine.policy.LoadedPolicy` implements them."""

    def cluster_names(self) -> Sequence[str]: ...

    def cluster_info(self, name: str) -> ClusterFacts | None: ...

    def cluster_by_fsm_key(self, key: str) -> str | None: ...

    def clusters_in_locality(self, pattern: str) -> Sequence[str]: ...

    def service(self, name: str) -> ServiceFacts | None: ...

    def service_by_host(self, host: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ExtractionContext:
    """Where the manifest is applied (`cluster`) and the policy's cluster directory."""

    cluster: str
    directory: ClusterDirectory

    def other_clusters(self) -> list[str]:
        """Every known cluster except the local one, sorted."""
        return sorted(c for c in self.directory.cluster_names() if c != self.cluster)

    def service_clusters(self, service: str) -> list[str]:
        """Clusters that run `service` per services.yaml, else every known cluster; local excluded."""
        info = self.directory.service(service)
        names = list(info.clusters) if info is not None else list(self.directory.cluster_names())
        return sorted({c for c in names if c != self.cluster})


@dataclass(frozen=True, slots=True)
class Crossing:
    """One route a manifest creates between the local cluster and `far`.

    `source` calls `destination`, where the endpoints of `service` ("namespace/name") live. `via`
    names the object and the JSON path that creates the route ("GlobalTrafficPolicy shop/checkout
    spec.targets[1].clusterKey"); `path` is that JSON path alone. `known` is False when the far end is
    a cluster key, locality or address the policy does not know (the rules deny those).
    """

    service: str
    source: str
    destination: str
    far: str
    via: str
    path: str
    known: bool = True


@dataclass(frozen=True, slots=True)
class RewritePlan:
    """A patch that keeps only the permitted crossings, and what it removed (one line each)."""

    patch: JsonPatch = field(default_factory=list)
    removed: tuple[str, ...] = ()


class Permits(Protocol):
    """Which far clusters the decisions allow, per service."""

    def __call__(self, service: str, cluster: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class PermittedClusters:
    """`permitted[service]` = clusters the rules allow for that service's data (local included if so)."""

    by_service: Mapping[str, frozenset[str]]

    def __call__(self, service: str, cluster: str) -> bool:
        return cluster in self.by_service.get(service, frozenset())


Extract = Callable[[Mapping[str, Any], ExtractionContext], list[Crossing]]
Rewrite = Callable[[Mapping[str, Any], ExtractionContext, Permits], RewritePlan | None]


@dataclass(frozen=True, slots=True)
class Extractor:
    """One resource family: find its crossings, and (when the family can) rewrite to the permitted ones.

    `rewrite` returns None when nothing permitted would be left; a family whose `rewrite` is None
    cannot be narrowed at all and is denied with `deny_remedy` added to each violation.
    """

    family: str
    extract: Extract
    rewrite: Rewrite | None = None
    deny_remedy: str = ""
