"""Extractors: one module per resource family, manifest -> crossings (routes) -> rewrite patch.

`extractors_for(manifest)` looks up the registry by (API group, kind); an unknown kind has none, so
it creates no routes. A v1 Service is read by both the Cilium and the Linkerd extractor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.admission.extract import cilium, fsm, gateway, istio, linkerd, mcs
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

REGISTRY: dict[tuple[str, str], tuple[Extractor, ...]] = {
    (mcs.GROUP, "ServiceExport"): (mcs.SERVICE_EXPORT,),
    **{(g, "ServiceExport"): (fsm.SERVICE_EXPORT,) for g in fsm.GROUPS},
    **{(g, "GlobalTrafficPolicy"): (fsm.GLOBAL_TRAFFIC_POLICY,) for g in fsm.GROUPS},
    (gateway.GROUP, "HTTPRoute"): (gateway.HTTP_ROUTE,),
    (gateway.GROUP, "GRPCRoute"): (gateway.GRPC_ROUTE,),
    (istio.GROUP, "DestinationRule"): (istio.DESTINATION_RULE,),
    (istio.GROUP, "ServiceEntry"): (istio.SERVICE_ENTRY,),
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
