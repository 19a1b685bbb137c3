"""Gateway API (GEP-1748): HTTPRoute and GRPCRoute backendRefs of kind ServiceImport.

A `ServiceImport` backendRef (group `multicluster.x-k8s.io`) routes to the service's endpoints across the
clusterset, so it is a route from the local cluster to every cluster that runs the service (services.yaml,
else every known cluster). A ServiceImport cannot be narrowed: the rewrite replaces it with a local
`Service` backendRef of the same name and port when the local cluster is permitted and runs the service,
else drops it. A rule left with no backendRefs would answer 500s, so that is a deny.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.admission.extract.crossing import (
    Crossing,
    ExtractionContext,
    Extractor,
    JsonPatch,
    Permits,
    RewritePlan,
)
from policyengine.admission.extract.patch import pointer
from policyengine.admission.extract.shape import (
    describe,
    namespace_of,
    optional_list,
    optional_map,
    optional_str,
    required_str,
    spec_of,
)

GROUP = "gateway.networking.k8s.io"
MCS_GROUP = "multicluster.x-k8s.io"


@dataclass(frozen=True, slots=True)
class ImportRef:
    """One ServiceImport backendRef: where it is and which service it names."""

    rule: int
    index: int
    service: str
    ref: Mapping[str, Any]

    @property
    def path(self) -> str:
        return f"spec.rules[{self.rule}].backendRefs[{self.index}]"


def _rules(manifest: Mapping[str, Any]) -> list[list[Mapping[str, Any]]]:
    """backendRefs of every rule (shape-checked)."""
    rules = []
    for i, raw in enumerate(optional_list(manifest, spec_of(manifest).get("rules"), "spec.rules")):
        rule = optional_map(manifest, raw, f"spec.rules[{i}]")
        refs = optional_list(manifest, rule.get("backendRefs"), f"spec.rules[{i}].backendRefs")
        rules.append(
            [optional_map(manifest, r, f"spec.rules[{i}].backendRefs[{j}]") for j, r in enumerate(refs)]
        )
    return rules


def _import_refs(manifest: Mapping[str, Any]) -> list[ImportRef]:
    out = []
    for i, refs in enumerate(_rules(manifest)):
        for j, ref in enumerate(refs):
            path = f"spec.rules[{i}].backendRefs[{j}]"
            kind = optional_str(manifest, ref.get("kind"), f"{path}.kind") or "Service"
            group = optional_str(manifest, ref.get("group"), f"{path}.group") or ""
            if kind != "ServiceImport" or group != MCS_GROUP:
                continue
            name = required_str(manifest, ref.get("name"), f"{path}.name")
            ns = optional_str(manifest, ref.get("namespace"), f"{path}.namespace") or namespace_of(manifest)
            out.append(ImportRef(i, j, f"{ns}/{name}", ref))
    return out


def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to every cluster running each imported service."""
    where = describe(manifest)
    return [
        Crossing(imp.service, ctx.cluster, c, c, f"{where} {imp.path}", imp.path)
        for imp in _import_refs(manifest)
        for c in ctx.service_clusters(imp.service)
    ]


def _runs_locally(ctx: ExtractionContext, service: str) -> bool:
    info = ctx.directory.service(service)
    return info is None or ctx.cluster in info.clusters


def rewrite(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """Replace refused ServiceImport refs by the local Service (when permitted) or drop them."""
    rules = _rules(manifest)
    by_rule: dict[int, list[tuple[ImportRef, bool]]] = {}
    for imp in _import_refs(manifest):
        if all(permits(imp.service, c) for c in ctx.service_clusters(imp.service)):
            continue
        local = permits(imp.service, ctx.cluster) and _runs_locally(ctx, imp.service)
        by_rule.setdefault(imp.rule, []).append((imp, local))
    patch: JsonPatch = []
    removed: list[str] = []
    for rule, changes in sorted(by_rule.items()):
        dropped = sum(1 for _, local in changes if not local)
        if dropped == len(rules[rule]):
            return None
        for imp, local in sorted(changes, key=lambda change: -change[0].index):
            path = pointer("spec", "rules", rule, "backendRefs", imp.index)
            if local:
                value = {k: v for k, v in imp.ref.items() if k != "group"}
                value["kind"] = "Service"
                patch.append({"op": "replace", "path": path, "value": value})
                removed.append(
                    f"replaced {imp.path} ServiceImport {imp.service} by the local Service in {ctx.cluster}"
                )
            else:
                patch.append({"op": "remove", "path": path})
                removed.append(f"removed {imp.path} ServiceImport {imp.service}")
    return RewritePlan(patch, tuple(removed))


HTTP_ROUTE = Extractor("gateway", extract, rewrite)
GRPC_ROUTE = Extractor("gateway", extract, rewrite)
