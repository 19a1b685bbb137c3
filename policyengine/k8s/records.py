"""The few fields the inventory keeps of each object, and the `Observations` they add up to.

An object is read once, when its event arrives, and only what decisions and the `inventory` listing
use is kept: a Namespace's labels, a Service's residency annotations (`residency.policyengine.io/*`)
and Cilium/Linkerd markers, the clusters of an MCS ServiceImport (`status.clusters`), the source
cluster of an EndpointSlice labelled `multicluster.kubernetes.io/source-cluster`, the cluster keys of
an FSM ServiceImport's endpoints, whether an MCS ServiceExport exists, a Node's region.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.k8s import kinds
from policyengine.k8s.kinds import Kind
from policyengine.observed import Observations

RESIDENCY_PREFIX = "residency.policyengine.io/"
CILIUM_MARKERS = ("service.cilium.io/global", "io.cilium/global-service", "service.cilium.io/shared",
                  "io.cilium/shared-service")  # fmt: skip
LINKERD_PREFIX = "mirror.linkerd.io/"
SOURCE_CLUSTER = "multicluster.kubernetes.io/source-cluster"
SERVICE_NAME_LABELS = ("multicluster.kubernetes.io/service-name", "kubernetes.io/service-name")
REGION = "topology.kubernetes.io/region"


@dataclass(frozen=True, slots=True)
class NamespaceRecord:
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    residency: Mapping[str, str]
    markers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    """Where an imported service's endpoints are: the service ("namespace/name") and clusters (or FSM keys)."""

    service: str
    clusters: frozenset[str]
    fsm_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ExportRecord:
    service: str


@dataclass(frozen=True, slots=True)
class NodeRecord:
    region: str | None


Record = NamespaceRecord | ServiceRecord | PlacementRecord | ExportRecord | NodeRecord


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _service(obj: Mapping[str, Any], name: str | None = None) -> str:
    meta = _meta(obj)
    return f"{meta.get('namespace', '')}/{name or meta.get('name', '')}"


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def record_of(kind: Kind, obj: Mapping[str, Any]) -> Record | None:
    """The fields kept of `obj` (None: nothing worth keeping, e.g. an EndpointSlice of no other cluster)."""
    meta = _meta(obj)
    labels = _strings(meta.get("labels"))
    if kind == kinds.NAMESPACE:
        return NamespaceRecord(labels)
    if kind == kinds.NODE:
        return NodeRecord(labels.get(REGION))
    if kind == kinds.SERVICE:
        annotations = _strings(meta.get("annotations"))
        residency = {k: v for k, v in annotations.items() if k.startswith(RESIDENCY_PREFIX)}
        markers = {
            k: v for k, v in {**labels, **annotations}.items() if k in CILIUM_MARKERS or k.startswith(LINKERD_PREFIX)
        }
        return ServiceRecord(residency, markers)
    if kind == kinds.ENDPOINT_SLICE:
        source = labels.get(SOURCE_CLUSTER)
        service = next((labels[k] for k in SERVICE_NAME_LABELS if labels.get(k)), None)
        if not source or not service:
            return None
        return PlacementRecord(_service(obj, service), frozenset({source}))
    if kind == kinds.MCS_SERVICE_IMPORT:
        status = obj.get("status")
        clusters = _list(status.get("clusters")) if isinstance(status, Mapping) else []
        return PlacementRecord(_service(obj), frozenset(str(c["cluster"]) for c in clusters if c.get("cluster")))
    if kind in kinds.FSM_SERVICE_IMPORTS:
        spec = obj.get("spec")
        ports = _list(spec.get("ports")) if isinstance(spec, Mapping) else []
        keys = {str(e["clusterKey"]) for p in ports for e in _list(p.get("endpoints")) if e.get("clusterKey")}
        return PlacementRecord(_service(obj), frozenset(), frozenset(keys))
    if kind == kinds.MCS_SERVICE_EXPORT:
        return ExportRecord(_service(obj))
    return None


def observations_of(
    cluster: str,
    records: Mapping[Kind, Mapping[str, Record]],
    synced: bool,
    resolve_fsm_key: Callable[[str], str | None],
) -> Observations:
    """The Observations of one cluster's records (FSM keys resolved to cluster names where known)."""
    labels = {key: r.labels for key, r in records.get(kinds.NAMESPACE, {}).items() if isinstance(r, NamespaceRecord)}
    placement: dict[str, set[str]] = {}
    for kind in (kinds.MCS_SERVICE_IMPORT, kinds.ENDPOINT_SLICE, *kinds.FSM_SERVICE_IMPORTS):
        for r in records.get(kind, {}).values():
            if isinstance(r, PlacementRecord):
                found = placement.setdefault(r.service, set())
                found.update(r.clusters)
                found.update(resolve_fsm_key(key) or key for key in r.fsm_keys)
    regions = {r.region for r in records.get(kinds.NODE, {}).values() if isinstance(r, NodeRecord) and r.region}
    return Observations(
        namespace_labels=labels,
        service_clusters={service: frozenset(clusters) for service, clusters in placement.items() if clusters},
        node_regions={cluster: frozenset(regions)} if regions else {},
        synced=synced,
    )
