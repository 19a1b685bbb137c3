"""Read `Observations` out of Kubernetes objects: one definition of each format, for `check` and the inventory.

`policyengine check` builds its observations from the objects among the manifests
(`observations_from_manifests`); the live inventory (`policyengine.k8s`) keeps the same objects from
list + watch and calls the same small parsers on each one, so both read a format the same way:

- `namespace_labels_of(obj)`: a v1 Namespace -> (its name, its labels).
- `service_clusters_of(obj)`: which clusters hold endpoints of which service ->
  ("namespace/name", clusters), from
  - an MCS-shaped ServiceImport (`multicluster.x-k8s.io`, GKE `net.gke.io`, AWS, Azure Fleet):
    `status.clusters[].cluster` (or the vendor pin annotation, `extract/mcs.py`);
  - an FSM ServiceImport (`flomesh.io`, `multicluster.flomesh.io`): `spec.ports[].endpoints[].clusterKey`
    resolved through clusters.yaml `fsm_key` (a key the repo does not know stays the key: an unknown
    cluster) together with `status.clusters[].cluster`;
  - a `discovery.k8s.io` EndpointSlice labelled `multicluster.kubernetes.io/source-cluster`, for the
    service of its `multicluster.kubernetes.io/service-name` label (else `kubernetes.io/service-name`).
- `node_region_of(obj)`: a v1 Node -> its `topology.kubernetes.io/region` label.

The parsers never raise: an object of another kind, or one whose fields have the wrong shape, gives
None (the extractor that decides such an object reports its shape). Nothing here imports the
`kubernetes` client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from policyengine.admission.extract import aws, azure, fsm, gke, mcs
from policyengine.admission.extract.mcs import PIN_ANNOTATIONS, imported_service
from policyengine.admission.extract.shape import ManifestError, group_of, name_of, namespace_of
from policyengine.observed import Observations

SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"
MCS_SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REGION_LABEL = "topology.kubernetes.io/region"
MCS_IMPORT_GROUPS = frozenset({mcs.GROUP, gke.GROUP, aws.GROUP, azure.GROUP})
FSM_IMPORT_GROUPS = frozenset(fsm.GROUPS)

ClusterByFsmKey = Callable[[str], str | None]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _string_map(value: Any) -> dict[str, str]:
    return {str(k): v for k, v in _mapping(value).items() if isinstance(v, str)}


def _metadata(obj: Mapping[str, Any], key: str) -> dict[str, str]:
    return _string_map(_mapping(obj.get("metadata")).get(key))


def _key(obj: Mapping[str, Any], name: str | None = None) -> str | None:
    try:
        return f"{namespace_of(obj)}/{name or name_of(obj)}"
    except ManifestError:
        return None


def namespace_labels_of(obj: Any) -> tuple[str, dict[str, str]] | None:
    """(name, labels) of a v1 Namespace; None for anything else."""
    if not isinstance(obj, Mapping) or obj.get("kind") != "Namespace" or group_of(obj):
        return None
    try:
        name = name_of(obj)
    except ManifestError:
        return None
    return name, _metadata(obj, "labels")


def _status_clusters(obj: Mapping[str, Any]) -> set[str]:
    entries = _list(_mapping(obj.get("status")).get("clusters"))
    return {
        e["cluster"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("cluster"), str) and e["cluster"]
    }


def _mcs_import(obj: Mapping[str, Any], group: str) -> tuple[str, frozenset[str]] | None:
    try:
        service = imported_service(obj)
    except ManifestError:
        return None
    annotation = PIN_ANNOTATIONS.get(group)
    pinned = _metadata(obj, "annotations").get(annotation, "") if annotation else ""
    clusters = {pinned} if pinned else _status_clusters(obj)
    return (service, frozenset(clusters)) if clusters else None


def _fsm_import(
    obj: Mapping[str, Any], cluster_by_fsm_key: ClusterByFsmKey | None
) -> tuple[str, frozenset[str]] | None:
    service = _key(obj)
    if service is None:
        return None
    clusters = _status_clusters(obj)
    for port in _list(_mapping(obj.get("spec")).get("ports")):
        for endpoint in _list(_mapping(port).get("endpoints")):
            key = _mapping(endpoint).get("clusterKey")
            if isinstance(key, str) and key:
                clusters.add((cluster_by_fsm_key(key) if cluster_by_fsm_key else None) or key)
    return (service, frozenset(clusters)) if clusters else None


def _endpoint_slice(obj: Mapping[str, Any]) -> tuple[str, frozenset[str]] | None:
    labels = _metadata(obj, "labels")
    source = labels.get(SOURCE_CLUSTER_LABEL)
    name = labels.get(MCS_SERVICE_NAME_LABEL) or labels.get(SERVICE_NAME_LABEL)
    if not source or not name:
        return None
    service = _key(obj, name)
    return (service, frozenset({source})) if service else None


def service_clusters_of(
    obj: Any, cluster_by_fsm_key: ClusterByFsmKey | None = None
) -> tuple[str, frozenset[str]] | None:
    """("namespace/name", the clusters holding its endpoints) that `obj` shows; None when it shows none.

    `cluster_by_fsm_key` resolves FSM cluster keys (a policy's `cluster_by_fsm_key`)."""
    if not isinstance(obj, Mapping):
        return None
    kind, group = obj.get("kind"), group_of(obj)
    if kind == "ServiceImport" and group in MCS_IMPORT_GROUPS:
        return _mcs_import(obj, group)
    if kind == "ServiceImport" and group in FSM_IMPORT_GROUPS:
        return _fsm_import(obj, cluster_by_fsm_key)
    if kind == "EndpointSlice" and group == "discovery.k8s.io":
        return _endpoint_slice(obj)
    return None


def node_region_of(obj: Any) -> str | None:
    """The `topology.kubernetes.io/region` label of a v1 Node; None for anything else or no label."""
    if not isinstance(obj, Mapping) or obj.get("kind") != "Node" or group_of(obj):
        return None
    return _metadata(obj, "labels").get(REGION_LABEL) or None


def observations_from_manifests(
    manifests: Iterable[Any],
    *,
    cluster: str | None = None,
    cluster_by_fsm_key: ClusterByFsmKey | None = None,
) -> Observations:
    """What the objects among `manifests` show: namespace labels, service clusters (unioned over every
    object naming the service), and, when `cluster` is given, the regions its Nodes report."""
    labels: dict[str, dict[str, str]] = {}
    services: dict[str, set[str]] = {}
    regions: set[str] = set()
    for obj in manifests:
        namespace = namespace_labels_of(obj)
        if namespace is not None:
            labels[namespace[0]] = namespace[1]
            continue
        shown = service_clusters_of(obj, cluster_by_fsm_key)
        if shown is not None:
            services.setdefault(shown[0], set()).update(shown[1])
            continue
        region = node_region_of(obj)
        if region is not None:
            regions.add(region)
    return Observations(
        namespace_labels=labels,
        service_clusters={k: frozenset(v) for k, v in services.items()},
        node_regions={cluster: frozenset(regions)} if cluster is not None and regions else {},
    )
