"""What an extractor reports: the cross-cluster crossings a manifest creates, and how to undo them.

A `Crossing` is one route a manifest opens between two clusters: usually the local cluster (where the
object is applied) and another one (its `far` end); a mesh-wide setting (an Istio `distribute[].from`
entry) can open a route between two other clusters. A `RewritePlan` is the RFC 6902 patch that keeps
only the permitted crossings, with one line per removed part for the admission warnings. `notes` are
what an extractor read but found to be no crossing (e.g. FSM ignores `targets` under `lbType:
Locality`), said so that a user is not left guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from policyengine.admission.extract.shape import namespace_of
from policyengine.observed import NOTHING_OBSERVED, Observations

JsonPatch = list[dict[str, Any]]


class ClusterFacts(Protocol):
    """The few facts about a cluster the extractors use (policy's `ClusterInfo` has them)."""

    @property
    def name(self) -> str: ...

    @property
    def fsm_key(self) -> str: ...

    @property
    def locality(self) -> str: ...

    @property
    def network(self) -> str: ...

    @property
    def linkerd_link(self) -> str: ...


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

    def clusters_in_network(self, network: str) -> Sequence[str]: ...

    def cluster_by_linkerd_link(self, link: str) -> str | None: ...

    def service(self, name: str) -> ServiceFacts | None: ...

    def service_by_host(self, host: str) -> str | None: ...


class RelatedIndex:
    """The objects applied together, by kind and by kind and namespace (and name), built once for all of
    them (`check` over 10,000 objects would otherwise scan every object of a kind for each one); lookups
    leave out the object being decided."""

    __slots__ = ("_by_kind", "_by_name", "_by_namespace", "_itself")

    def __init__(
        self,
        by_kind: Mapping[str, Sequence[Mapping[str, Any]]],
        itself: object = None,
        by_namespace: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]] | None = None,
        by_name: Mapping[tuple[str, str, str], Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        self._by_kind = by_kind
        self._itself = itself
        if by_namespace is None or by_name is None:
            in_namespace: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
            named: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
            for kind, objects in by_kind.items():
                for obj in objects:
                    namespace = namespace_of(obj)
                    in_namespace.setdefault((kind, namespace), []).append(obj)
                    name = _name(obj)
                    if name is not None:
                        named.setdefault((kind, namespace, name), []).append(obj)
            by_namespace, by_name = in_namespace, named
        self._by_namespace = by_namespace
        self._by_name = by_name

    @classmethod
    def of(cls, objects: Sequence[Mapping[str, Any]]) -> RelatedIndex:
        by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for obj in objects:
            if isinstance(obj, Mapping) and isinstance(obj.get("kind"), str):
                by_kind.setdefault(obj["kind"], []).append(obj)
        return cls(by_kind)

    def without(self, itself: object) -> RelatedIndex:
        """The same index, leaving out `itself`."""
        return RelatedIndex(self._by_kind, itself, self._by_namespace, self._by_name)

    def of_kind(self, kind: str, namespace: str | None = None, name: str | None = None) -> list[Mapping[str, Any]]:
        """The objects of `kind` (in `namespace`, named `name`, when given)."""
        if namespace is None:
            found: Sequence[Mapping[str, Any]] = self._by_kind.get(kind, ())
        elif name is None:
            found = self._by_namespace.get((kind, namespace), ())
        else:
            found = self._by_name.get((kind, namespace, name), ())
        return [obj for obj in found if obj is not self._itself]


def _name(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else None


@dataclass(frozen=True, slots=True)
class ExtractionContext:
    """Where the manifest is applied (`cluster`), the policy's cluster directory, and the other objects
    applied with it (`related`: a ReferenceGrant, the ServiceImport a route names, a Linkerd mirror
    Service), which extractors may read but never need: admission sees one object at a time.
    `observations` are what the cluster shows beyond the repo: the clusters observed to hold a
    service's endpoints count as clusters that run it, together with services.yaml."""

    cluster: str
    directory: ClusterDirectory
    related: Sequence[Mapping[str, Any]] | RelatedIndex = ()
    observations: Observations = NOTHING_OBSERVED

    def related_objects(
        self, kind: str, groups: Sequence[str], namespace: str | None = None, name: str | None = None
    ) -> list[Mapping[str, Any]]:
        """The related objects of `kind` whose API group is one of `groups` (in `namespace`, named `name`,
        when given: an index lookup, not a scan, for the objects of `check`)."""
        related = self.related
        candidates = related.of_kind(kind, namespace, name) if isinstance(related, RelatedIndex) else related
        out = []
        for obj in candidates:
            if not isinstance(obj, Mapping) or obj.get("kind") != kind:
                continue
            if namespace is not None and namespace_of(obj) != namespace:
                continue
            if name is not None and _name(obj) != name:
                continue
            api_version = str(obj.get("apiVersion", ""))
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            if group in groups:
                out.append(obj)
        return out

    def other_clusters(self) -> list[str]:
        """Every known cluster except the local one, sorted."""
        return sorted(c for c in self.directory.cluster_names() if c != self.cluster)

    def runs_here(self, service: str) -> bool:
        """Whether `service` runs in the local cluster (services.yaml or observed; an unknown service may)."""
        info = self.directory.service(service)
        return info is None or self.cluster in info.clusters or self.cluster in self.observations.clusters_of(service)

    def service_clusters(self, service: str) -> list[str]:
        """Clusters that run `service` per services.yaml (else every known cluster) together with the
        clusters observed to hold its endpoints (an observed cluster the repo does not declare stays in:
        the rules deny it as unknown); local excluded."""
        info = self.directory.service(service)
        names = list(info.clusters) if info is not None else list(self.directory.cluster_names())
        names.extend(self.observations.clusters_of(service))
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
    """Which far clusters the decisions allow, per service; and which routes between two clusters."""

    def __call__(self, service: str, cluster: str) -> bool: ...

    def pair(self, service: str, source: str, destination: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class PermittedClusters:
    """`by_service[service]` = clusters the rules allow for that service's data (local included if so);
    `refused_pairs` / `allowed_pairs` = (service, source, destination) of every route the rules refused
    / allowed."""

    by_service: Mapping[str, frozenset[str]]
    refused_pairs: frozenset[tuple[str, str, str]] = frozenset()
    allowed_pairs: frozenset[tuple[str, str, str]] = frozenset()

    def __call__(self, service: str, cluster: str) -> bool:
        return cluster in self.by_service.get(service, frozenset())

    def pair(self, service: str, source: str, destination: str) -> bool:
        """Whether the route source -> destination for `service` was allowed (a route never decided
        counts as allowed only when both ends are permitted clusters of the service)."""
        if (service, source, destination) in self.refused_pairs:
            return False
        if (service, source, destination) in self.allowed_pairs:
            return True
        return source == destination or (self(service, source) and self(service, destination))


Extract = Callable[[Mapping[str, Any], ExtractionContext], list[Crossing]]
Rewrite = Callable[[Mapping[str, Any], ExtractionContext, Permits], RewritePlan | None]
Notes = Callable[[Mapping[str, Any], ExtractionContext], list[str]]


@dataclass(frozen=True, slots=True)
class Extractor:
    """One resource family: find its crossings, and (when the family can) rewrite to the permitted ones.

    `rewrite` returns None when nothing permitted would be left; a family whose `rewrite` is None
    cannot be narrowed at all and is denied with `deny_remedy` added to each violation. `notes` says
    what the family read that creates no crossing (one line each), for every outcome.
    """

    family: str
    extract: Extract
    rewrite: Rewrite | None = None
    deny_remedy: str = ""
    notes: Notes | None = None
