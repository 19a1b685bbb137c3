"""Azure Kubernetes Fleet Manager networking: `networking.fleet.azure.com` ServiceExport (v1alpha1,
v1beta1), ServiceImport and MultiClusterService (v1alpha1) (Azure/fleet-networking v0.3,
`config/crd/bases/networking.fleet.azure.com_*.yaml`, `examples/getting-started/artifacts/`).

- ServiceExport (empty spec) exports the Service to the fleet: a route from every other member
  cluster to the local service; no per-cluster target, so a refused route denies it.
- ServiceImport reaches the endpoints of `status.clusters[].cluster` (else every cluster running the
  service).
- MultiClusterService `spec.serviceImport.name` puts a load balancer in the local member cluster in
  front of the endpoints of every cluster exporting that service: a route from the local cluster to
  each of them (the ServiceImport's `status.clusters` when it is applied together). Neither can be
  narrowed: a refused route denies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.admission.extract.crossing import Crossing, ExtractionContext, Extractor
from policyengine.admission.extract.mcs import export_extractor, import_clusters, import_extractor, same_name_import
from policyengine.admission.extract.shape import describe, namespace_of, optional_map, required_str, spec_of

GROUP = "networking.fleet.azure.com"
EXPORT_REMEDY = (
    "a Fleet ServiceExport is imported by every member cluster: export a region-scoped Service "
    "(e.g. <name>-eu) from permitted members only"
)
IMPORT_REMEDY = "a Fleet ServiceImport reaches every exporting member: import a region-scoped service instead"
MCS_REMEDY = (
    "a MultiClusterService balances over every exporting member: point spec.serviceImport at a "
    "region-scoped service exported from permitted members only"
)


def extract_multicluster_service(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local member to every cluster exporting the imported service."""
    path = "spec.serviceImport.name"
    name = required_str(
        manifest, optional_map(manifest, spec_of(manifest).get("serviceImport"), "spec.serviceImport").get("name"), path
    )
    namespace = namespace_of(manifest)
    service = f"{namespace}/{name}"
    imported = same_name_import(ctx, [GROUP], name, namespace)
    clusters = import_clusters(imported, ctx) if imported is not None else ctx.service_clusters(service)
    via = f"{describe(manifest)} {path} (load-balanced over every exporting member)"
    return [
        Crossing(service, ctx.cluster, c, c, via, path, ctx.directory.cluster_info(c) is not None) for c in clusters
    ]


SERVICE_EXPORT = export_extractor("azure", EXPORT_REMEDY, "every member cluster of the fleet")
SERVICE_IMPORT = import_extractor("azure", IMPORT_REMEDY)
MULTI_CLUSTER_SERVICE = Extractor("azure", extract_multicluster_service, None, MCS_REMEDY)
