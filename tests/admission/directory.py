"""A small cluster directory for the extractor unit tests.

Extractors are pure functions over a `ClusterDirectory` protocol; these tests use this in-memory one
so each family is tested on its own. It is a test double of `LoadedPolicy`'s lookups, used only here;
`test_evaluate_e2e.py` runs the same extractors against the real policy repo and the real regorus engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from policyengine.admission.extract import ExtractionContext


@dataclass(frozen=True)
class ClusterRow:
    name: str
    locality: str
    fsm_key: str
    network: str = ""
    linkerd_link: str = ""


@dataclass(frozen=True)
class ServiceRow:
    clusters: Sequence[str]
    hosts: Sequence[str] = ()


@dataclass
class TableDirectory:
    """Clusters and services from two small tables (see the module docstring)."""

    clusters: dict[str, ClusterRow] = field(default_factory=dict)
    services: dict[str, ServiceRow] = field(default_factory=dict)

    def cluster_names(self) -> list[str]:
        return sorted(self.clusters)

    def cluster_info(self, name: str) -> ClusterRow | None:
        return self.clusters.get(name)

    def cluster_by_fsm_key(self, key: str) -> str | None:
        return next((c.name for c in self.clusters.values() if c.fsm_key == key), None)

    def clusters_in_locality(self, pattern: str) -> list[str]:
        region = pattern.split("/", 1)[0]
        return sorted(c.name for c in self.clusters.values() if region in ("*", c.locality))

    def clusters_in_network(self, network: str) -> list[str]:
        return sorted(c.name for c in self.clusters.values() if network and c.network == network)

    def cluster_by_linkerd_link(self, link: str) -> str | None:
        return next((c.name for c in self.clusters.values() if (c.linkerd_link or c.name) == link), None)

    def service(self, name: str) -> ServiceRow | None:
        return self.services.get(name)

    def service_by_host(self, host: str) -> str | None:
        return next((name for name, s in self.services.items() if host in s.hosts), None)


def shop_directory() -> TableDirectory:
    """eu-1, eu-2 (EU), us-1 (US), cn-1 (CN); shop/checkout runs in eu-1, eu-2 and us-1."""
    rows = [
        ClusterRow("eu-1", "eu-central-1", "eu-central-1/default/default/eu-1", network="net-eu"),
        ClusterRow("eu-2", "eu-west-1", "eu-west-1/default/default/eu-2", network="net-eu"),
        ClusterRow("us-1", "us-east-1", "us-east-1/default/default/us-1", network="net-us"),
        ClusterRow("cn-1", "cn-north-1", "cn-north-1/default/default/cn-1"),
    ]
    return TableDirectory(
        clusters={r.name: r for r in rows},
        services={
            "shop/checkout": ServiceRow(["eu-1", "eu-2", "us-1"], ["checkout.shop.svc.clusterset.local"]),
            "shop/catalog": ServiceRow(["eu-1", "eu-2", "us-1", "cn-1"]),
        },
    )


def context(cluster: str = "eu-1") -> ExtractionContext:
    return ExtractionContext(cluster, shop_directory())


@dataclass(frozen=True)
class ClusterPermits:
    """Permits: the given clusters for every service, and every route between two of them."""

    clusters: frozenset[str] | None  # None: every cluster

    def __call__(self, service: str, cluster: str) -> bool:
        return self.clusters is None or cluster in self.clusters

    def pair(self, service: str, source: str, destination: str) -> bool:
        return source == destination or (self(service, source) and self(service, destination))


eu_only = ClusterPermits(frozenset({"eu-1", "eu-2"}))  # what GDPR with no mechanism allows
nowhere_else = ClusterPermits(frozenset({"eu-1"}))  # nothing but the local eu-1
everywhere = ClusterPermits(None)
