"""What a live cluster shows beyond the policy repo: the observations decisions may use.

The policy repo says where each cluster is and where each service runs; a live cluster adds what it
observes. `policyengine.k8s` (the inventory, from list + watch) and `check` (from the Namespace,
ServiceImport and EndpointSlice objects among the manifests) both produce an `Observations`; the
evaluation (`EvaluationContext.observations`) reads it. Nothing here imports the `kubernetes` client.

- `namespace_labels`: the labels of each namespace, for classification rules that match them.
- `service_clusters`: "namespace/name" -> the clusters whose endpoints the cluster sees for that
  service (MCS ServiceImport `status.clusters`, EndpointSlices labelled
  `multicluster.kubernetes.io/source-cluster`, FSM ServiceImports). A route's destination clusters are
  these together with `services.yaml`; a cluster named here that the repo does not declare is unknown.
- `node_regions`: cluster -> the `topology.kubernetes.io/region` values its Nodes report. A cluster
  whose nodes report a region other than the repo's is flagged; it is never trusted for a decision.
- `synced`: whether the source has completed its first full read (the inventory's first list).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Observations:
    """One consistent view of what a cluster observes (immutable: a new one replaces it)."""

    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    service_clusters: Mapping[str, frozenset[str]] = field(default_factory=dict)
    node_regions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    synced: bool = True

    def labels_of(self, namespace: str) -> Mapping[str, str]:
        """The labels of `namespace` (empty when it was not observed)."""
        return self.namespace_labels.get(namespace, {})

    def clusters_of(self, service: str) -> frozenset[str]:
        """The clusters observed to hold endpoints of "namespace/name" (empty when none was observed)."""
        return self.service_clusters.get(service, frozenset())


NOTHING_OBSERVED = Observations()
