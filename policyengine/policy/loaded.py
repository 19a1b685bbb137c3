"""A loaded, checked policy repo: the compiled data for Rego, the modules, and lookups for Python callers."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policyengine.policy.classification import Classifier
from policyengine.policy.index import with_index
from policyengine.policy.problems import Problem
from policyengine.route import DataProfile


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """Where a cluster is and who runs it, as the policy repo says."""

    name: str
    region: str  # "aws/eu-central-1"
    jurisdiction: str
    entity: str
    fsm_key: str
    locality: str
    network: str = ""  # Istio network, "" when clusters.yaml gives none
    linkerd_link: str = ""  # the Linkerd Link name of the cluster (default its name)
    kube_context: str = ""  # the kubeconfig context that reaches it (default its name)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A known service from services.yaml."""

    name: str  # "shop/checkout"
    clusters: tuple[str, ...]
    identities: tuple[str, ...]
    hosts: tuple[str, ...]


def _locality_matches(pattern: str, locality: str) -> bool:
    """Istio locality patterns (region/zone/subzone, `*` wildcards) against a cluster's locality.

    Only the segments both sides have are compared: a cluster's locality is usually its region, so
    `eu-central-1/eu-central-1a` matches a cluster in `eu-central-1`.
    """
    wanted = pattern.split("/")
    have = locality.split("/")
    return all(fnmatch.fnmatchcase(h, w) for w, h in zip(wanted, have, strict=False))


@dataclass(frozen=True)
class LoadedPolicy:
    """The result of `load_policy`: immutable; a reload builds a new one."""

    directory: Path
    revision: str
    data: Mapping[str, Any]
    modules: Mapping[str, str]
    warnings: tuple[Problem, ...]
    classifier: Classifier
    _clusters: Mapping[str, ClusterInfo] = field(repr=False)
    _services: Mapping[str, ServiceInfo] = field(repr=False)

    @classmethod
    def build(
        cls,
        directory: Path,
        revision: str,
        data: dict[str, Any],
        modules: dict[str, str],
        warnings: Iterable[Problem],
        classifier: Classifier,
    ) -> LoadedPolicy:
        clusters = {
            name: ClusterInfo(
                name=name,
                region=c["region"],
                jurisdiction=c["jurisdiction"],
                entity=c["entity"],
                fsm_key=c["fsm_key"],
                locality=c["locality"],
                network=c.get("network", ""),
                linkerd_link=c.get("linkerd_link", name),
                kube_context=c.get("kube_context", name),
            )
            for name, c in data["clusters"].items()
        }
        services = {
            name: ServiceInfo(
                name=name,
                clusters=tuple(s["clusters"]),
                identities=tuple(s["identities"]),
                hosts=tuple(s["hosts"]),
            )
            for name, s in data["services"].items()
        }
        data = with_index(data)  # static per-cluster facts the rules read (policy/index.py)
        return cls(directory, revision, data, modules, tuple(warnings), classifier, clusters, services)

    # clusters

    def cluster_info(self, name: str) -> ClusterInfo | None:
        return self._clusters.get(name)

    def cluster_names(self) -> list[str]:
        return sorted(self._clusters)

    def cluster_by_fsm_key(self, key: str) -> str | None:
        return next((c.name for c in self._clusters.values() if c.fsm_key == key), None)

    def clusters_in_locality(self, pattern: str) -> list[str]:
        """Clusters whose Istio locality matches `pattern` ("eu-central-1/*", "*", "us-east-1")."""
        return sorted(c.name for c in self._clusters.values() if _locality_matches(pattern, c.locality))

    def clusters_in_network(self, network: str) -> list[str]:
        """Clusters whose Istio network is `network` (clusters.yaml `network`)."""
        return sorted(c.name for c in self._clusters.values() if network and c.network == network)

    def cluster_by_kube_context(self, context: str) -> str | None:
        """The cluster a kubeconfig context reaches (clusters.yaml `kube_context`, default the name)."""
        return next((c.name for c in self._clusters.values() if c.kube_context == context), None)

    def cluster_by_linkerd_link(self, link: str) -> str | None:
        """The cluster a Linkerd Link name points at (clusters.yaml `linkerd_link`, default the name)."""
        return next((c.name for c in self._clusters.values() if c.linkerd_link == link), None)

    # data

    def classify(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> DataProfile:
        return self.classifier.classify(namespace, name, labels, annotations, namespace_labels)

    def regimes_for(
        self, subjects: Iterable[str], data_classes: Iterable[str], origin: Iterable[str] = (), ciio: bool = False
    ) -> tuple[str, ...]:
        return self.classifier.regimes_for(subjects, data_classes, origin, ciio)

    def annotation_problems(self, annotations: Mapping[str, str]) -> list[str]:
        return self.classifier.annotation_problems(annotations)

    # services

    def service(self, name: str) -> ServiceInfo | None:
        return self._services.get(name)

    def service_names(self) -> list[str]:
        return sorted(self._services)

    def service_by_identity(self, identity: str) -> str | None:
        return next((s.name for s in self._services.values() if identity in s.identities), None)

    def service_by_host(self, host: str) -> str | None:
        host = host.lower().rstrip(".").partition(":")[0]
        return next((s.name for s in self._services.values() if host in {h.lower() for h in s.hosts}), None)
