"""The simulate core as `policyengine.k8s` calls it: ClusterObjects with observations, two Scenarios.

Real loader, real regorus engine. A route to a cluster the repo does not declare is refused until the
candidate declares it; only that route flips. Candidate repos built by `candidate_repo` load cleanly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.decide import Decider
from policyengine.engine import make_engine
from policyengine.observed import Observations
from policyengine.policy import load_policy
from policyengine.resources import default_policies
from policyengine.simulate import CandidateError, ClusterObjects, NewCluster, Scenario, candidate_repo, simulate

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def http_route(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"to-{service}", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"name": "mesh"}],
            "rules": [{"backendRefs": [{"group": "multicluster.x-k8s.io", "kind": "ServiceImport", "name": service}]}],
        },
    }


def test_an_observed_cluster_declared_by_the_candidate_flips_only_its_route(tmp_path: Path) -> None:
    current = Decider(load_policy(default_policies()), make_engine("regorus"))
    repo = candidate_repo(
        default_policies(), tmp_path / "candidate", add=[NewCluster("eu-9", "gcp/europe-west1", "acme")]
    )
    candidate = Decider(load_policy(repo), make_engine("regorus"))
    observed = Observations(service_clusters={"shop/checkout": frozenset({"eu-2", "eu-9"})})
    objects = [
        ClusterObjects("eu-1", [http_route("checkout")], observed, ["live eu-1"]),
        ClusterObjects("eu-1", [http_route("checkout")]),  # nothing observed: eu-9 is no destination
    ]
    (flip,) = simulate(objects, Scenario(current, NOW), Scenario(candidate, NOW))
    assert flip.source == "live eu-1" and flip.resource == "HTTPRoute shop/to-checkout"
    (route,) = flip.routes
    assert (route.destination, route.before, route.after) == (
        "eu-9",
        "rewrite",
        "allow",
    )  # shop enforces GDPR by rewrite
    assert [v.rule for v in route.violations] == ["unknown-cluster"] and route.violations[0].cluster == "eu-9"
    assert not flip.newly_denied


def test_candidate_repo_removes_a_cluster_and_what_names_it(tmp_path: Path) -> None:
    repo = candidate_repo(default_policies(), tmp_path / "candidate", remove=["hk-1"])
    policy = load_policy(repo)
    assert "hk-1" not in policy.cluster_names()
    profile = policy.service("shop/profile")
    assert profile is not None and profile.clusters == ("cn-1",)
    transfers = yaml.safe_load((repo / "transfers.yaml").read_text())["transfers"]
    assert all(t["destination"].get("cluster") != "hk-1" for t in transfers)
    with pytest.raises(CandidateError, match="declares no such cluster"):
        candidate_repo(default_policies(), tmp_path / "again", remove=["moon-1"])
