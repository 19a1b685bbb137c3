"""The few fields the inventory keeps of each object, and the `Observations` they add up to.

An object is read once, when its event arrives, and only what decisions and the `inventory` listing
use is kept: a Namespace's labels, a Service's residency annotations (`residency.policyengine.io/*`)
and Cilium/Linkerd markers, the clusters of an MCS ServiceImport (`status.clusters`), the source
cluster of an EndpointSlice labelled `multicluster.kubernetes.io/source-cluster`, the cluster keys of
an FSM ServiceImport's endpoints (resolved to clusters), whether an MCS ServiceExport exists, a Node's region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.admission.observations import (
    ClusterByFsmKey,
    namespace_labels_of,
    node_region_of,
    service_clusters_of,
)
from policyengine.k8s import kinds
from policyengine.k8s.kinds import Kind
from policyengine.observed import Observations

RESIDENCY_PREFIX = "residency.policyengine.io/"
CILIUM_MARKERS = ("service.cilium.io/global", "io.cilium/global-service", "service.cilium.io/shared",
                  "io.cilium/shared-service")  # fmt: skip
LINKERD_PREFIX = "mirror.linkerd.io/"


@dataclass(frozen=True, slots=True)
class NamespaceRecord:
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    residency: Mapping[str, str]
    markers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    """Where an imported service's endpoints are: the service ("namespace/name") and its clusters."""

    service: str
    clusters: frozenset[str]


@dataclass(frozen=True, slots=True)
class ExportRecord:
    service: str


@dataclass(frozen=True, slots=True)
class NodeRecord:
    region: str | None


Record = NamespaceRecord | ServiceRecord | PlacementRecord | ExportRecord | NodeRecord


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def record_of(kind: Kind, obj: Mapping[str, Any], resolve_fsm_key: ClusterByFsmKey | None = None) -> Record | None:
    """The fields kept of `obj` (None: nothing worth keeping, e.g. an EndpointSlice of no other cluster).

    Namespaces, placement (ServiceImports, EndpointSlices) and Nodes are read by the parsers `check`
    uses too (`admission/observations.py`); FSM cluster keys are resolved by `resolve_fsm_key`."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    if kind == kinds.NAMESPACE:
        found = namespace_labels_of(obj)
        return NamespaceRecord(found[1]) if found is not None else None
    if kind == kinds.NODE:
        return NodeRecord(node_region_of(obj))
    if kind == kinds.SERVICE:
        labels, annotations = _strings(meta.get("labels")), _strings(meta.get("annotations"))
        residency = {k: v for k, v in annotations.items() if k.startswith(RESIDENCY_PREFIX)}
        markers = {
            k: v for k, v in {**labels, **annotations}.items() if k in CILIUM_MARKERS or k.startswith(LINKERD_PREFIX)
        }
        return ServiceRecord(residency, markers)
    if kind == kinds.MCS_SERVICE_EXPORT:
        return ExportRecord(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
    shown = service_clusters_of(obj, resolve_fsm_key)
    return PlacementRecord(shown[0], shown[1]) if shown is not None else None


def observations_of(cluster: str, records: Mapping[Kind, Mapping[str, Record]], synced: bool) -> Observations:
    """The Observations of one cluster's records."""
    labels = {key: r.labels for key, r in records.get(kinds.NAMESPACE, {}).items() if isinstance(r, NamespaceRecord)}
    placement: dict[str, set[str]] = {}
    for kind in (kinds.MCS_SERVICE_IMPORT, kinds.ENDPOINT_SLICE, *kinds.FSM_SERVICE_IMPORTS):
        for r in records.get(kind, {}).values():
            if isinstance(r, PlacementRecord):
                found = placement.setdefault(r.service, set())
                found.update(r.clusters)
    regions = {r.region for r in records.get(kinds.NODE, {}).values() if isinstance(r, NodeRecord) and r.region}
    return Observations(
        namespace_labels=labels,
        service_clusters={service: frozenset(clusters) for service, clusters in placement.items() if clusters},
        node_regions={cluster: frozenset(regions)} if regions else {},
        synced=synced,
    )
