"""Every kind policyengine reads from or writes to a live cluster: one table, one definition.

- `INVENTORY`: what the inventory lists and watches (namespace labels, Service markers, where imported
  services' endpoints are, node regions).
- `SCAN`: every crossing kind (each (group, kind) of the extractors' registry, `admission/extract`),
  plus the ReferenceGrants routes read beside them; the scan lists and decides them.
- `WRITTEN`: the reports the scan keeps (PolicyReports, or OpenReports) and the scan's Lease.

deploy/base/rbac.yaml grants get/list/watch on exactly `READ` and writes on exactly `WRITTEN`; a test
renders it and compares it with this table. Versions are in preference order: the served one is found
by discovery (`listing.Discovery`).
"""

from __future__ import annotations

from dataclasses import dataclass

from policyengine.admission.extract import REGISTRY


@dataclass(frozen=True, slots=True)
class Kind:
    """One API kind: group ("" for the core group), kind, plural resource name, versions, scope."""

    group: str
    kind: str
    plural: str
    versions: tuple[str, ...]
    namespaced: bool = True

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def label(self) -> str:
        """`kind.group` as kubectl names it (`ServiceImport.multicluster.x-k8s.io`, `Service`)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


NAMESPACE = Kind("", "Namespace", "namespaces", ("v1",), namespaced=False)
SERVICE = Kind("", "Service", "services", ("v1",))
NODE = Kind("", "Node", "nodes", ("v1",), namespaced=False)
ENDPOINT_SLICE = Kind("discovery.k8s.io", "EndpointSlice", "endpointslices", ("v1",))
MCS_SERVICE_EXPORT = Kind("multicluster.x-k8s.io", "ServiceExport", "serviceexports", ("v1alpha1", "v1beta1"))
MCS_SERVICE_IMPORT = Kind("multicluster.x-k8s.io", "ServiceImport", "serviceimports", ("v1alpha1", "v1beta1"))
FSM_SERVICE_IMPORTS = tuple(
    Kind(group, "ServiceImport", "serviceimports", ("v1alpha1",)) for group in ("flomesh.io", "multicluster.flomesh.io")
)
# Only EndpointSlices of another cluster tell where a service's endpoints are: listed by this label.
SELECTORS: dict[Kind, str] = {ENDPOINT_SLICE: "multicluster.kubernetes.io/source-cluster"}
INVENTORY: tuple[Kind, ...] = (
    NAMESPACE,
    SERVICE,
    NODE,
    ENDPOINT_SLICE,
    MCS_SERVICE_EXPORT,
    MCS_SERVICE_IMPORT,
    *FSM_SERVICE_IMPORTS,
)

# Plural and versions of every crossing kind of the extractors' registry (a test checks none is missing).
_GATEWAY_VERSIONS = ("v1", "v1beta1", "v1alpha2")
_KNOWN: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("multicluster.x-k8s.io", "ServiceExport"): ("serviceexports", MCS_SERVICE_EXPORT.versions),
    ("multicluster.x-k8s.io", "ServiceImport"): ("serviceimports", MCS_SERVICE_IMPORT.versions),
    ("net.gke.io", "ServiceExport"): ("serviceexports", ("v1",)),
    ("net.gke.io", "ServiceImport"): ("serviceimports", ("v1",)),
    ("application-networking.k8s.aws", "ServiceExport"): ("serviceexports", ("v1alpha1",)),
    ("application-networking.k8s.aws", "ServiceImport"): ("serviceimports", ("v1alpha1",)),
    ("networking.fleet.azure.com", "ServiceExport"): ("serviceexports", ("v1alpha1", "v1beta1")),
    ("networking.fleet.azure.com", "ServiceImport"): ("serviceimports", ("v1alpha1", "v1beta1")),
    ("networking.fleet.azure.com", "MultiClusterService"): ("multiclusterservices", ("v1alpha1", "v1beta1")),
    ("multicluster.flomesh.io", "ServiceExport"): ("serviceexports", ("v1alpha1",)),
    ("flomesh.io", "ServiceExport"): ("serviceexports", ("v1alpha1",)),
    ("multicluster.flomesh.io", "GlobalTrafficPolicy"): ("globaltrafficpolicies", ("v1alpha1",)),
    ("flomesh.io", "GlobalTrafficPolicy"): ("globaltrafficpolicies", ("v1alpha1",)),
    ("gateway.networking.k8s.io", "HTTPRoute"): ("httproutes", _GATEWAY_VERSIONS),
    ("gateway.networking.k8s.io", "GRPCRoute"): ("grpcroutes", _GATEWAY_VERSIONS),
    ("gateway.networking.k8s.io", "TLSRoute"): ("tlsroutes", ("v1alpha3", "v1alpha2")),
    ("gateway.networking.k8s.io", "TCPRoute"): ("tcproutes", ("v1alpha2",)),
    ("gateway.networking.k8s.io", "UDPRoute"): ("udproutes", ("v1alpha2",)),
    ("policy.linkerd.io", "HTTPRoute"): ("httproutes", ("v1beta3", "v1beta2", "v1beta1")),
    ("split.smi-spec.io", "TrafficSplit"): ("trafficsplits", ("v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1")),
    ("networking.istio.io", "DestinationRule"): ("destinationrules", ("v1", "v1beta1", "v1alpha3")),
    ("networking.istio.io", "ServiceEntry"): ("serviceentries", ("v1", "v1beta1", "v1alpha3")),
    ("networking.istio.io", "WorkloadEntry"): ("workloadentries", ("v1", "v1beta1", "v1alpha3")),
    ("networking.istio.io", "VirtualService"): ("virtualservices", ("v1", "v1beta1", "v1alpha3")),
    ("", "Service"): ("services", ("v1",)),
}


def crossing_kinds() -> tuple[Kind, ...]:
    """A Kind for every (group, kind) the extractors read; KeyError names one this table lacks."""
    out = []
    for group, kind in REGISTRY:
        if (group, kind) not in _KNOWN:
            raise KeyError(f"policyengine/k8s/kinds.py has no plural/versions for {kind}.{group}: add it")
        plural, versions = _KNOWN[(group, kind)]
        out.append(Kind(group, kind, plural, versions))
    return tuple(out)


REFERENCE_GRANT = Kind("gateway.networking.k8s.io", "ReferenceGrant", "referencegrants", ("v1", "v1beta1"))
CROSSING: tuple[Kind, ...] = crossing_kinds()
SCAN: tuple[Kind, ...] = (*CROSSING, REFERENCE_GRANT)
READ: tuple[Kind, ...] = tuple(dict.fromkeys((*INVENTORY, *SCAN)))

POLICY_REPORT = Kind("wgpolicyk8s.io", "PolicyReport", "policyreports", ("v1alpha2",))
CLUSTER_POLICY_REPORT = Kind("wgpolicyk8s.io", "ClusterPolicyReport", "clusterpolicyreports", ("v1alpha2",), False)
OPEN_REPORT = Kind("openreports.io", "Report", "reports", ("v1alpha1",))
OPEN_CLUSTER_REPORT = Kind("openreports.io", "ClusterReport", "clusterreports", ("v1alpha1",), False)
LEASE = Kind("coordination.k8s.io", "Lease", "leases", ("v1",))
REPORTS: tuple[Kind, ...] = (POLICY_REPORT, CLUSTER_POLICY_REPORT, OPEN_REPORT, OPEN_CLUSTER_REPORT)
WRITTEN: tuple[Kind, ...] = (*REPORTS, LEASE)
