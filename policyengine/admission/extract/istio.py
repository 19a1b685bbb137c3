"""Istio: DestinationRule locality load balancing and ServiceEntry endpoints.

DestinationRule `trafficPolicy.loadBalancer.localityLbSetting` (also under `portLevelSettings[]` and
`subsets[].trafficPolicy`): `distribute[].to` sends traffic to the listed localities, `failover[].to`
to another region, `failoverPriority` anywhere the service runs. Only `distribute` is a control ("any
locality not present will receive no traffic"); failover is a preference, so its rewrite is a
`distribute` that keeps the local locality only. The rewrite of a `distribute` drops refused localities
and scales the remaining weights back to 100.

ServiceEntry `spec.endpoints[]`: an endpoint's `locality` (or its address, when it is the host of a
known service) says where it is; an address the policy does not know is an unknown destination. The
rewrite drops refused endpoints; none left is a deny.
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

GROUP = "networking.istio.io"
_CLUSTER_DOMAINS = (".svc.cluster.local", ".svc.clusterset.local", ".svc")


def service_for_host(manifest: Mapping[str, Any], ctx: ExtractionContext, host: str) -> str:
    """The "namespace/name" a host names: a known host, a Kubernetes DNS name, or a short name."""
    known = ctx.directory.service_by_host(host)
    if known:
        return known
    for suffix in _CLUSTER_DOMAINS:
        if host.endswith(suffix):
            name, _, ns = host[: -len(suffix)].partition(".")
            return f"{ns or namespace_of(manifest)}/{name}"
    if "." not in host:
        return f"{namespace_of(manifest)}/{host}"
    name, _, ns = host.partition(".")
    return f"{ns}/{name}" if "." not in ns else f"{namespace_of(manifest)}/{host}"


def _region_pattern(locality: str) -> str:
    return locality.split("/", 1)[0] + "/*"


# --- DestinationRule -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LbSetting:
    """One localityLbSetting: its JSON path parts and content."""

    parts: tuple[str | int, ...]
    setting: Mapping[str, Any]

    @property
    def path(self) -> str:
        out = ""
        for p in self.parts:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
        return out


def _lb_settings(manifest: Mapping[str, Any]) -> list[LbSetting]:
    spec = spec_of(manifest)
    policies: list[tuple[tuple[str | int, ...], Any]] = [(("spec", "trafficPolicy"), spec.get("trafficPolicy"))]
    for k, raw in enumerate(optional_list(manifest, spec.get("subsets"), "spec.subsets")):
        subset = optional_map(manifest, raw, f"spec.subsets[{k}]")
        policies.append((("spec", "subsets", k, "trafficPolicy"), subset.get("trafficPolicy")))
    out = []
    for parts, raw_policy in policies:
        where = LbSetting(parts, {}).path
        policy = optional_map(manifest, raw_policy, where)
        holders: list[tuple[tuple[str | int, ...], Any]] = [(parts, policy)]
        for i, port in enumerate(
            optional_list(manifest, policy.get("portLevelSettings"), f"{where}.portLevelSettings")
        ):
            holders.append(((*parts, "portLevelSettings", i), port))
        for hparts, holder_raw in holders:
            holder = optional_map(manifest, holder_raw, LbSetting(hparts, {}).path)
            lb = optional_map(manifest, holder.get("loadBalancer"), LbSetting((*hparts, "loadBalancer"), {}).path)
            sparts = (*hparts, "loadBalancer", "localityLbSetting")
            setting = optional_map(manifest, lb.get("localityLbSetting"), LbSetting(sparts, {}).path)
            if setting and setting.get("enabled", True) is not False:
                out.append(LbSetting(sparts, setting))
    return out


def _distribute(manifest: Mapping[str, Any], s: LbSetting) -> list[tuple[int, Mapping[str, Any]]]:
    out = []
    for d, raw in enumerate(optional_list(manifest, s.setting.get("distribute"), f"{s.path}.distribute")):
        entry = optional_map(manifest, raw, f"{s.path}.distribute[{d}]")
        to = optional_map(manifest, entry.get("to"), f"{s.path}.distribute[{d}].to")
        for locality, weight in to.items():
            if type(weight) is not int or weight < 0:
                raise ManifestError(
                    describe(manifest),
                    f'{s.path}.distribute[{d}].to["{locality}"]',
                    f"must be a weight (a whole number >= 0), got {weight!r}",
                )
        out.append((d, to))
    return out


def _locality_clusters(ctx: ExtractionContext, pattern: str) -> tuple[list[str], bool]:
    """Non-local clusters a locality pattern matches, and whether it matches any known cluster."""
    names = list(ctx.directory.clusters_in_locality(pattern))
    return sorted(c for c in names if c != ctx.cluster), bool(names)


def _setting_crossings(
    manifest: Mapping[str, Any], ctx: ExtractionContext, service: str, s: LbSetting
) -> list[tuple[str, Crossing]]:
    """(mode, crossing) for one setting; mode is "distribute" or "failover"."""
    where = describe(manifest)
    out: list[tuple[str, Crossing]] = []

    def add(mode: str, far: str, path: str, known: bool = True) -> None:
        out.append((mode, Crossing(service, ctx.cluster, far, far, f"{where} {path}", path, known)))

    for d, to in _distribute(manifest, s):
        for locality in to:
            path = f'{s.path}.distribute[{d}].to["{locality}"]'
            clusters, known = _locality_clusters(ctx, str(locality))
            if not known:
                add("distribute", str(locality), path, known=False)
            for c in clusters:
                add("distribute", c, path)
    for f, raw in enumerate(optional_list(manifest, s.setting.get("failover"), f"{s.path}.failover")):
        entry = optional_map(manifest, raw, f"{s.path}.failover[{f}]")
        region = required_str(manifest, entry.get("to"), f"{s.path}.failover[{f}].to")
        clusters, known = _locality_clusters(ctx, _region_pattern(region))
        if not known:
            add("failover", region, f"{s.path}.failover[{f}].to", known=False)
        for c in clusters:
            add("failover", c, f"{s.path}.failover[{f}].to")
    priority = optional_list(manifest, s.setting.get("failoverPriority"), f"{s.path}.failoverPriority")
    if priority:
        for c in ctx.service_clusters(service):
            add("failover", c, f"{s.path}.failoverPriority")
    return out


def _dr_service(manifest: Mapping[str, Any], ctx: ExtractionContext) -> str:
    return service_for_host(manifest, ctx, required_str(manifest, spec_of(manifest).get("host"), "spec.host"))


def extract_destination_rule(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to every cluster a locality setting can send traffic to."""
    service = _dr_service(manifest, ctx)
    return [c for s in _lb_settings(manifest) for _, c in _setting_crossings(manifest, ctx, service, s)]


def scale_to_100(weights: Mapping[str, int]) -> dict[str, int]:
    """Weights scaled to sum to 100 (largest remainder); equal shares when they sum to 0."""
    total = sum(weights.values())
    keys = list(weights)
    raw = {k: (weights[k] * 100 / total if total else 100 / len(keys)) for k in keys}
    out = {k: int(v) for k, v in raw.items()}
    by_remainder = sorted(keys, key=lambda k: (-(raw[k] - out[k]), keys.index(k)))
    for k in by_remainder[: 100 - sum(out.values())]:
        out[k] += 1
    return out


def rewrite_destination_rule(
    manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits
) -> RewritePlan | None:
    """Distribute restricted to permitted localities; refused failover -> distribute to the local locality."""
    service = _dr_service(manifest, ctx)
    patch: JsonPatch = []
    removed: list[str] = []
    for s in _lb_settings(manifest):
        crossings = _setting_crossings(manifest, ctx, service, s)
        refused = [c for _, c in crossings if not permits(service, c.far)]
        if not refused:
            continue
        if any(mode == "failover" for mode, c in crossings if c in refused):
            info = ctx.directory.cluster_info(ctx.cluster)
            if info is None or not info.locality:
                return None
            local = f"{info.locality}/*"
            for key in ("failover", "failoverPriority", "distribute"):
                if key in s.setting:
                    patch.append({"op": "remove", "path": pointer(*s.parts, key)})
            patch.append(
                {
                    "op": "add",
                    "path": pointer(*s.parts, "distribute"),
                    "value": [{"from": local, "to": {local: 100}}],
                }
            )
            removed.append(f"{s.path}: failover replaced by distribute to {local} only (failover is a preference)")
            continue
        refused_paths = {c.path for c in refused}
        for d, to in _distribute(manifest, s):
            kept = {str(k): int(v) for k, v in to.items() if f'{s.path}.distribute[{d}].to["{k}"]' not in refused_paths}
            if len(kept) == len(to):
                continue
            if not kept:
                return None
            patch.append(
                {
                    "op": "replace",
                    "path": pointer(*s.parts, "distribute", d, "to"),
                    "value": scale_to_100(kept),
                }
            )
            removed.extend(f"removed {s.path}.distribute[{d}].to {k}" for k in to if str(k) not in kept)
    return RewritePlan(patch, tuple(removed))


# --- ServiceEntry --------------------------------------------------------------------------------


def _se_service(manifest: Mapping[str, Any], ctx: ExtractionContext) -> str:
    hosts = optional_list(manifest, spec_of(manifest).get("hosts"), "spec.hosts")
    for i, host in enumerate(hosts):
        known = ctx.directory.service_by_host(required_str(manifest, host, f"spec.hosts[{i}]"))
        if known:
            return known
    return f"{namespace_of(manifest)}/{name_of(manifest)}"


def _endpoint_crossings(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[tuple[int, list[Crossing]]]:
    service = _se_service(manifest, ctx)
    where = describe(manifest)
    out = []
    for i, raw in enumerate(optional_list(manifest, spec_of(manifest).get("endpoints"), "spec.endpoints")):
        endpoint = optional_map(manifest, raw, f"spec.endpoints[{i}]")
        locality = optional_str(manifest, endpoint.get("locality"), f"spec.endpoints[{i}].locality")
        address = optional_str(manifest, endpoint.get("address"), f"spec.endpoints[{i}].address") or ""
        crossings: list[Crossing] = []
        if locality:
            path = f"spec.endpoints[{i}].locality"
            clusters, known = _locality_clusters(ctx, _region_pattern(locality))
            far_ends = clusters if known else [locality]
        else:
            path = f"spec.endpoints[{i}].address"
            target = ctx.directory.service_by_host(address) if address else None
            known = target is not None
            far_ends = ctx.service_clusters(target) if target else [address or f"endpoint {i}"]
        crossings = [Crossing(service, ctx.cluster, far, far, f"{where} {path}", path, known) for far in far_ends]
        out.append((i, crossings))
    return out


def extract_service_entry(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to where each endpoint is."""
    return [c for _, crossings in _endpoint_crossings(manifest, ctx) for c in crossings]


def rewrite_service_entry(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """Drop refused endpoints; None when none is left."""
    endpoints = _endpoint_crossings(manifest, ctx)
    dropped = [(i, cs) for i, cs in endpoints if any(not permits(c.service, c.far) for c in cs)]
    if not dropped:
        return RewritePlan()
    if len(dropped) == len(endpoints):
        return None
    patch = [{"op": "remove", "path": pointer("spec", "endpoints", i)} for i, _ in reversed(dropped)]
    removed = tuple(f"removed spec.endpoints[{i}] ({', '.join(sorted({c.far for c in cs}))})" for i, cs in dropped)
    return RewritePlan(patch, removed)


DESTINATION_RULE = Extractor("istio", extract_destination_rule, rewrite_destination_rule)
SERVICE_ENTRY = Extractor("istio", extract_service_entry, rewrite_service_entry)
