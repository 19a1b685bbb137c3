"""Linkerd multicluster: a Service labelled `mirror.linkerd.io/exported` (or `federated: member`).

An exported service is mirrored into every linked cluster (`true`: through the gateway,
`remote-discovery`: pod to pod); a federated member joins `<svc>-federated` across all linked
clusters. Either way every other cluster reaches the local endpoints. The rewrite removes the label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.admission.extract.crossing import (
    Crossing,
    ExtractionContext,
    Extractor,
    Permits,
    RewritePlan,
)
from policyengine.admission.extract.patch import remove_metadata_entries
from policyengine.admission.extract.shape import describe, metadata_map, name_of, namespace_of

EXPORTED = "mirror.linkerd.io/exported"
FEDERATED = "mirror.linkerd.io/federated"


def _export_labels(manifest: Mapping[str, Any]) -> list[str]:
    labels = metadata_map(manifest, "labels")
    out = []
    if str(labels.get(EXPORTED, "")).lower() in ("true", "remote-discovery"):
        out.append(EXPORTED)
    if str(labels.get(FEDERATED, "")).lower() == "member":
        out.append(FEDERATED)
    return out


def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from every other cluster to the local service while it is exported or federated."""
    service = f"{namespace_of(manifest)}/{name_of(manifest)}"
    where = describe(manifest)
    return [
        Crossing(
            service, c, ctx.cluster, c, f'{where} metadata.labels["{label}"]', f'metadata.labels["{label}"]'
        )
        for label in _export_labels(manifest)
        for c in ctx.other_clusters()
    ]


def rewrite(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """Remove the export/federation labels when any linked cluster is refused."""
    crossings = extract(manifest, ctx)
    if all(permits(c.service, c.far) for c in crossings):
        return RewritePlan()
    labels = _export_labels(manifest)
    return RewritePlan(
        remove_metadata_entries(manifest, "labels", labels),
        tuple(f"label {label} removed: the service stays in {ctx.cluster}" for label in labels),
    )


SERVICE = Extractor("linkerd", extract, rewrite)
