"""Linkerd multicluster (linkerd2 `multicluster/service-mirror`, `pkg/k8s/labels.go`; docs
`reference/multicluster.md`, edge-26.8).

- Export: a Service labelled `mirror.linkerd.io/exported` (`true`: through the gateway,
  `remote-discovery`: pod to pod) is mirrored into every linked cluster; a `federated: member` joins
  `<svc>-federated` across all linked clusters. Either way every other cluster reaches the local
  endpoints. The rewrite removes the label.
- Consume: the mirror of `<svc>` from the cluster a Link targets is the Service `<svc>-<link>` in the
  same namespace (labelled `mirror.linkerd.io/mirrored-service: "true"` and
  `mirror.linkerd.io/cluster-name: <link>`); `mirror_target` places such a backendRef of a route
  (gateway.py: Gateway API and `policy.linkerd.io` HTTPRoute/GRPCRoute) and smi.py a TrafficSplit
  backend. The Link name of a cluster is clusters.yaml `linkerd_link` (default the cluster's name).
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
from policyengine.admission.extract.gateway import BackendRef, BackendTarget
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
        Crossing(service, c, ctx.cluster, c, f'{where} metadata.labels["{label}"]', f'metadata.labels["{label}"]')
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


# --- mirrored Services as route backends ---------------------------------------------------------

MIRRORED = "mirror.linkerd.io/mirrored-service"
CLUSTER_NAME = "mirror.linkerd.io/cluster-name"
FEDERATED_SUFFIX = "-federated"


def _mirror_of(ctx: ExtractionContext, name: str, namespace: str) -> tuple[str, list[str]] | None:
    """(base service name, clusters) when Service `name` is a Linkerd mirror, else None.

    A mirror is `<service>-<link>` (the service-mirror controller names it after the Link's target
    cluster) or `<service>-federated` (every linked cluster). A Service of that name applied together
    decides: only one labelled `mirror.linkerd.io/mirrored-service` is a mirror, and its
    `mirror.linkerd.io/cluster-name` label names the cluster.
    """
    for svc in ctx.related_objects("Service", [""], namespace, name):
        meta = svc.get("metadata")
        if not isinstance(meta, Mapping) or meta.get("name") != name or namespace_of(svc) != namespace:
            continue
        labels = metadata_map(svc, "labels")
        if str(labels.get(MIRRORED, "")).lower() != "true":
            return None
        link = str(labels.get(CLUSTER_NAME, ""))
        if link and name.endswith(f"-{link}"):
            cluster = ctx.directory.cluster_by_linkerd_link(link) or link
            return name[: -len(link) - 1], [cluster] if cluster != ctx.cluster else []
    if name.endswith(FEDERATED_SUFFIX) and len(name) > len(FEDERATED_SUFFIX):
        base = name[: -len(FEDERATED_SUFFIX)]
        return base, ctx.service_clusters(f"{namespace}/{base}")
    for cluster in ctx.other_clusters():
        info = ctx.directory.cluster_info(cluster)
        link = (info.linkerd_link if info is not None else "") or cluster
        if name.endswith(f"-{link}") and len(name) > len(link) + 1:
            return name[: -len(link) - 1], [cluster]
    return None


def mirror_target(manifest: Mapping[str, Any], ctx: ExtractionContext, ref: BackendRef) -> BackendTarget | None:
    """A route backendRef to a Linkerd mirror Service: the mirrored service in the linked cluster(s)."""
    if ref.kind != "Service" or ref.group:
        return None
    mirror = _mirror_of(ctx, ref.name, ref.namespace)
    if mirror is None:
        return None
    base, clusters = mirror
    service = f"{ref.namespace}/{base}"
    return BackendTarget(service, tuple(clusters), base, f"Linkerd mirror {ref.name} of {service}")


def mirror_service(ctx: ExtractionContext, name: str, namespace: str) -> tuple[str, list[str]] | None:
    """("namespace/base", clusters) of a mirror Service name (for TrafficSplit backends), else None."""
    mirror = _mirror_of(ctx, name, namespace)
    return None if mirror is None else (f"{namespace}/{mirror[0]}", mirror[1])
