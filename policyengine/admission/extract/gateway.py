"""Gateway API routes (GEP-1748): HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute backendRefs.

Reads `spec.rules[].backendRefs[]` of `gateway.networking.k8s.io` routes (Gateway API v1.6, CRDs
`config/crd/standard/*routes.yaml`; TLSRoute, TCPRoute and UDPRoute also in their older v1alpha2/
v1alpha3 versions, same fields) and of Linkerd's `policy.linkerd.io` HTTPRoute (v1alpha1-v1beta3, a copy
of the Gateway API one). `parentRefs` (a Gateway, or a Service/ServiceImport for GAMMA mesh routes) say
which traffic a route applies to, not where it goes, so they create no route.

A backendRef crosses clusters when a resolver says where its endpoints are:
- a `ServiceImport` (`multicluster.x-k8s.io`, GKE `net.gke.io`, the AWS Gateway API controller's
  `application-networking.k8s.aws`, or no group as AWS's examples write it) reaches the service's
  endpoints in every cluster that exports it (`status.clusters` of the ServiceImport when it is
  applied together, else every cluster running the service per services.yaml, else every known one);
- a Linkerd mirror Service `<service>-<link>` (linkerd.py) reaches the service in the linked cluster.
A backendRef with `weight: 0` receives no traffic ("no traffic should be forwarded for this entry")
and creates no route.

The rewrite replaces a refused backendRef by the local `Service` that serves the same endpoints, when
the rules permit the local cluster, the service runs here, and the new ref is one the API server and
the Gateway accept: a Service ref needs a `port` (the CRDs' CEL rule "Must have port for Service
reference"; taken from the ref, else from the ServiceImport or Service applied together when it has
exactly one port) and a ref to another namespace needs a ReferenceGrant there that allows this route
kind to reach Services (else the Gateway refuses it with RefNotPermitted). Otherwise the ref is dropped.
A rule left with no backendRef that receives traffic would answer 500s (and TLSRoute/TCPRoute/UDPRoute
require one), so that is a deny.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from policyengine.admission.extract.mcs import import_clusters, same_name_import
from policyengine.admission.extract.patch import pointer
from policyengine.admission.extract.shape import (
    describe,
    group_of,
    namespace_of,
    optional_list,
    optional_map,
    optional_str,
    required_str,
    spec_of,
)

GROUP = "gateway.networking.k8s.io"
LINKERD_POLICY_GROUP = "policy.linkerd.io"
KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute")
MCS_GROUP = "multicluster.x-k8s.io"
IMPORT_GROUPS = (MCS_GROUP, "net.gke.io", "application-networking.k8s.aws", "")
_GRANT_GROUPS = (GROUP,)


@dataclass(frozen=True, slots=True)
class BackendRef:
    """One backendRef of a route: where it is, and its fields as written."""

    rule: int
    index: int
    ref: Mapping[str, Any]
    namespace: str  # the ref's namespace, else the route's

    @property
    def path(self) -> str:
        return f"spec.rules[{self.rule}].backendRefs[{self.index}]"

    @property
    def kind(self) -> str:
        return str(self.ref.get("kind") or "Service")

    @property
    def group(self) -> str:
        return str(self.ref.get("group") or "")

    @property
    def name(self) -> str:
        return str(self.ref.get("name"))

    @property
    def weight(self) -> int:
        weight = self.ref.get("weight", 1)
        return weight if type(weight) is int else 1


@dataclass(frozen=True, slots=True)
class BackendTarget:
    """Where a backendRef's endpoints are: `service` ("namespace/name") in `clusters` (local excluded).

    `local_name` is the local Service serving the same endpoints in this cluster (the rewrite's
    replacement), `what` describes the ref for messages.
    """

    service: str
    clusters: tuple[str, ...]
    local_name: str
    what: str


Resolver = Callable[[Mapping[str, Any], ExtractionContext, BackendRef], BackendTarget | None]


def backend_refs(manifest: Mapping[str, Any]) -> list[list[BackendRef]]:
    """The backendRefs of every rule, shape-checked."""
    namespace = namespace_of(manifest)
    rules = []
    for i, raw in enumerate(optional_list(manifest, spec_of(manifest).get("rules"), "spec.rules")):
        rule = optional_map(manifest, raw, f"spec.rules[{i}]")
        refs = []
        for j, raw_ref in enumerate(optional_list(manifest, rule.get("backendRefs"), f"spec.rules[{i}].backendRefs")):
            if type(raw_ref) is dict and _well_formed(raw_ref):  # most refs: nothing to report
                refs.append(BackendRef(i, j, raw_ref, raw_ref.get("namespace") or namespace))
                continue
            path = f"spec.rules[{i}].backendRefs[{j}]"
            ref = optional_map(manifest, raw_ref, path)
            for key in ("kind", "group", "namespace"):
                optional_str(manifest, ref.get(key), f"{path}.{key}")
            required_str(manifest, ref.get("name"), f"{path}.name")
            ns = optional_str(manifest, ref.get("namespace"), f"{path}.namespace") or namespace
            refs.append(BackendRef(i, j, ref, ns))
        rules.append(refs)
    return rules


_STR_OR_NONE = frozenset({str, type(None)})


def _well_formed(ref: dict[str, Any]) -> bool:
    """Whether a backendRef passes the shape checks of `backend_refs` (a name; kind, group and namespace
    strings or absent), checked without building the paths its errors would name."""
    name = ref.get("name")
    return (
        type(name) is str
        and name != ""
        and _STR_OR_NONE.issuperset(map(type, (ref.get("kind"), ref.get("group"), ref.get("namespace"))))
    )


def service_import_target(manifest: Mapping[str, Any], ctx: ExtractionContext, ref: BackendRef) -> BackendTarget | None:
    """A ServiceImport backendRef: the service's endpoints in every cluster exporting it."""
    if ref.kind != "ServiceImport" or ref.group not in IMPORT_GROUPS:
        return None
    service = f"{ref.namespace}/{ref.name}"
    groups = [ref.group] if ref.group else ["application-networking.k8s.aws"]  # AWS's examples omit the group
    imported = same_name_import(ctx, groups, ref.name, ref.namespace)
    clusters = import_clusters(imported, ctx) if imported is not None else ctx.service_clusters(service)
    return BackendTarget(service, tuple(clusters), ref.name, f"ServiceImport {service}")


def _targets(
    manifest: Mapping[str, Any], ctx: ExtractionContext, resolvers: Sequence[Resolver]
) -> list[tuple[BackendRef, BackendTarget]]:
    out = []
    for refs in backend_refs(manifest):
        for ref in refs:
            if ref.weight == 0:
                continue
            for resolve in resolvers:
                target = resolve(manifest, ctx, ref)
                if target is not None:
                    out.append((ref, target))
                    break
    return out


def _single_port(objects: Sequence[Mapping[str, Any]], name: str, namespace: str) -> int | None:
    """The port of the one object named name/namespace whose spec.ports has exactly one entry."""
    for obj in objects:
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping) or meta.get("name") != name or namespace_of(obj) != namespace:
            continue
        spec = obj.get("spec")
        ports = spec.get("ports") if isinstance(spec, Mapping) else None
        if isinstance(ports, list) and len(ports) == 1 and isinstance(ports[0], Mapping):
            port = ports[0].get("port")
            if type(port) is int and 1 <= port <= 65535:
                return port
    return None


def _port(ctx: ExtractionContext, ref: BackendRef, target: BackendTarget) -> int | None:
    """The port of the replacement Service ref: the ref's, else the one port of the objects it names."""
    port = ref.ref.get("port")
    if type(port) is int and 1 <= port <= 65535:
        return port
    imports = ctx.related_objects("ServiceImport", [g for g in IMPORT_GROUPS if g], ref.namespace, ref.name)
    return _single_port(imports, ref.name, ref.namespace) or _single_port(
        ctx.related_objects("Service", [""], ref.namespace, target.local_name), target.local_name, ref.namespace
    )


def granted(ctx: ExtractionContext, manifest: Mapping[str, Any], namespace: str, name: str) -> bool:
    """Whether a ReferenceGrant in `namespace` lets this route reach Service `name` there."""
    route_group = group_of(manifest)
    route_kind = str(manifest.get("kind", ""))
    route_namespace = namespace_of(manifest)
    for grant in ctx.related_objects("ReferenceGrant", _GRANT_GROUPS, namespace):
        if namespace_of(grant) != namespace:
            continue
        spec = grant.get("spec")
        if not isinstance(spec, Mapping):
            continue
        sources = [f for f in spec.get("from") or [] if isinstance(f, Mapping)]
        targets = [t for t in spec.get("to") or [] if isinstance(t, Mapping)]
        if not any(
            f.get("group") == route_group and f.get("kind") == route_kind and f.get("namespace") == route_namespace
            for f in sources
        ):
            continue
        if any(
            (t.get("group") or "") == "" and t.get("kind") == "Service" and t.get("name") in (None, "", name)
            for t in targets
        ):
            return True
    return False


def _replacement(
    manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits, ref: BackendRef, target: BackendTarget
) -> dict[str, Any] | None:
    """The local Service ref that replaces a refused one, or None when no valid one exists."""
    if not (permits(target.service, ctx.cluster) and ctx.runs_here(target.service)):
        return None
    port = _port(ctx, ref, target)
    if port is None:
        return None
    if ref.namespace != namespace_of(manifest) and not granted(ctx, manifest, ref.namespace, target.local_name):
        return None
    value = {k: v for k, v in ref.ref.items() if k not in ("group", "kind", "name", "port")}
    value.update(kind="Service", name=target.local_name, port=port)
    return value


def route_extractor(family: str, resolvers: Sequence[Resolver]) -> Extractor:
    """The Extractor of a route kind whose backendRefs the resolvers place."""

    def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
        """Routes from the local cluster to every cluster each backendRef reaches."""
        where = describe(manifest)
        return [
            Crossing(
                target.service,
                ctx.cluster,
                c,
                c,
                f"{where} {ref.path} ({target.what})",
                ref.path,
                ctx.directory.cluster_info(c) is not None,
            )
            for ref, target in _targets(manifest, ctx, resolvers)
            for c in target.clusters
        ]

    def rewrite(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
        """Replace refused backendRefs by the local Service where valid, else drop them; None when a rule
        would be left with no backendRef that receives traffic."""
        rules = backend_refs(manifest)
        changes: dict[int, list[tuple[BackendRef, BackendTarget, dict[str, Any] | None]]] = {}
        for ref, target in _targets(manifest, ctx, resolvers):
            if all(permits(target.service, c) for c in target.clusters):
                continue
            changes.setdefault(ref.rule, []).append((ref, target, _replacement(manifest, ctx, permits, ref, target)))
        patch: JsonPatch = []
        removed: list[str] = []
        for rule, edits in sorted(changes.items()):
            dropped = {ref.index for ref, _, new in edits if new is None}
            serving = [r for r in rules[rule] if r.index not in dropped and r.weight > 0]
            if not serving:
                return None
            for ref, target, new in sorted(edits, key=lambda edit: -edit[0].index):
                path = pointer("spec", "rules", rule, "backendRefs", ref.index)
                if new is not None:
                    patch.append({"op": "replace", "path": path, "value": new})
                    removed.append(
                        f"replaced {ref.path} {target.what} by the local Service {target.local_name} in {ctx.cluster}"
                    )
                else:
                    patch.append({"op": "remove", "path": path})
                    removed.append(f"removed {ref.path} {target.what}")
        return RewritePlan(patch, tuple(removed))

    def notes(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[str]:
        """backendRefs that would cross clusters but receive no traffic (weight 0)."""
        out = []
        for refs in backend_refs(manifest):
            for ref in refs:
                if ref.weight == 0 and any(resolve(manifest, ctx, ref) for resolve in resolvers):
                    out.append(f"{ref.path} ({ref.kind} {ref.name}) has weight 0: no traffic, no route")
        return out

    return Extractor(family, extract, rewrite, notes=notes)
