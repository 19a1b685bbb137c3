"""Decisions use what a cluster observes: namespace labels classify, observed endpoints are destinations.

The real loader and the real regorus engine decide; the observations are built by the same parsers the
live inventory uses (`policyengine.admission.observations`), from the objects the API server would
list. A policy repo copy adds a classification rule on namespace labels and an EU-only GDPR service.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.observations import (
    namespace_labels_of,
    node_region_of,
    observations_from_manifests,
    service_clusters_of,
)
from policyengine.admission.tagging import residency_tags
from policyengine.decide import Decider
from policyengine.decision import Outcome
from policyengine.engine import make_engine
from policyengine.observed import NOTHING_OBSERVED, Observations
from policyengine.placement import placement_drift, region_flags
from policyengine.policy import load_policy
from policyengine.policy.loaded import LoadedPolicy
from policyengine.resources import default_policies

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
LABEL_RULE = """classifications:
  - name: personal-namespaces
    match: {namespace_labels: {data-classification: personal}}
    data_classes: [personal]
    subjects: [EEA]
"""
EU_SERVICE = """services:
  - name: shop/checkout-eu
    clusters: [eu-1, eu-2]
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> LoadedPolicy:
    repo = tmp_path_factory.mktemp("observed") / "policies"
    shutil.copytree(default_policies(), repo)
    for name, addition, anchor in (
        ("classifications.yaml", LABEL_RULE, "classifications:\n"),
        ("services.yaml", EU_SERVICE, "services:\n"),
    ):
        path = repo / name
        text = path.read_text()
        assert anchor in text
        path.write_text(text.replace(anchor, addition, 1))
    return load_policy(repo)


@pytest.fixture(scope="module")
def decider(policy: LoadedPolicy) -> Decider:
    return Decider(policy, make_engine("regorus"))


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def service_import(name: str, *clusters: str, group: str = "multicluster.x-k8s.io/v1beta1") -> dict[str, Any]:
    return {
        "apiVersion": group,
        "kind": "ServiceImport",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"type": "ClusterSetIP", "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"clusters": [{"cluster": c} for c in clusters]},
    }


def service_export(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceExport",
        "metadata": {"name": name, "namespace": ns},
    }


def http_route(service: str) -> dict[str, Any]:
    """A Gateway API HTTPRoute sending to the ServiceImport `service`: routes to every cluster holding it."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"to-{service}", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"name": "mesh-gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"group": "multicluster.x-k8s.io", "kind": "ServiceImport", "name": service, "port": 80}
                    ]
                }
            ],
        },
    }


def endpoint_slice(service: str, source: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"imported-{service}-{source}",
            "namespace": "shop",
            "labels": {
                "multicluster.kubernetes.io/source-cluster": source,
                "multicluster.kubernetes.io/service-name": service,
            },
        },
        "addressType": "IPv4",
        "endpoints": [],
    }


# the parsers


def test_parsers_read_each_format_and_ignore_other_objects() -> None:
    assert namespace_labels_of(namespace("team", tier="gold")) == ("team", {"tier": "gold"})
    assert namespace_labels_of(service_export("x", "team")) is None
    assert service_clusters_of(service_import("checkout", "eu-2", "us-1")) == (
        "shop/checkout",
        frozenset({"eu-2", "us-1"}),
    )
    assert service_clusters_of(service_import("checkout")) is None
    assert service_clusters_of(endpoint_slice("checkout", "us-1")) == ("shop/checkout", frozenset({"us-1"}))
    plain = endpoint_slice("checkout", "us-1")
    del plain["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"]
    assert service_clusters_of(plain) is None
    aws = service_import("checkout", "eu-2", group="application-networking.k8s.aws/v1alpha1")
    aws["metadata"]["annotations"] = {"application-networking.k8s.aws/aws-eks-cluster-name": "us-1"}
    assert service_clusters_of(aws) == ("shop/checkout", frozenset({"us-1"}))
    fsm = {
        "apiVersion": "flomesh.io/v1alpha1",
        "kind": "ServiceImport",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "ports": [
                {
                    "port": 80,
                    "endpoints": [
                        {"clusterKey": "us-east-1/default/default/us-1"},
                        {"clusterKey": "nowhere/default/default/x"},
                    ],
                }
            ]
        },
    }
    keys = {"us-east-1/default/default/us-1": "us-1"}
    assert service_clusters_of(fsm, keys.get) == ("shop/checkout", frozenset({"us-1", "nowhere/default/default/x"}))
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/region": "us-east-1"}},
    }
    assert node_region_of(node) == "us-east-1" and node_region_of(namespace("n")) is None


def test_parsers_never_raise_on_a_wrong_shape() -> None:
    broken: list[Any] = [
        {
            "apiVersion": "multicluster.x-k8s.io/v1beta1",
            "kind": "ServiceImport",
            "metadata": {"name": "a"},
            "status": {"clusters": "us-1"},
        },
        {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": "x"},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"labels": {"a": "b"}}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"labels": None}},
        {
            "apiVersion": "flomesh.io/v1alpha1",
            "kind": "ServiceImport",
            "metadata": {"name": "a"},
            "spec": {"ports": {"x": 1}},
        },
        "not an object",
    ]
    assert observations_from_manifests(broken, cluster="eu-1") == Observations()


def test_observations_from_manifests_unions_every_object_of_a_service() -> None:
    observed = observations_from_manifests(
        [namespace("team", tier="gold"), service_import("checkout", "eu-2"), endpoint_slice("checkout", "us-1")],
        cluster="eu-1",
    )
    assert observed.labels_of("team") == {"tier": "gold"} and observed.labels_of("other") == {}
    assert observed.clusters_of("shop/checkout") == frozenset({"eu-2", "us-1"})
    assert observed.node_regions == {}


# classification by namespace labels


def test_a_namespace_label_change_reclassifies_the_next_evaluation(decider: Decider) -> None:
    export = service_export("api", "team")
    labelled = observations_from_manifests([namespace("team", **{"data-classification": "personal"})])
    relabelled = observations_from_manifests([namespace("team", **{"data-classification": "public"})])

    first = evaluate_manifest(export, decider, "eu-1", EvaluationContext(now=NOW, observations=labelled))
    assert first.outcome is Outcome.DENY and "GDPR" in first.regimes
    assert any(v.cluster == "us-1" for v in first.violations)

    second = evaluate_manifest(export, decider, "eu-1", EvaluationContext(now=NOW, observations=relabelled))
    assert second.outcome is Outcome.ALLOW and second.regimes == ()

    again = evaluate_manifest(export, decider, "eu-1", EvaluationContext(now=NOW, observations=labelled))
    assert again.outcome is Outcome.DENY


def test_namespace_labels_from_manifests_classify_in_check_order(decider: Decider) -> None:
    export = service_export("api", "team")
    manifests = [namespace("team", **{"data-classification": "personal"}), export]
    context = EvaluationContext(manifests, NOW, observations_from_manifests(manifests))
    assert evaluate_manifest(export, decider, "eu-1", context).outcome is Outcome.DENY
    assert evaluate_manifest(export, decider, "eu-1", EvaluationContext([export], NOW)).outcome is Outcome.ALLOW


# observed destination clusters


def test_a_service_import_gaining_a_us_cluster_makes_the_next_gdpr_decision_deny(decider: Decider) -> None:
    rule = http_route("checkout-eu")
    before = observations_from_manifests([service_import("checkout-eu", "eu-1", "eu-2")])
    after = observations_from_manifests([service_import("checkout-eu", "eu-1", "eu-2", "us-1")])

    allowed = evaluate_manifest(rule, decider, "eu-1", EvaluationContext(now=NOW, observations=before))
    assert allowed.outcome is Outcome.ALLOW, allowed.violations
    assert evaluate_manifest(rule, decider, "eu-1", EvaluationContext(now=NOW)).outcome is Outcome.ALLOW

    denied = evaluate_manifest(rule, decider, "eu-1", EvaluationContext(now=NOW, observations=after))
    assert denied.outcome is not Outcome.ALLOW
    assert {v.cluster for v in denied.violations} == {"us-1"}
    assert {v.regime for v in denied.violations} == {"GDPR"}


def test_an_observed_cluster_the_repo_does_not_declare_is_denied_by_name(decider: Decider) -> None:
    rule = http_route("checkout-eu")
    observed = observations_from_manifests([endpoint_slice("checkout-eu", "rogue-7")])
    decision = evaluate_manifest(rule, decider, "eu-1", EvaluationContext(now=NOW, observations=observed))
    assert decision.outcome is not Outcome.ALLOW
    (violation,) = decision.violations
    assert violation.rule == "unknown-cluster" and violation.cluster == "rogue-7"
    assert '"rogue-7"' in violation.message and "clusters.yaml does not declare" in violation.message


# drift and region flags


def test_placement_drift_names_extra_missing_and_unknown_clusters(policy: LoadedPolicy) -> None:
    observed = Observations(
        service_clusters={
            "shop/checkout-eu": frozenset({"eu-1", "us-1", "rogue-7"}),
            "shop/profile": frozenset({"cn-1", "hk-1"}),
            "shop/new": frozenset({"eu-1"}),
        }
    )
    drifts = {d.service: d for d in placement_drift(policy, observed)}
    assert set(drifts) == {"shop/checkout-eu", "shop/new"}
    eu = drifts["shop/checkout-eu"]
    assert eu.extra == ("rogue-7", "us-1") and eu.missing == ("eu-2",) and eu.unknown == ("rogue-7",)
    assert "rogue-7" in eu.message and "eu-2" in eu.message
    assert drifts["shop/new"].declared == () and drifts["shop/new"].extra == ("eu-1",)
    assert placement_drift(policy, NOTHING_OBSERVED) == []


def test_region_flags_name_a_cluster_whose_nodes_disagree_with_the_repo(policy: LoadedPolicy) -> None:
    observed = Observations(
        node_regions={
            "eu-1": frozenset({"eu-central-1"}),
            "us-1": frozenset({"us-east-1", "eu-west-3"}),
            "rogue-7": frozenset({"mars-1"}),
        }
    )
    flags = {f.cluster: f for f in region_flags(policy, observed)}
    assert set(flags) == {"us-1", "rogue-7"}
    assert flags["us-1"].declared == "aws/us-east-1" and flags["us-1"].reported == ("eu-west-3", "us-east-1")
    assert "clusters.yaml says aws/us-east-1" in flags["us-1"].message
    assert flags["rogue-7"].declared == ""


def test_node_reports_never_change_a_decision(decider: Decider) -> None:
    rule = http_route("checkout-eu")
    lying = Observations(node_regions={"eu-2": frozenset({"us-east-1"})})
    plain = evaluate_manifest(rule, decider, "eu-1", EvaluationContext(now=NOW))
    flagged = evaluate_manifest(rule, decider, "eu-1", EvaluationContext(now=NOW, observations=lying))
    assert flagged.outcome is plain.outcome is Outcome.ALLOW


def test_residency_tags_follow_the_namespace_labels(policy: LoadedPolicy) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "team"}}
    labelled = observations_from_manifests([namespace("team", **{"data-classification": "personal"})])
    assert residency_tags(service, policy, labelled).profile.regimes == ("GDPR",)
    assert residency_tags(service, policy).profile.regimes == ()
