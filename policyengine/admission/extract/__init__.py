"""Extractors: one module per resource family, manifest -> crossings (routes) -> rewrite patch.

`extractors_for(manifest)` looks up the registry by (API group, kind); an unknown kind has none, so
it creates no routes. A v1 Service is read by both the Cilium and the Linkerd extractor. Every route
kind (Gateway API and Linkerd's `policy.linkerd.io` HTTPRoute) is read by one extractor that places
ServiceImport backendRefs (gateway.py) and Linkerd mirror Services (linkerd.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.admission.extract import (
    aws,
    azure,
    cilium,
    fsm,
    gateway,
    gke,
    istio,
    istio_routing,
    linkerd,
    mcs,
    smi,
)
from policyengine.admission.extract.crossing import (
    ClusterDirectory,
    Crossing,
    ExtractionContext,
    Extractor,
    Permits,
    PermittedClusters,
    RewritePlan,
)
from policyengine.admission.extract.shape import ManifestError, group_of

ROUTE = gateway.route_extractor("gateway", (gateway.service_import_target, linkerd.mirror_target))
LINKERD_ROUTE = gateway.route_extractor("linkerd", (linkerd.mirror_target, gateway.service_import_target))

REGISTRY: dict[tuple[str, str], tuple[Extractor, ...]] = {
    (mcs.GROUP, "ServiceExport"): (mcs.SERVICE_EXPORT,),
    (mcs.GROUP, "ServiceImport"): (mcs.SERVICE_IMPORT,),
    (gke.GROUP, "ServiceExport"): (gke.SERVICE_EXPORT,),
    (gke.GROUP, "ServiceImport"): (gke.SERVICE_IMPORT,),
    (aws.GROUP, "ServiceExport"): (aws.SERVICE_EXPORT,),
    (aws.GROUP, "ServiceImport"): (aws.SERVICE_IMPORT,),
    (azure.GROUP, "ServiceExport"): (azure.SERVICE_EXPORT,),
    (azure.GROUP, "ServiceImport"): (azure.SERVICE_IMPORT,),
    (azure.GROUP, "MultiClusterService"): (azure.MULTI_CLUSTER_SERVICE,),
    **{(g, "ServiceExport"): (fsm.SERVICE_EXPORT,) for g in fsm.GROUPS},
    **{(g, "GlobalTrafficPolicy"): (fsm.GLOBAL_TRAFFIC_POLICY,) for g in fsm.GROUPS},
    **{(gateway.GROUP, kind): (ROUTE,) for kind in gateway.KINDS},
    (gateway.LINKERD_POLICY_GROUP, "HTTPRoute"): (LINKERD_ROUTE,),
    (smi.GROUP, "TrafficSplit"): (smi.TRAFFIC_SPLIT,),
    (istio.GROUP, "DestinationRule"): (istio.DESTINATION_RULE,),
    (istio.GROUP, "ServiceEntry"): (istio_routing.SERVICE_ENTRY,),
    (istio.GROUP, "WorkloadEntry"): (istio_routing.WORKLOAD_ENTRY,),
    (istio.GROUP, "VirtualService"): (istio_routing.VIRTUAL_SERVICE,),
    ("", "Service"): (cilium.SERVICE, linkerd.SERVICE),
}


def extractors_for(manifest: Mapping[str, Any]) -> tuple[Extractor, ...]:
    """The extractors for a manifest's (group, kind); () for kinds that create no crossings."""
    return REGISTRY.get((group_of(manifest), str(manifest.get("kind", ""))), ())


def extract_crossings(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Every crossing the manifest creates, from all its extractors."""
    return [c for extractor in extractors_for(manifest) for c in extractor.extract(manifest, ctx)]


__all__ = [
    "REGISTRY",
    "ClusterDirectory",
    "Crossing",
    "ExtractionContext",
    "Extractor",
    "ManifestError",
    "Permits",
    "PermittedClusters",
    "RewritePlan",
    "extract_crossings",
    "extractors_for",
]
