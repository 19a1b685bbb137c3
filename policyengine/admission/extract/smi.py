"""SMI TrafficSplit (`split.smi-spec.io` v1alpha1-v1alpha4, smi-spec `apis/traffic-split/*/traffic-split.md`;
the CRD linkerd-smi v0.2.7 installs serves v1alpha1 and v1alpha2).

`spec.service` is the apex Service clients call; `spec.backends[]` (`service`, `weight`) the Services
its traffic is split over, in the same namespace. A backend that is a Linkerd mirror (`<svc>-<link>`,
`<svc>-federated`: linkerd.py) sends its share to the mirrored service in another cluster. Weights are
integers from v1alpha2 on and Kubernetes quantities (`500m`) in v1alpha1; a backend of weight 0
receives no traffic and creates no route.

The rewrite replaces a refused mirror backend by the local Service it mirrors (same weight) when the
rules permit the local cluster, the service runs here and the split does not list it already; else it
drops the backend. A split left with no backend that receives traffic is a deny.
"""

from __future__ import annotations

import re
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
from policyengine.admission.extract.linkerd import mirror_service
from policyengine.admission.extract.patch import pointer
from policyengine.admission.extract.shape import (
    ManifestError,
    describe,
    namespace_of,
    optional_list,
    optional_map,
    required_str,
    spec_of,
)

GROUP = "split.smi-spec.io"
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")


@dataclass(frozen=True, slots=True)
class Backend:
    """One `spec.backends[]` entry and, when it is a mirror, the service and clusters it reaches."""

    index: int
    name: str
    weight: float
    service: str | None = None
    clusters: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"spec.backends[{self.index}]"


def _weight(manifest: Mapping[str, Any], value: Any, path: str) -> float:
    """A backend weight: an integer (v1alpha2+) or a quantity such as `500m` (v1alpha1)."""
    if type(value) in (int, float) and value >= 0:
        return float(value)
    match = _QUANTITY.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ManifestError(
            describe(manifest), path, f"must be a weight (a number >= 0 or a quantity like 500m), got {value!r}"
        )
    number = float(match.group(1))
    return number / 1000 if match.group(2) else number


def _backends(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Backend]:
    spec = spec_of(manifest)
    namespace = namespace_of(manifest)
    out = []
    for i, raw in enumerate(optional_list(manifest, spec.get("backends"), "spec.backends")):
        entry = optional_map(manifest, raw, f"spec.backends[{i}]")
        name = required_str(manifest, entry.get("service"), f"spec.backends[{i}].service")
        weight = _weight(manifest, entry.get("weight", 0), f"spec.backends[{i}].weight")
        mirror = mirror_service(ctx, name, namespace)
        if mirror is None:
            out.append(Backend(i, name, weight))
        else:
            out.append(Backend(i, name, weight, mirror[0], tuple(mirror[1])))
    return out


def extract(manifest: Mapping[str, Any], ctx: ExtractionContext) -> list[Crossing]:
    """Routes from the local cluster to the cluster of every mirror backend that receives traffic."""
    where = describe(manifest)
    return [
        Crossing(b.service, ctx.cluster, c, c, f"{where} {b.path} (Linkerd mirror {b.name})", b.path)
        for b in _backends(manifest, ctx)
        if b.service is not None and b.weight > 0
        for c in b.clusters
    ]


def rewrite(manifest: Mapping[str, Any], ctx: ExtractionContext, permits: Permits) -> RewritePlan | None:
    """Replace refused mirror backends by the local service, or drop them; None when none is left."""
    backends = _backends(manifest, ctx)
    names = {b.name for b in backends}
    refused = [
        b
        for b in backends
        if b.service is not None and b.weight > 0 and not all(permits(b.service, c) for c in b.clusters)
    ]
    if not refused:
        return RewritePlan()
    replaced: dict[int, str] = {}
    for b in refused:
        assert b.service is not None
        local = b.service.partition("/")[2]
        if permits(b.service, ctx.cluster) and ctx.runs_here(b.service) and local not in names:
            replaced[b.index] = local
            names.add(local)
    dropped = {b.index for b in refused if b.index not in replaced}
    if not any(b.weight > 0 for b in backends if b.index not in dropped):
        return None
    patch: JsonPatch = []
    removed = []
    for b in sorted(refused, key=lambda b: -b.index):
        if b.index in replaced:
            patch.append(
                {"op": "replace", "path": pointer("spec", "backends", b.index, "service"), "value": replaced[b.index]}
            )
            removed.append(f"replaced {b.path} {b.name} by the local Service {replaced[b.index]}")
        else:
            patch.append({"op": "remove", "path": pointer("spec", "backends", b.index)})
            removed.append(f"removed {b.path} {b.name} ({', '.join(b.clusters)})")
    return RewritePlan(patch, tuple(removed))


TRAFFIC_SPLIT = Extractor("smi", extract, rewrite)
