"""Synthetic policy repos of any size, in the project's own format, for the scale test and bench.

`write_repo(directory, services=S, clusters=C, seed=n)` writes a complete policy repo: the law
(jurisdictions, regions, regimes, entities) copied from a base repo (the bundled default), and
generated clusters, services, classifications, transfers and enforcement. The same seed gives the same
repo. Both the equivalence test (tests/routing/test_keyed.py) and bench/scale.py use this one
definition, so the benchmark measures the repos the test proves equivalent.

The shape follows what a company of that size looks like: clusters spread over the EU, the US
(California among them), mainland China, Hong Kong and the rest of Asia, a few run by partners (a
CCPA service provider, an advertising network); services in team namespaces, each in 2-4 clusters mostly
of one geography; a handful of data profiles (unregulated, EEA personal, California consumers, mainland
personal and sensitive data at three PIPL volume tiers, important data, a CIIO, mixes) chosen by name;
per-namespace enforcement (exact names, prefixes, a sandbox in dry-run); and transfers of their own for
about one service in twenty (SCCs, PIPL contracts, CAC assessments, CCPA roles; some expired).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import yaml

# provider/code by geography; every one is in the bundled regions.yaml.
GEOGRAPHIES: dict[str, tuple[str, ...]] = {
    "eu": (
        "aws/eu-central-1", "aws/eu-west-1", "aws/eu-west-3", "gcp/europe-west1", "gcp/europe-west4",
        "azure/swedencentral", "aws/eu-south-1", "gcp/europe-central2",
    ),
    "us": ("aws/us-east-1", "aws/us-east-2", "aws/us-west-2", "gcp/us-central1", "azure/eastus"),
    "ca": ("gcp/us-west2", "aws/us-west-1", "azure/westus"),
    "cn": ("aws/cn-north-1", "aws/cn-northwest-1", "azure/chinanorth3"),
    "hk": ("azure/eastasia", "aws/ap-east-1"),
    "apac": ("aws/ap-northeast-1", "aws/ap-southeast-1", "aws/ap-south-1", "aws/ap-southeast-2"),
    "other": ("aws/eu-west-2", "aws/eu-central-2", "aws/ca-central-1", "aws/sa-east-1"),
}
GEOGRAPHY_WEIGHTS = {"eu": 30, "us": 25, "ca": 8, "cn": 10, "hk": 5, "apac": 12, "other": 10}

# Data profiles by the name prefix of a service (classifications.yaml matches names by glob).
PROFILES: dict[str, dict[str, Any]] = {
    "catalog": {"data_classes": [], "subjects": []},
    "search": {"data_classes": [], "subjects": []},
    "checkout": {"data_classes": ["personal"], "subjects": ["EEA"]},
    "account": {"data_classes": ["personal", "sensitive"], "subjects": ["EEA"]},
    "billing": {"data_classes": ["personal"], "subjects": ["US-CA"]},
    "orders": {"data_classes": ["personal"], "subjects": ["US-CA", "US"]},
    "profile": {
        "data_classes": ["personal", "sensitive"],
        "subjects": ["CN"],
        "pipl": {"volume": 250000, "sensitive_volume": 5000, "ciio": False},
    },
    "members": {
        "data_classes": ["personal"],
        "subjects": ["CN"],
        "pipl": {"volume": 50000, "sensitive_volume": 0, "ciio": False},
    },
    "ledger": {
        "data_classes": ["personal"],
        "subjects": ["CN"],
        "pipl": {"volume": 2000000, "sensitive_volume": 0, "ciio": False},
    },
    "loyalty": {
        "data_classes": ["personal"],
        "subjects": ["EEA", "CN"],
        "pipl": {"volume": 250000, "sensitive_volume": 0, "ciio": False},
    },
    "manifests": {"data_classes": ["important"], "subjects": [], "origin": ["CN"]},
    "telemetry": {"data_classes": ["personal"], "subjects": [], "origin": ["CN"], "pipl": {"ciio": True}},
    "insights": {"data_classes": ["personal"], "subjects": ["EEA", "US-CA"]},
}
PROFILE_WEIGHTS = {
    "catalog": 20, "search": 10, "checkout": 14, "account": 6, "billing": 10, "orders": 6, "profile": 6,
    "members": 4, "ledger": 3, "loyalty": 4, "manifests": 3, "telemetry": 2, "insights": 6,
}
# Where each profile mostly runs (else anywhere).
HOMES = {
    "profile": "cn", "members": "cn", "ledger": "cn", "manifests": "cn", "telemetry": "cn",
    "billing": "ca", "orders": "us", "checkout": "eu", "account": "eu", "loyalty": "eu",
}


def _choose(rng: random.Random, weights: dict[str, int]) -> str:
    names = list(weights)
    return rng.choices(names, [weights[n] for n in names])[0]


def _clusters(count: int, rng: random.Random) -> list[dict[str, Any]]:
    clusters: list[dict[str, Any]] = []
    per_geo: dict[str, int] = {}
    geos = [g for g in GEOGRAPHIES for _ in range(GEOGRAPHY_WEIGHTS[g])]
    for n in range(count):
        geo = list(GEOGRAPHIES)[n] if n < len(GEOGRAPHIES) else rng.choice(geos)  # every geography once
        index = per_geo[geo] = per_geo.get(geo, 0) + 1
        regions = GEOGRAPHIES[geo]
        region = regions[(index - 1) % len(regions)]
        entity = "acme"
        if geo == "us" and index % 4 == 3:
            entity = "northwind-analytics"
        elif geo in ("us", "ca") and index % 5 == 4:
            entity = "adnet"
        clusters.append({"name": f"{geo}-{index}", "region": region, "entity": entity, "geo": geo})
    return clusters


def _placement(geo: str | None, clusters: list[dict[str, Any]], rng: random.Random) -> list[str]:
    wanted = rng.randint(2, 4)
    local = [c["name"] for c in clusters if geo is not None and c["geo"] == geo]
    chosen: list[str] = []
    while len(chosen) < min(wanted, len(clusters)):
        pool = local if local and rng.random() < 0.8 else [c["name"] for c in clusters]
        pick = rng.choice(pool)
        if pick not in chosen:
            chosen.append(pick)
    return chosen


def _transfer(n: int, service: str, kind: str, clusters: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    expires = rng.choice(["2024-06-30", "2027-12-31", "2029-03-31", None])
    by_geo = {g: [c["name"] for c in clusters if c["geo"] == g] for g in GEOGRAPHIES}
    if kind in ("profile", "members", "ledger", "loyalty", "manifests", "telemetry"):
        mechanism = "cac_assessment" if kind in ("ledger", "manifests", "telemetry") else "pipl_standard_contract"
        target = rng.choice(by_geo["hk"] + by_geo["apac"] or [clusters[0]["name"]])
        destination: dict[str, str] = {"cluster": target}
    elif kind in ("billing", "orders", "insights"):
        mechanism = rng.choice(["ccpa_service_provider", "ccpa_contractor", "ccpa_third_party"])
        destination = {"entity": rng.choice(["northwind-analytics", "adnet"])}
    else:
        mechanism = rng.choice(["scc", "bcr"])
        destination = rng.choice([{"jurisdiction": "US"}, {"cluster": rng.choice([c["name"] for c in clusters])}])
    record: dict[str, Any] = {"id": f"t-{n}", "type": mechanism, "service": service, "destination": destination}
    if expires is not None:
        record["expires"] = expires
    return record


def repo_files(services: int, clusters: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The generated files' content (clusters, services, classifications, transfers, enforcement)."""
    rng = random.Random(seed)
    cluster_list = _clusters(clusters, rng)
    teams = max(3, services // 25)
    namespaces = [f"team-{t}" for t in range(teams)] + ["shop", "analytics", "sandbox", "sandbox-ml"]
    service_list: list[dict[str, Any]] = []
    transfers: list[dict[str, Any]] = []
    for n in range(services):
        kind = _choose(rng, PROFILE_WEIGHTS)
        namespace = rng.choice(namespaces)
        name = f"{kind}-{n}"
        geo = HOMES.get(kind) or rng.choice(list(GEOGRAPHIES))
        service = f"{namespace}/{name}"
        service_list.append(
            {
                "name": service,
                "clusters": _placement(geo, cluster_list, rng),
                "identities": [f"spiffe://acme.example/ns/{namespace}/sa/{name}"],
                "hosts": [f"{name}.{namespace}.svc.clusterset.local"],
            }
        )
        if rng.random() < 0.05:
            transfers.append(_transfer(len(transfers), service, kind, cluster_list, rng))
    transfers.append({"id": "bcr-group", "type": "bcr", "service": "*", "destination": {"jurisdiction": "JP"}})
    classifications = [
        {"name": kind, "match": {"names": [f"{kind}-*"]}, **profile} for kind, profile in PROFILES.items()
    ]
    enforcement = {
        "default": "deny",
        "rules": [
            {"regime": "*", "namespaces": ["sandbox*"], "action": "dryrun"},
            {"regime": "GDPR", "namespaces": ["shop", "team-1*"], "action": "rewrite"},
            {"regime": "CCPA", "namespaces": ["analytics", "team-2"], "action": "warn"},
            {"regime": "PIPL", "namespaces": ["team-3*"], "action": "warn"},
        ],
    }
    return {
        "clusters": {"clusters": [{k: v for k, v in c.items() if k != "geo"} for c in cluster_list]},
        "services": {"services": service_list},
        "classifications": {"classifications": classifications},
        "transfers": {"transfers": transfers},
        "enforcement": enforcement,
    }


def write_repo(directory: Path, base: Path, *, services: int, clusters: int, seed: int = 0) -> Path:
    """Write a generated policy repo into `directory` (made if missing), the law copied from `base`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("jurisdictions", "regions", "regimes", "entities"):
        shutil.copyfile(base / f"{name}.yaml", directory / f"{name}.yaml")
    for name, content in repo_files(services, clusters, seed).items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return directory
