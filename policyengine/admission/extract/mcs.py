"""Kubernetes MCS API (KEP-1645): `multicluster.x-k8s.io` v1alpha1/v1beta1 ServiceExport and ServiceImport.

Fields read (kubernetes-sigs/mcs-api v0.5.0, `pkg/apis/v1beta1/serviceexport.go`, `serviceimport.go`):

- ServiceExport: its existence. Exporting a Service merges its endpoints clusterset-wide, so every
  other cluster of the set can reach them. The API has no per-cluster target list, so there is no
  rewrite: a route the rules refuse denies the export, with the remedy to front the permitted clusters
  with a region-scoped service (KEP-1645 "namespace sameness": e.g. `checkout-eu` exported only from
  EU clusters).
- ServiceImport: the consumer side. Local clients of the import reach the endpoints of every cluster
  in `status.clusters[].cluster` ("the name of the exporting cluster"); with no status yet, every
  cluster running the service (services.yaml, else every known cluster). A ServiceImport is the
  controller's view of the clusterset and cannot be narrowed: a refused route denies it.

The vendor APIs with the same shape (gke.py, aws.py, azure.py) reuse `export_extractor` and
`import_extractor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policyengine.admission.extract.crossing import Crossing, ExtractionContext, Extractor
from policyengine.admission.extract.shape import (
    describe,
    group_of,
    metadata_map,
    name_of,
    namespace_of,
    optional_list,
    optional_map,
    required_str,
    spec_of,
)

GROUP = "multicluster.x-k8s.io"
DENY_REMEDY = (
    "MCS exports to the whole clusterset: export a region-scoped service (e.g. <name>-eu) from permitted clusters only"
)
IMPORT_REMEDY = (
    "a ServiceImport reaches every exporting cluster: import a region-scoped service (e.g. <name>-eu) "
    "exported from permitted clusters only"
)


# Vendor annotations that narrow a ServiceImport to the export of one cluster, and that name the
# exported service when it differs from the import's own name, by API group.
PIN_ANNOTATIONS = {"application-networking.k8s.aws": "application-networking.k8s.aws/aws-eks-cluster-name"}
EXPORT_NAME_ANNOTATIONS = {"application-networking.k8s.aws": "application-networking.k8s.aws/export-name"}


def imported_service(manifest: Mapping[str, Any]) -> str:
    """The "namespace/name" of the service a ServiceImport imports: its own name, or the exported
    name a vendor annotation gives (EXPORT_NAME_ANNOTATIONS)."""
    annotation = EXPORT_NAME_ANNOTATIONS.get(group_of(manifest))
    exported = metadata_map(manifest, "annotations").get(annotation) if annotation else None
    name = exported if isinstance(exported, str) and exported else name_of(manifest)
    return f"{namespace_of(manifest)}/{name}"


def status_clusters(manifest: Mapping[str, Any]) -> list[str] | None:
    """The exporting clusters a ServiceImport names: `status.clusters[].cluster`, or the one cluster a
    vendor annotation pins it to (PIN_ANNOTATIONS); None when it names none."""
    annotation = PIN_ANNOTATIONS.get(group_of(manifest))
    if annotation:
        pinned = metadata_map(manifest, "annotations").get(annotation)
        if isinstance(pinned, str) and pinned:
            return [pinned]
    status = optional_map(manifest, manifest.get("status"), "status")
    entries = optional_list(manifest, status.get("clusters"), "status.clusters")
    if not entries:
        return None
    return [
        required_str(
            manifest, optional_map(manifest, e, f"status.clusters[{i}]").get("cluster"), f"status.clusters[{i}].cluster"
        )
        for i, e in enumerate(entries)
    ]


def import_clusters(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[str]:
    """The non-local clusters whose endpoints a ServiceImport reaches (see the module docstring)."""
    named = status_clusters(manifest)
    if named is None:
        return ctx.service_clusters(imported_service(manifest))
    return sorted({c for c in named if c != ctx.cluster})


def export_extractor(family: str, remedy: str, scope: str = "every cluster of the clusterset") -> Extractor:
    """A ServiceExport whose export reaches `scope`: routes from every other cluster to the local service."""

    def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
        spec_of(manifest)  # a non-mapping spec is a shape error
        service = f"{namespace_of(manifest)}/{name_of(manifest)}"
        via = f"{describe(manifest)} (exported to {scope})"
        return [Crossing(service, c, ctx.cluster, c, via, "metadata.name") for c in ctx.other_clusters()]

    return Extractor(family, extract, None, remedy)


def import_extractor(family: str, remedy: str, path: str = "status.clusters") -> Extractor:
    """A ServiceImport: routes from the local cluster to every cluster it imports from."""

    def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
        spec_of(manifest)
        service = imported_service(manifest)
        via = f"{describe(manifest)} {path} (endpoints imported from every exporting cluster)"
        return [
            Crossing(service, ctx.cluster, c, c, via, path, ctx.directory.cluster_info(c) is not None)
            for c in import_clusters(manifest, ctx)
        ]

    return Extractor(family, extract, None, remedy)


def same_name_import(
    ctx: ExtractionContext, groups: Sequence[str], name: str, namespace: str
) -> Mapping[str, Any] | None:
    """The ServiceImport `namespace/name` of one of `groups` among the objects applied together."""
    for obj in ctx.related_objects("ServiceImport", groups, namespace, name):
        meta = obj.get("metadata")
        if isinstance(meta, Mapping) and meta.get("name") == name and namespace_of(obj) == namespace:
            return obj
    return None


SERVICE_EXPORT = export_extractor("mcs", DENY_REMEDY)
SERVICE_IMPORT = import_extractor("mcs", IMPORT_REMEDY)
