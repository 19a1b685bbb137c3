"""Kubernetes MCS API (KEP-1645): `multicluster.x-k8s.io` v1alpha1/v1beta1 ServiceExport.

Exporting a Service merges its endpoints clusterset-wide: every other cluster of the set can reach
them. The API has no per-cluster target list, so there is no rewrite: a route the rules refuse denies
the export, with the remedy to front the permitted clusters with a region-scoped service
(KEP-1645 "namespace sameness": e.g. `checkout-eu` exported only from EU clusters).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.admission.extract.crossing import Crossing, ExtractionContext, Extractor
from policyengine.admission.extract.shape import describe, name_of, namespace_of, spec_of

GROUP = "multicluster.x-k8s.io"
DENY_REMEDY = (
    "MCS exports to the whole clusterset: export a region-scoped service (e.g. <name>-eu) "
    "from permitted clusters only"
)


def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from every other known cluster to the exported service in the local cluster."""
    spec_of(manifest)  # a non-mapping spec is a shape error
    service = f"{namespace_of(manifest)}/{name_of(manifest)}"
    via = f"{describe(manifest)} (exported to every cluster of the clusterset)"
    return [Crossing(service, c, ctx.cluster, c, via, "metadata.name") for c in ctx.other_clusters()]


SERVICE_EXPORT = Extractor("mcs", extract, None, DENY_REMEDY)
