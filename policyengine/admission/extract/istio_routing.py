"""Istio endpoints and routes: ServiceEntry, WorkloadEntry and VirtualService (istio/api v1.30
`networking/v1alpha3/service_entry.proto`, `workload_entry.proto`, `virtual_service.proto`;
`networking.istio.io` v1, v1beta1, v1alpha3).

Where an endpoint is: its `locality` (the region part, matched against clusters.yaml localities), else
its `network` (clusters.yaml `network`), else its address when that is the host of a known service
(services.yaml `hosts`, or a `<svc>.<ns>.svc.clusterset.local` name: every cluster running it); a
`cluster.local` or short name is a Service of this cluster. An address alone (an IP, a DNS name, a
`unix://` socket) is not a cluster: a loopback or socket address
is local to the calling pod, any other is outside the cluster set as far as the policy knows, and
neither is a cross-cluster route (a note says so). A ServiceEntry with no endpoints reads its `hosts`
the same way.

- ServiceEntry: the service is the one its `hosts` name (not `metadata.name`); each endpoint is a route
  from the local cluster to where it is. The rewrite drops refused endpoints; none left is a deny.
- WorkloadEntry: one endpoint (a VM or a workload elsewhere) of the services that select its labels:
  a ServiceEntry `workloadSelector` or a Service `selector` applied together, else the service its
  `app.kubernetes.io/name` / `app` label names, else its own name. It cannot be narrowed: a deny.
- VirtualService: each `route[].destination` (http, tcp, tls) and mirror goes to where its `host`
  lives: a ServiceEntry applied together with that host, else a known service host; a `subset` whose
  DestinationRule (applied together) pins `topology.istio.io/cluster` goes to that cluster only. The
  rewrite drops refused destinations and scales the remaining weights back to 100; a route left with
  no destination is a deny.
"""

from __future__ import annotations

import ipaddress
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
from policyengine.admission.extract.istio import (
    GROUP,
    locality_clusters,
    region_pattern,
    scale_to_100,
    service_for_host,
)
from policyengine.admission.extract.patch import pointer
from policyengine.admission.extract.shape import (
    describe,
    metadata_map,
    name_of,
    namespace_of,
    optional_list,
    optional_map,
    optional_str,
    required_str,
    spec_of,
)

CLUSTER_LABEL = "topology.istio.io/cluster"
CLUSTERSET_DOMAIN = ".svc.clusterset.local"
IN_CLUSTER_DOMAINS = (".svc.cluster.local", CLUSTERSET_DOMAIN, ".svc")
WORKLOAD_ENTRY_REMEDY = (
    "a WorkloadEntry is one endpoint: run the workload in a permitted region, or take it out of the "
    "selectors of the regulated service"
)


@dataclass(frozen=True, slots=True)
class Place:
    """Where an endpoint is: non-local `clusters` (none = local or outside the set), `known` (False when a
    locality or network names no declared cluster), `read` (what said so), `note` (why no route)."""

    clusters: tuple[str, ...]
    known: bool
    read: str
    note: str = ""


def _is_local_address(address: str) -> bool:
    if address.startswith("unix://") or address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def place_of_name(ctx: ExtractionContext, name: str, path: str) -> Place:
    """Where a host or address with no locality or network is (see the module docstring)."""
    host = name.lower().rstrip(".")
    service = ctx.directory.service_by_host(host)
    if service is None and host.endswith(CLUSTERSET_DOMAIN):
        svc, _, ns = host[: -len(CLUSTERSET_DOMAIN)].partition(".")
        service = f"{ns}/{svc}" if ns else None
    if service is not None:
        return Place(tuple(ctx.service_clusters(service)), True, f"{path} (host of {service})")
    if "." not in host or host.endswith((".svc.cluster.local", ".svc")):
        return Place((), True, path)  # a Service of this cluster
    if _is_local_address(host):
        return Place((), True, path, f"{path} {name} is local to the calling pod: no cross-cluster route")
    return Place(
        (),
        True,
        path,
        f"{path} {name} is not a cluster of the set (no locality or network says where it is): no cross-cluster route",
    )


def place_of_endpoint(
    manifest: Mapping[str, Any], ctx: ExtractionContext, endpoint: Mapping[str, Any], path: str
) -> Place:
    """Where a ServiceEntry endpoint or WorkloadEntry spec is: locality, then network, then address."""
    locality = optional_str(manifest, endpoint.get("locality"), f"{path}.locality")
    network = optional_str(manifest, endpoint.get("network"), f"{path}.network")
    address = optional_str(manifest, endpoint.get("address"), f"{path}.address") or ""
    if locality:
        clusters, known = locality_clusters(ctx, region_pattern(locality))
        return Place(tuple(clusters) if known else (locality,), known, f"{path}.locality")
    if network:
        names = list(ctx.directory.clusters_in_network(network))
        if not names:
            return Place((f"network {network}",), False, f"{path}.network")
        return Place(tuple(c for c in names if c != ctx.cluster), True, f"{path}.network")
    return place_of_name(ctx, address, f"{path}.address")


# --- ServiceEntry --------------------------------------------------------------------------------


def _hosts(manifest: Mapping[str, Any]) -> list[str]:
    hosts = optional_list(manifest, spec_of(manifest).get("hosts"), "spec.hosts")
    return [required_str(manifest, h, f"spec.hosts[{i}]") for i, h in enumerate(hosts)]


def _in_cluster_host(ctx: ExtractionContext, host: str) -> bool:
    return ctx.directory.service_by_host(host) is not None or "." not in host or host.endswith(IN_CLUSTER_DOMAINS)


def _se_services(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[str]:
    """The services a ServiceEntry's hosts name: a known or in-cluster host names its service; an
    external name (mydb.com) is the service the entry itself declares (its namespace/name)."""
    own = f"{namespace_of(manifest)}/{name_of(manifest)}"
    services = [service_for_host(manifest, ctx, h) if _in_cluster_host(ctx, h) else own for h in _hosts(manifest)]
    return list(dict.fromkeys(services)) or [own]


def _se_places(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[tuple[int | None, Place]]:
    """(endpoint index, place) of every endpoint; (None, place) per host of an entry without endpoints."""
    spec = spec_of(manifest)
    endpoints = optional_list(manifest, spec.get("endpoints"), "spec.endpoints")
    if endpoints:
        return [
            (
                i,
                place_of_endpoint(
                    manifest, ctx, optional_map(manifest, raw, f"spec.endpoints[{i}]"), f"spec.endpoints[{i}]"
                ),
            )
            for i, raw in enumerate(endpoints)
        ]
    if spec.get("workloadSelector") is not None:
        return []  # endpoints are the selected WorkloadEntries and pods: decided on their own
    return [(None, place_of_name(ctx, h, f"spec.hosts[{i}]")) for i, h in enumerate(_hosts(manifest))]


def _se_crossings(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[tuple[int | None, list[Crossing]]]:
    where = describe(manifest)
    services = _se_services(manifest, ctx)
    return [
        (
            index,
            [
                Crossing(s, ctx.cluster, far, far, f"{where} {place.read}", place.read, place.known)
                for s in services
                for far in place.clusters
            ],
        )
        for index, place in _se_places(manifest, ctx)
    ]


def extract_service_entry(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to where each endpoint (or host) is."""
    return [c for _, crossings in _se_crossings(manifest, ctx) for c in crossings]


def rewrite_service_entry(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """Drop refused endpoints; None when none is left (or a refused host has no endpoint to drop)."""
    places = _se_crossings(manifest, ctx)
    dropped = [(i, cs) for i, cs in places if any(not permits(c.service, c.far) for c in cs)]
    if not dropped:
        return RewritePlan()
    if any(i is None for i, _ in dropped) or len(dropped) == len(places):
        return None
    indexes = [(i, cs) for i, cs in dropped if i is not None]
    patch = [{"op": "remove", "path": pointer("spec", "endpoints", i)} for i, _ in reversed(indexes)]
    removed = tuple(f"removed spec.endpoints[{i}] ({', '.join(sorted({c.far for c in cs}))})" for i, cs in indexes)
    return RewritePlan(patch, removed)


def notes_service_entry(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[str]:
    return [place.note for _, place in _se_places(manifest, ctx) if place.note]


# --- WorkloadEntry -------------------------------------------------------------------------------


def _selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    return isinstance(selector, Mapping) and bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def workload_services(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[str]:
    """The services a WorkloadEntry is an endpoint of (see the module docstring)."""
    spec = spec_of(manifest)
    labels = optional_map(manifest, spec.get("labels"), "spec.labels") or metadata_map(manifest, "labels")
    namespace = namespace_of(manifest)
    services: list[str] = []
    for entry in ctx.related_objects("ServiceEntry", [GROUP], namespace):
        entry_spec = entry.get("spec")
        if namespace_of(entry) == namespace and isinstance(entry_spec, Mapping):
            selector = entry_spec.get("workloadSelector")
            if isinstance(selector, Mapping) and _selects(selector.get("labels"), labels):
                hosts = [h for h in entry_spec.get("hosts") or [] if isinstance(h, str)]
                services.extend(service_for_host(entry, ctx, h) for h in hosts)
    for svc in ctx.related_objects("Service", [""], namespace):
        svc_spec = svc.get("spec")
        if (
            namespace_of(svc) == namespace
            and isinstance(svc_spec, Mapping)
            and _selects(svc_spec.get("selector"), labels)
        ):
            services.append(f"{namespace}/{name_of(svc)}")
    if not services:
        app = labels.get("app.kubernetes.io/name") or labels.get("app")
        services.append(f"{namespace}/{app}" if isinstance(app, str) and app else f"{namespace}/{name_of(manifest)}")
    return list(dict.fromkeys(services))


def _we_place(manifest: Mapping[str, Any], ctx: ExtractionContext) -> Place:
    return place_of_endpoint(manifest, ctx, spec_of(manifest), "spec")


def extract_workload_entry(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to the workload, for every service it is an endpoint of."""
    place = _we_place(manifest, ctx)
    where = describe(manifest)
    return [
        Crossing(s, ctx.cluster, far, far, f"{where} {place.read}", place.read, place.known)
        for s in workload_services(manifest, ctx)
        for far in place.clusters
    ]


def notes_workload_entry(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[str]:
    place = _we_place(manifest, ctx)
    return [place.note] if place.note else []


# --- VirtualService ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Destination:
    """One destination of a VirtualService: JSON path parts, its host's service and where it goes."""

    parts: tuple[str | int, ...]
    service: str
    clusters: tuple[str, ...]
    known: bool
    weight: int | None
    mirror: bool

    @property
    def path(self) -> str:
        out = ""
        for p in self.parts:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
        return out


def _subset_cluster(ctx: ExtractionContext, host: str, subset: str) -> str | None:
    """The cluster a DestinationRule subset (applied together) pins with topology.istio.io/cluster."""
    for rule in ctx.related_objects("DestinationRule", [GROUP]):
        spec = rule.get("spec")
        if not isinstance(spec, Mapping) or spec.get("host") != host:
            continue
        for s in spec.get("subsets") or []:
            if isinstance(s, Mapping) and s.get("name") == subset and isinstance(s.get("labels"), Mapping):
                pinned = s["labels"].get(CLUSTER_LABEL)
                if isinstance(pinned, str):
                    return pinned
    return None


def _host_place(
    manifest: Mapping[str, Any], ctx: ExtractionContext, host: str, subset: str | None, path: str
) -> tuple[tuple[str, ...], bool]:
    """Non-local clusters a destination host reaches, and whether they are known."""
    if subset:
        pinned = _subset_cluster(ctx, host, subset)
        if pinned is not None:
            return ((pinned,) if pinned != ctx.cluster else ()), ctx.directory.cluster_info(pinned) is not None
    for entry in ctx.related_objects("ServiceEntry", [GROUP]):
        spec = entry.get("spec")
        if isinstance(spec, Mapping) and host in (spec.get("hosts") or []):
            places = [p for _, p in _se_places(entry, ctx)]
            clusters = tuple(sorted({c for p in places for c in p.clusters}))
            return clusters, all(p.known for p in places)
    place = place_of_name(ctx, host, path)
    return place.clusters, place.known


def _destinations(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Destination]:
    spec = spec_of(manifest)
    out: list[Destination] = []

    def add(parts: tuple[str | int, ...], raw: Any, weight: Any, mirror: bool) -> None:
        path = Destination(parts, "", (), True, None, mirror).path
        dest = optional_map(manifest, raw, path)
        host = required_str(manifest, dest.get("host"), f"{path}.host")
        subset = optional_str(manifest, dest.get("subset"), f"{path}.subset")
        clusters, known = _host_place(manifest, ctx, host, subset, f"{path}.host")
        out.append(
            Destination(
                parts,
                service_for_host(manifest, ctx, host),
                clusters,
                known,
                weight if type(weight) is int else None,
                mirror,
            )
        )

    for section in ("http", "tcp", "tls"):
        for i, raw_rule in enumerate(optional_list(manifest, spec.get(section), f"spec.{section}")):
            rule = optional_map(manifest, raw_rule, f"spec.{section}[{i}]")
            for j, raw_route in enumerate(optional_list(manifest, rule.get("route"), f"spec.{section}[{i}].route")):
                route = optional_map(manifest, raw_route, f"spec.{section}[{i}].route[{j}]")
                if route.get("weight") == 0:
                    continue
                add(
                    ("spec", section, i, "route", j, "destination"),
                    route.get("destination"),
                    route.get("weight"),
                    False,
                )
            if section == "http":
                if rule.get("mirror") is not None:
                    add(("spec", section, i, "mirror"), rule.get("mirror"), None, True)
                for k, raw_mirror in enumerate(optional_list(manifest, rule.get("mirrors"), f"spec.http[{i}].mirrors")):
                    entry = optional_map(manifest, raw_mirror, f"spec.http[{i}].mirrors[{k}]")
                    add(("spec", section, i, "mirrors", k, "destination"), entry.get("destination"), None, True)
    return out


def extract_virtual_service(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to where each destination's host lives."""
    where = describe(manifest)
    return [
        Crossing(d.service, ctx.cluster, c, c, f"{where} {d.path}.host", f"{d.path}.host", d.known)
        for d in _destinations(manifest, ctx)
        for c in d.clusters
    ]


def rewrite_virtual_service(
    manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits
) -> RewritePlan | None:
    """Drop refused destinations and mirrors; rescale weights; None when a route is left empty."""
    spec = spec_of(manifest)
    refused = [
        d for d in _destinations(manifest, ctx) if any(not (d.known and permits(d.service, c)) for c in d.clusters)
    ]
    if not refused:
        return RewritePlan()
    patch: JsonPatch = []
    removed: list[str] = []
    routes: dict[tuple[str, int], list[Destination]] = {}
    mirrors = sorted((d for d in refused if d.mirror), key=lambda d: d.parts, reverse=True)
    for d in mirrors:  # `mirror` is one object, `mirrors[k]` an entry of a list (last first)
        patch.append({"op": "remove", "path": pointer(*(d.parts if d.parts[-1] == "mirror" else d.parts[:-1]))})
        removed.append(f"removed {d.path} (mirror to {', '.join(d.clusters)})")
    for d in refused:
        if not d.mirror:
            routes.setdefault((str(d.parts[1]), int(d.parts[2])), []).append(d)
    for (section, i), dropped in sorted(routes.items()):
        rule_routes = spec[section][i]["route"]
        gone = {int(d.parts[4]) for d in dropped}
        kept = [j for j in range(len(rule_routes)) if j not in gone]
        weights = {j: rule_routes[j].get("weight") for j in kept}
        if not any(w is None or (type(w) is int and w > 0) for w in weights.values()):
            return None
        for j in sorted(gone, reverse=True):
            patch.append({"op": "remove", "path": pointer("spec", section, i, "route", j)})
        positive = {str(j): int(w) for j, w in weights.items() if type(w) is int and w > 0}
        if all(type(w) is int for w in weights.values()):
            scaled = scale_to_100(positive) if positive else {}
            for new_index, j in enumerate(kept):
                if str(j) in scaled and scaled[str(j)] != weights[j]:
                    patch.append(
                        {
                            "op": "replace",
                            "path": pointer("spec", section, i, "route", new_index, "weight"),
                            "value": scaled[str(j)],
                        }
                    )
        removed.extend(f"removed spec.{section}[{i}].route[{j}] ({dropped[0].service})" for j in sorted(gone))
    return RewritePlan(patch, tuple(removed))


SERVICE_ENTRY = Extractor("istio", extract_service_entry, rewrite_service_entry, notes=notes_service_entry)
WORKLOAD_ENTRY = Extractor("istio", extract_workload_entry, None, WORKLOAD_ENTRY_REMEDY, notes=notes_workload_entry)
VIRTUAL_SERVICE = Extractor("istio", extract_virtual_service, rewrite_virtual_service)
