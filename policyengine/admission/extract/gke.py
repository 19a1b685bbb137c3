"""GKE multi-cluster Services: `net.gke.io/v1` ServiceExport and ServiceImport (GKE docs "Configuring
multi-cluster Services"; GKE Gateway also takes `group: net.gke.io, kind: ServiceImport` backendRefs).

"When you export a Service with MCS, that Service is then available across all of the clusters in
your fleet": a ServiceExport is a route from every other cluster to the local service, with no
per-cluster target, so a refused route denies it. A ServiceImport (GKE creates it in the consuming
clusters) reaches the endpoints of every exporting cluster (`status.clusters` when it carries them,
else every cluster running the service); it cannot be narrowed either. Both read like MCS (mcs.py).
"""

from __future__ import annotations

from policyengine.admission.extract.mcs import export_extractor, import_extractor

GROUP = "net.gke.io"
EXPORT_REMEDY = (
    "GKE exports to every cluster of the fleet: export a region-scoped Service (e.g. <name>-eu) from "
    "permitted clusters only, or keep the regulated service out of the fleet"
)
IMPORT_REMEDY = "a GKE ServiceImport reaches every exporting cluster: import a region-scoped service instead"

SERVICE_EXPORT = export_extractor("gke", EXPORT_REMEDY, "every cluster of the GKE fleet")
SERVICE_IMPORT = import_extractor("gke", IMPORT_REMEDY)
