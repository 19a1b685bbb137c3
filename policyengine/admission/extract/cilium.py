"""Cilium ClusterMesh: a v1 Service annotated `service.cilium.io/global: "true"`.

A global service load-balances across the backends of every cluster: other clusters reach the local
backends (unless `service.cilium.io/shared: "false"`), and local clients reach the remote ones. The
rewrite sets `shared: "false"` on this cluster when a refused cluster would reach the local backends,
and `global: "false"` when local clients would reach a refused cluster (`shared` does not stop local
clients from consuming remote backends; `affinity: local` is only a preference).

Cilium still honours the older keys `io.cilium/global-service` and `io.cilium/shared-service`
(`pkg/annotation`: the `service.cilium.io/...` key is read first, then its alias), so they are read
the same way; a rewrite sets the current key, and the older one too when the Service carries it, so
both say the same.
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
from policyengine.admission.extract.patch import set_metadata_entries
from policyengine.admission.extract.shape import describe, metadata_map, name_of, namespace_of

GLOBAL = "service.cilium.io/global"
SHARED = "service.cilium.io/shared"
ALIASES = {GLOBAL: "io.cilium/global-service", SHARED: "io.cilium/shared-service"}


def _key(annotations: Mapping[str, Any], key: str) -> str:
    """The annotation Cilium reads for `key`: the current one if present, else its older alias."""
    return key if key in annotations or ALIASES[key] not in annotations else ALIASES[key]


def _flag(annotations: Mapping[str, Any], key: str, default: bool) -> bool:
    value = annotations.get(_key(annotations, key))
    return default if value is None else str(value).strip().lower() == "true"


def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes between the local service and every other cluster, both ways, while the service is global."""
    annotations = metadata_map(manifest, "annotations")
    if not _flag(annotations, GLOBAL, default=False):
        return []
    service = f"{namespace_of(manifest)}/{name_of(manifest)}"
    where = describe(manifest)
    crossings = []
    for c in ctx.other_clusters():
        if _flag(annotations, SHARED, default=True):
            path = f'metadata.annotations["{_key(annotations, SHARED)}"]'
            crossings.append(Crossing(service, c, ctx.cluster, c, f"{where} {path} (local backends shared)", path))
        path = f'metadata.annotations["{_key(annotations, GLOBAL)}"]'
        crossings.append(Crossing(service, ctx.cluster, c, c, f"{where} {path} (remote backends used)", path))
    return crossings


def rewrite(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """`shared: "false"` against refused consumers, `global: "false"` against refused remote backends."""
    refused = [c for c in extract(manifest, ctx) if not permits(c.service, c.far)]
    annotations = metadata_map(manifest, "annotations")
    entries: dict[str, str] = {}
    removed = []
    inbound = sorted({c.far for c in refused if c.destination == ctx.cluster})
    outbound = sorted({c.far for c in refused if c.source == ctx.cluster})
    if inbound:
        entries[SHARED] = "false"
        removed.append(f"{SHARED}=false: local backends no longer reachable from {', '.join(inbound)}")
    if outbound:
        entries[GLOBAL] = "false"
        removed.append(f"{GLOBAL}=false: no remote backends in {', '.join(outbound)}")
    for key in list(entries):
        if ALIASES[key] in annotations:
            entries[ALIASES[key]] = entries[key]
    return RewritePlan(set_metadata_entries(manifest, "annotations", entries), tuple(removed))


SERVICE = Extractor("cilium", extract, rewrite)
