"""AWS Gateway API controller (VPC Lattice): `application-networking.k8s.aws/v1alpha1` ServiceExport and
ServiceImport (aws/aws-application-networking-k8s v2.0, `docs/api-types/service-export.md`,
`service-import.md`, `pkg/apis/applicationnetworking/v1alpha1`).

- ServiceExport (`spec.exportedPorts[]`, or the `application-networking.k8s.aws/port` annotation)
  registers the Service as a VPC Lattice target group that routes of every cluster associated with
  the service network can use: a route from every other cluster to the local service. There is no
  per-cluster target, so a refused route denies it.
- ServiceImport points at the target group exported under its name (or
  `application-networking.k8s.aws/export-name`) by any cluster, or by the one cluster named in
  `application-networking.k8s.aws/aws-eks-cluster-name`: a route from the local cluster to that cluster,
  else to every cluster running the service. Denied when refused, with the remedy to pin it to a
  permitted cluster. Routes name it as `kind: ServiceImport` (with this group or none): gateway.py.
"""

from __future__ import annotations

from policyengine.admission.extract.mcs import export_extractor, import_extractor

GROUP = "application-networking.k8s.aws"
EXPORT_REMEDY = (
    "a VPC Lattice export is usable from every cluster of the service network: export a region-scoped "
    "Service (e.g. <name>-eu), or keep the regulated service unexported"
)
IMPORT_REMEDY = (
    "pin the import to a permitted cluster with the annotation "
    "application-networking.k8s.aws/aws-eks-cluster-name, or import a region-scoped export"
)

SERVICE_EXPORT = export_extractor("aws", EXPORT_REMEDY, "every cluster of the VPC Lattice service network")
SERVICE_IMPORT = import_extractor("aws", IMPORT_REMEDY, path="metadata.annotations")
