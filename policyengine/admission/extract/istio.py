"""Istio DestinationRule locality load balancing (istio/api v1.30 `networking/v1alpha3/destination_rule.proto`:
`LocalityLoadBalancerSetting`, `ZoneAwareLoadBalancerSetting`; `networking.istio.io` v1, v1beta1, v1alpha3).

Read under `spec.trafficPolicy.loadBalancer`, `portLevelSettings[].loadBalancer` and
`subsets[].trafficPolicy`:

- `localityLbSetting.distribute[]`: clients in the `from` locality are sent to the `to` localities
  ("any locality not present will receive no traffic"). A DestinationRule configures every proxy its
  control plane serves, so each entry is a route from each cluster in `from` to each cluster in `to`
  (not only from the cluster where it is applied): an EU entry of a rule applied in China still sends
  EU clients' traffic where it says.
- `localityLbSetting.failover[]` (`from` region -> `to` region) and `failoverPriority`: where traffic
  fails over. Failover is a preference, not a control.
- `zoneAwareLbSetting`: the proxy's own region is the first tier and "endpoints in other regions form
  lower-priority failover tiers" whatever `failover` says, so it reaches every cluster running the
  service, and each `failover[]` entry is a route from its `from` region to its `to` region.

Only `distribute` keeps traffic in place, so the rewrite of a `distribute` drops refused localities
(per `from` -> `to` pair) and scales the rest back to 100, each weight at least 1 (istiod's validation:
weights in [1, 100] summing to 100); a refused failover or zone-aware setting becomes a
`localityLbSetting` whose `distribute` keeps each client region (the local one and each `from`) in
itself (only one of distribute/failover/failoverPriority, and only one of localityLbSetting and
zoneAwareLbSetting, may be set).
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
    namespace_of,
    optional_list,
    optional_map,
    optional_str,
    required_str,
    spec_of,
)

GROUP = "networking.istio.io"
_CLUSTER_DOMAINS = (".svc.cluster.local", ".svc.clusterset.local", ".svc")
LOCALITY = "localityLbSetting"
ZONE_AWARE = "zoneAwareLbSetting"


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


def region_pattern(locality: str) -> str:
    return locality.split("/", 1)[0] + "/*"


def locality_clusters(ctx: ExtractionContext, pattern: str) -> tuple[list[str], bool]:
    """Non-local clusters a locality pattern matches, and whether it matches any known cluster."""
    names = list(ctx.directory.clusters_in_locality(pattern))
    return sorted(c for c in names if c != ctx.cluster), bool(names)


@dataclass(frozen=True, slots=True)
class LbSetting:
    """One localityLbSetting or zoneAwareLbSetting: its JSON path parts and content."""

    parts: tuple[str | int, ...]
    setting: Mapping[str, Any]

    @property
    def path(self) -> str:
        out = ""
        for p in self.parts:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
        return out

    @property
    def zone_aware(self) -> bool:
        return self.parts[-1] == ZONE_AWARE

    @property
    def load_balancer(self) -> tuple[str | int, ...]:
        return self.parts[:-1]


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
            for key in (LOCALITY, ZONE_AWARE):
                sparts = (*hparts, "loadBalancer", key)
                setting = optional_map(manifest, lb.get(key), LbSetting(sparts, {}).path)
                if setting and setting.get("enabled", True) is not False:
                    out.append(LbSetting(sparts, setting))
    return out


def _distribute(manifest: Mapping[str, Any], s: LbSetting) -> list[tuple[int, str | None, Mapping[str, Any]]]:
    """(index, from, to) of every distribute entry."""
    out = []
    for d, raw in enumerate(optional_list(manifest, s.setting.get("distribute"), f"{s.path}.distribute")):
        entry = optional_map(manifest, raw, f"{s.path}.distribute[{d}]")
        source = optional_str(manifest, entry.get("from"), f"{s.path}.distribute[{d}].from")
        to = optional_map(manifest, entry.get("to"), f"{s.path}.distribute[{d}].to")
        for locality, weight in to.items():
            if type(weight) is not int or weight < 0:
                raise ManifestError(
                    describe(manifest),
                    f'{s.path}.distribute[{d}].to["{locality}"]',
                    f"must be a weight (a whole number >= 0), got {weight!r}",
                )
        out.append((d, source, to))
    return out


def _failover(manifest: Mapping[str, Any], s: LbSetting) -> list[tuple[int, str | None, str]]:
    out = []
    for f, raw in enumerate(optional_list(manifest, s.setting.get("failover"), f"{s.path}.failover")):
        entry = optional_map(manifest, raw, f"{s.path}.failover[{f}]")
        source = optional_str(manifest, entry.get("from"), f"{s.path}.failover[{f}].from")
        out.append((f, source, required_str(manifest, entry.get("to"), f"{s.path}.failover[{f}].to")))
    return out


def _sources(ctx: ExtractionContext, pattern: str | None) -> tuple[list[str], bool]:
    """The clusters whose clients a `from` locality names (all of them, the local one included);
    the local cluster when there is no `from`."""
    if not pattern:
        return [ctx.cluster], True
    names = sorted(ctx.directory.clusters_in_locality(pattern))
    return (names, True) if names else ([pattern], False)


def _setting_crossings(
    manifest: Mapping[str, Any], ctx: ExtractionContext, service: str, s: LbSetting
) -> list[tuple[str, Crossing]]:
    """(mode, crossing) for one setting; mode is "distribute" or "failover"."""
    where = describe(manifest)
    out: list[tuple[str, Crossing]] = []

    def add(mode: str, source: str, destination: str, path: str, known: bool = True) -> None:
        far = destination if source == ctx.cluster else source if destination == ctx.cluster else destination
        out.append((mode, Crossing(service, source, destination, far, f"{where} {path}", path, known)))

    def pairs(mode: str, source_pattern: str | None, target_pattern: str, path: str, target_name: str) -> None:
        sources, sources_known = _sources(ctx, source_pattern)
        targets = sorted(ctx.directory.clusters_in_locality(target_pattern)) or [target_name]
        targets_known = bool(ctx.directory.clusters_in_locality(target_pattern))
        for src in sources:
            for dst in targets:
                if src != dst:
                    add(mode, src, dst, path, sources_known and targets_known)

    for d, source, to in _distribute(manifest, s):
        for locality, weight in to.items():
            if weight > 0:
                pairs("distribute", source, str(locality), f'{s.path}.distribute[{d}].to["{locality}"]', str(locality))
    for f, source, region in _failover(manifest, s):
        path = f"{s.path}.failover[{f}].to"
        pairs("failover", region_pattern(source) if source else None, region_pattern(region), path, region)
    priority = optional_list(manifest, s.setting.get("failoverPriority"), f"{s.path}.failoverPriority")
    if priority or s.zone_aware:
        path = f"{s.path}.failoverPriority" if priority else s.path
        for c in ctx.service_clusters(service):
            add("failover", ctx.cluster, c, path)
    return out


def _dr_service(manifest: Mapping[str, Any], ctx: ExtractionContext) -> str:
    return service_for_host(manifest, ctx, required_str(manifest, spec_of(manifest).get("host"), "spec.host"))


def extract_destination_rule(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes between the clusters a locality setting sends traffic from and to."""
    service = _dr_service(manifest, ctx)
    return [c for s in _lb_settings(manifest) for _, c in _setting_crossings(manifest, ctx, service, s)]


def scale_to_100(weights: Mapping[str, int]) -> dict[str, int]:
    """Weights scaled to sum to 100, each at least 1 (largest remainder); equal shares when they sum to 0."""
    keys = list(weights)
    total = sum(weights.values())
    raw = {k: (weights[k] * 100 / total if total else 100 / len(keys)) for k in keys}
    out = {k: max(1, int(v)) for k, v in raw.items()}
    by_remainder = sorted(keys, key=lambda k: (-(raw[k] - int(raw[k])), keys.index(k)))
    i = 0
    while sum(out.values()) < 100:
        out[by_remainder[i % len(keys)]] += 1
        i += 1
    while sum(out.values()) > 100:
        largest = max(keys, key=lambda k: (out[k], -keys.index(k)))
        out[largest] -= 1
    return out


def _client_regions(manifest: Mapping[str, Any], ctx: ExtractionContext, s: LbSetting) -> list[str] | None:
    """The client regions a failover rewrite keeps in place: the local one and each failover `from`."""
    info = ctx.directory.cluster_info(ctx.cluster)
    if info is None or not info.locality:
        return None
    regions = [info.locality.split("/", 1)[0]]
    for _, source, _ in _failover(manifest, s):
        region = source.split("/", 1)[0] if source else ""
        if region and region not in regions and ctx.directory.clusters_in_locality(region_pattern(region)):
            regions.append(region)
    return regions


def rewrite_destination_rule(
    manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits
) -> RewritePlan | None:
    """Distribute restricted to permitted localities; refused failover -> distribute keeping each region."""
    service = _dr_service(manifest, ctx)
    patch: JsonPatch = []
    removed: list[str] = []
    for s in _lb_settings(manifest):
        crossings = _setting_crossings(manifest, ctx, service, s)
        refused = [
            (mode, c) for mode, c in crossings if not (c.known and permits.pair(c.service, c.source, c.destination))
        ]
        if not refused:
            continue
        if s.zone_aware or any(mode == "failover" for mode, _ in refused):
            regions = _client_regions(manifest, ctx, s)
            if regions is None:
                return None
            value = {"enabled": True, "distribute": [{"from": f"{r}/*", "to": {f"{r}/*": 100}} for r in regions]}
            if s.zone_aware:
                patch.append({"op": "remove", "path": pointer(*s.parts)})
                lb = s.load_balancer
                patch.append({"op": "add", "path": pointer(*lb, LOCALITY), "value": value})
            else:
                patch.append({"op": "replace", "path": pointer(*s.parts), "value": value})
            removed.append(
                f"{s.path}: failover replaced by {LOCALITY}.distribute keeping {', '.join(regions)} in place "
                "(failover is a preference)"
            )
            continue
        refused_paths = {c.path for _, c in refused}
        for d, _source, to in _distribute(manifest, s):
            path_of = {str(k): f'{s.path}.distribute[{d}].to["{k}"]' for k in to}
            kept = {str(k): int(v) for k, v in to.items() if int(v) > 0 and path_of[str(k)] not in refused_paths}
            if not any(path_of[str(k)] in refused_paths for k in to):
                continue
            if not kept:
                return None
            patch.append(
                {"op": "replace", "path": pointer(*s.parts, "distribute", d, "to"), "value": scale_to_100(kept)}
            )
            removed.extend(f"removed {s.path}.distribute[{d}].to {k}" for k in to if str(k) not in kept)
    return RewritePlan(patch, tuple(removed))


DESTINATION_RULE = Extractor("istio", extract_destination_rule, rewrite_destination_rule)
