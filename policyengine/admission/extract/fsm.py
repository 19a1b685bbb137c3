"""Flomesh FSM: ServiceExport `spec.targetClusters` and GlobalTrafficPolicy `spec.targets[].clusterKey`.

Both API groups are matched: `multicluster.flomesh.io` (FSM >= v1.3) and `flomesh.io` (osm-edge, older
FSM). Cluster keys have the form `region/zone/group/cluster`; a key the policy does not know becomes a
route to an unknown cluster.

- ServiceExport: an empty `targetClusters` exports the service to every managed cluster; rewrite sets it
  to the permitted clusters' keys (nothing permitted -> deny: an empty list would mean "all").
- GlobalTrafficPolicy (consumer side, FSM `pkg/multicluster/traffic_policy.go` and
  `service_import.go`, v1.5): under `ActiveActive` or `FailOver` each target is a route from the local
  cluster, and no targets means every cluster that exports the service ("accept all": every cluster
  running it per services.yaml, else every known cluster); under `Locality` (the default when `lbType`
  is unset) FSM serves local endpoints only and ignores `targets`, so there is no route (a note says
  so). The rewrite drops foreign targets, turns "no targets" into the permitted clusters' keys, and
  when none is left sets `lbType: Locality` with no targets (local only; FSM's webhook refuses
  `FailOver` without targets and `Locality` with more than one).
"""

from __future__ import annotations

from collections.abc import Mapping
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
    ManifestError,
    describe,
    name_of,
    namespace_of,
    optional_list,
    optional_map,
    optional_str,
    required_str,
    spec_of,
)

GROUPS = ("multicluster.flomesh.io", "flomesh.io")
LB_TYPES = ("Locality", "ActiveActive", "FailOver")


def _service(manifest: Mapping[str, Any]) -> str:
    return f"{namespace_of(manifest)}/{name_of(manifest)}"


def _resolve(ctx: ExtractionContext, key: str) -> tuple[str, bool]:
    """The cluster a key names, or the key itself (unknown)."""
    cluster = ctx.directory.cluster_by_fsm_key(key)
    return (cluster, True) if cluster is not None else (key, False)


def _fsm_key(ctx: ExtractionContext, cluster: str) -> str:
    info = ctx.directory.cluster_info(cluster)
    return info.fsm_key if info is not None and info.fsm_key else f"default/default/default/{cluster}"


# --- GlobalTrafficPolicy -------------------------------------------------------------------------


def _lb_type(manifest: Mapping[str, Any]) -> str:
    """spec.lbType, `Locality` when unset (FSM's webhook default)."""
    lb_type = optional_str(manifest, spec_of(manifest).get("lbType"), "spec.lbType")
    if lb_type is not None and lb_type not in LB_TYPES:
        raise ManifestError(describe(manifest), "spec.lbType", f"is {lb_type!r}", f"use one of {', '.join(LB_TYPES)}")
    return lb_type or "Locality"


def _gtp_targets(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[tuple[int, str, str, bool]]:
    """(index, clusterKey, cluster, known) of every target (shape-checked whatever the lbType)."""
    spec = spec_of(manifest)
    _lb_type(manifest)
    out = []
    for i, raw in enumerate(optional_list(manifest, spec.get("targets"), "spec.targets")):
        target = optional_map(manifest, raw, f"spec.targets[{i}]")
        key = required_str(manifest, target.get("clusterKey"), f"spec.targets[{i}].clusterKey")
        cluster, known = _resolve(ctx, key)
        out.append((i, key, cluster, known))
    return out


def extract_gtp(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to every target cluster (every cluster running the service when
    there is none); none under `Locality`."""
    service = _service(manifest)
    targets = _gtp_targets(manifest, ctx)
    if _lb_type(manifest) == "Locality":
        return []
    if not targets:
        path = "spec.targets"
        where = f"{describe(manifest)} {path} (none: every cluster exporting the service)"
        return [Crossing(service, ctx.cluster, c, c, where, path) for c in ctx.service_clusters(service)]
    crossings = []
    for i, _key, cluster, known in targets:
        if cluster == ctx.cluster:
            continue
        path = f"spec.targets[{i}].clusterKey"
        crossings.append(Crossing(service, ctx.cluster, cluster, cluster, f"{describe(manifest)} {path}", path, known))
    return crossings


def _to_locality(manifest: Mapping[str, Any], removed: tuple[str, ...]) -> RewritePlan:
    """`lbType: Locality` and no targets: local endpoints only."""
    spec = spec_of(manifest)
    patch: JsonPatch = [{"op": "remove", "path": pointer("spec", "targets")}] if "targets" in spec else []
    patch.append(
        {"op": "replace" if "lbType" in spec else "add", "path": pointer("spec", "lbType"), "value": "Locality"}
    )
    return RewritePlan(patch, (*removed, "spec.lbType set to Locality: local endpoints only"))


def rewrite_gtp(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """Drop foreign targets (or list the permitted ones for "no targets"); `Locality` when none is left."""
    service = _service(manifest)
    targets = _gtp_targets(manifest, ctx)
    if _lb_type(manifest) == "Locality":
        return RewritePlan()
    if not targets:
        others = ctx.service_clusters(service)
        keep = [c for c in others if permits(service, c)]
        if len(keep) == len(others):
            return RewritePlan()
        removed = tuple(f"spec.targets: no longer every cluster: {c} removed" for c in others if c not in keep)
        if not keep:
            return _to_locality(manifest, removed)
        value = [{"clusterKey": _fsm_key(ctx, c)} for c in keep]
        op = "replace" if "targets" in spec_of(manifest) else "add"
        return RewritePlan([{"op": op, "path": pointer("spec", "targets"), "value": value}], removed)
    dropped = [
        (i, key, cluster)
        for i, key, cluster, _known in targets
        if cluster != ctx.cluster and not permits(service, cluster)
    ]
    if not dropped:
        return RewritePlan()
    removed = tuple(f"removed spec.targets[{i}] {key}" for i, key, _ in dropped)
    if len(dropped) == len(targets):
        return _to_locality(manifest, removed)
    patch: JsonPatch = [{"op": "remove", "path": pointer("spec", "targets", i)} for i, _, _ in reversed(dropped)]
    return RewritePlan(patch, removed)


# --- ServiceExport -------------------------------------------------------------------------------


def _export_targets(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[tuple[int, str, str, bool]]:
    spec = spec_of(manifest)
    out = []
    for i, raw in enumerate(optional_list(manifest, spec.get("targetClusters"), "spec.targetClusters")):
        key = required_str(manifest, raw, f"spec.targetClusters[{i}]")
        cluster, known = _resolve(ctx, key)
        out.append((i, key, cluster, known))
    return out


def extract_export(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from every target cluster (all others when `targetClusters` is empty) to the local service."""
    service = _service(manifest)
    where = describe(manifest)
    targets = _export_targets(manifest, ctx)
    if not targets:
        path = "spec.targetClusters"
        return [
            Crossing(service, c, ctx.cluster, c, f"{where} {path} (empty: every cluster)", path)
            for c in ctx.other_clusters()
        ]
    crossings = []
    for i, _key, cluster, known in targets:
        if cluster == ctx.cluster:
            continue
        path = f"spec.targetClusters[{i}]"
        crossings.append(Crossing(service, cluster, ctx.cluster, cluster, f"{where} {path}", path, known))
    return crossings


def rewrite_export(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """`targetClusters` = the permitted clusters; None when none is permitted (empty would mean all)."""
    service = _service(manifest)
    targets = _export_targets(manifest, ctx)
    if not targets:
        others = ctx.other_clusters()
        keep = [c for c in others if permits(service, c)]
        if not keep:
            return None
        if len(keep) == len(others):
            return RewritePlan()
        op = "replace" if "targetClusters" in spec_of(manifest) else "add"
        patch: JsonPatch = [
            {"op": op, "path": pointer("spec", "targetClusters"), "value": [_fsm_key(ctx, c) for c in keep]}
        ]
        removed = tuple(f"removed the export to {c} (spec.targetClusters)" for c in others if c not in keep)
        return RewritePlan(patch, removed)
    dropped = [(i, key) for i, key, cluster, _ in targets if cluster != ctx.cluster and not permits(service, cluster)]
    if not dropped:
        return RewritePlan()
    if len(dropped) == len(targets):
        return None
    patch = [{"op": "remove", "path": pointer("spec", "targetClusters", i)} for i, _ in reversed(dropped)]
    return RewritePlan(patch, tuple(f"removed spec.targetClusters[{i}] {key}" for i, key in dropped))


def notes_gtp(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[str]:
    """Say that `targets` are ignored under `Locality` (FSM serves local endpoints only)."""
    targets = _gtp_targets(manifest, ctx)
    if _lb_type(manifest) != "Locality" or not targets:
        return []
    keys = ", ".join(key for _, key, _, _ in targets)
    return [f"spec.targets ({keys}) ignored: under lbType Locality FSM uses local endpoints only"]


GLOBAL_TRAFFIC_POLICY = Extractor("fsm", extract_gtp, rewrite_gtp, notes=notes_gtp)
SERVICE_EXPORT = Extractor(
    "fsm",
    extract_export,
    rewrite_export,
    deny_remedy="list only permitted clusters in spec.targetClusters, or delete the ServiceExport",
)
