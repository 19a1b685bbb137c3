"""evaluate_manifest end to end: the examples/shop manifests, the default policy repo, the real regorus engine.

Each example object is applied to eu-1 (checkout is GDPR, profile PIPL, billing CCPA, catalog
unregulated). A rewrite's patch is applied with jsonpatch and the patched object evaluated again: it
must then be allowed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from policyengine.admission.evaluate import EvaluationContext, ManifestError, evaluate_manifest
from policyengine.admission.manifests import read_manifests
from policyengine.decide import Decider
from policyengine.decision import Decision, Outcome
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.resources import default_policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def decider() -> Decider:
    return Decider(load_policy(default_policies()), make_engine("regorus"))


@pytest.fixture(scope="module")
def shop() -> dict[tuple[str, str, str], Mapping[str, Any]]:
    manifests = read_manifests([ROOT / "examples" / "shop"])
    assert manifests.problems == []
    return {
        (d.body["kind"], d.body["apiVersion"].split("/")[0], d.body["metadata"]["name"]): d.body
        for d in manifests.documents
    }


@pytest.fixture(scope="module")
def context(shop: dict[tuple[str, str, str], Mapping[str, Any]]) -> EvaluationContext:
    return EvaluationContext(manifests=list(shop.values()), now=NOW)


def evaluate(manifest: Mapping[str, Any], decider: Decider, context: EvaluationContext) -> Decision:
    return evaluate_manifest(manifest, decider, "eu-1", context)


def rewritten(manifest: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    assert decision.outcome is Outcome.REWRITE, decision
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(dict(manifest)), list(decision.patch))
    return result


EXPECTED = [
    (("GlobalTrafficPolicy", "multicluster.flomesh.io", "checkout"), Outcome.REWRITE),
    (("GlobalTrafficPolicy", "flomesh.io", "catalog"), Outcome.ALLOW),
    (("ServiceExport", "multicluster.flomesh.io", "checkout"), Outcome.REWRITE),
    (("ServiceExport", "multicluster.x-k8s.io", "checkout"), Outcome.DENY),
    (("ServiceExport", "multicluster.x-k8s.io", "catalog"), Outcome.ALLOW),
    (("HTTPRoute", "gateway.networking.k8s.io", "store"), Outcome.REWRITE),
    (("HTTPRoute", "gateway.networking.k8s.io", "profile"), Outcome.DENY),
    (("GRPCRoute", "gateway.networking.k8s.io", "catalog"), Outcome.ALLOW),
    (("DestinationRule", "networking.istio.io", "checkout"), Outcome.REWRITE),
    (("DestinationRule", "networking.istio.io", "catalog"), Outcome.ALLOW),
    (("ServiceEntry", "networking.istio.io", "checkout-remote"), Outcome.REWRITE),
    (("Service", "v1", "checkout"), Outcome.REWRITE),
    (("Service", "v1", "profile"), Outcome.DENY),
    (("Service", "v1", "billing"), Outcome.ALLOW),
    (("Service", "v1", "catalog"), Outcome.ALLOW),
]


@pytest.mark.parametrize(("key", "outcome"), EXPECTED, ids=["/".join(k) for k, _ in EXPECTED])
def test_every_example_gets_its_documented_outcome(
    shop: dict[tuple[str, str, str], Mapping[str, Any]],
    decider: Decider,
    context: EvaluationContext,
    key: tuple[str, str, str],
    outcome: Outcome,
) -> None:
    decision = evaluate(shop[key], decider, context)
    assert decision.outcome is outcome, [v.message for v in decision.violations]
    assert decision.engine == "regorus" and decision.policy_revision == decider.policy.revision
    assert all(len(w) <= 120 for w in decision.warnings)
    if outcome is Outcome.REWRITE:
        again = evaluate(rewritten(shop[key], decision), decider, context)
        assert again.outcome is Outcome.ALLOW, [v.message for v in again.violations]
    if outcome is Outcome.DENY:
        assert decision.enforced and decision.violations


def test_checkout_traffic_policy_is_rewritten_to_eu_2(shop: Any, decider: Decider, context: EvaluationContext) -> None:
    gtp = shop[("GlobalTrafficPolicy", "multicluster.flomesh.io", "checkout")]
    decision = evaluate(gtp, decider, context)
    assert rewritten(gtp, decision)["spec"] == {
        "lbType": "ActiveActive",
        "targets": [{"clusterKey": "europe-west1/default/default/eu-2"}],
    }
    assert decision.regimes == ("GDPR",)
    assert {v.cluster for v in decision.violations} >= {"us-1"}
    assert decision.warnings[0] == "removed spec.targets[1] us-east-1/default/default/us-1"
    assert len({r["decision_id"] for r in decision.extra["routes"]}) == 2


def test_profile_route_from_eu_1_is_denied_under_pipl(shop: Any, decider: Decider, context: EvaluationContext) -> None:
    decision = evaluate(shop[("HTTPRoute", "gateway.networking.k8s.io", "profile")], decider, context)
    assert decision.regimes == ("PIPL",)
    assert {v.regime for v in decision.violations} == {"PIPL"}
    assert len(decision.violations) == len(set(decision.violations))


def test_mcs_export_denial_points_to_a_region_scoped_export(
    shop: Any, decider: Decider, context: EvaluationContext
) -> None:
    decision = evaluate(shop[("ServiceExport", "multicluster.x-k8s.io", "checkout")], decider, context)
    assert all("region-scoped service" in v.remedy for v in decision.violations)


def test_store_route_keeps_catalog_import_and_makes_checkout_local(
    shop: Any, decider: Decider, context: EvaluationContext
) -> None:
    store = shop[("HTTPRoute", "gateway.networking.k8s.io", "store")]
    rules = rewritten(store, evaluate(store, decider, context))["spec"]["rules"]
    assert rules[0]["backendRefs"][1] == {"kind": "Service", "name": "checkout", "port": 8080, "weight": 10}
    assert rules[1]["backendRefs"][0]["kind"] == "ServiceImport"


def test_service_annotation_in_the_context_decides_the_data(decider: Decider) -> None:
    """The same GTP for `orders` (no classification rule) is regulated only when its Service says so."""
    gtp = {
        "apiVersion": "multicluster.flomesh.io/v1alpha1",
        "kind": "GlobalTrafficPolicy",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {"lbType": "FailOver", "targets": [{"clusterKey": "us-east-1/default/default/us-1"}]},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "orders",
            "namespace": "shop",
            "annotations": {
                "residency.policyengine.io/data-classes": "personal",
                "residency.policyengine.io/subjects": "EEA",
            },
        },
    }
    alone = evaluate_manifest(gtp, decider, "eu-1", EvaluationContext(now=NOW))
    assert alone.outcome is Outcome.ALLOW
    together = evaluate_manifest(gtp, decider, "eu-1", EvaluationContext([service], NOW))
    assert together.outcome is Outcome.REWRITE
    assert rewritten(gtp, together)["spec"] == {"lbType": "Locality"}


def test_unknown_cluster_key_is_refused(decider: Decider) -> None:
    gtp = {
        "apiVersion": "multicluster.flomesh.io/v1alpha1",
        "kind": "GlobalTrafficPolicy",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"lbType": "ActiveActive", "targets": [{"clusterKey": "default/default/default/cluster-3"}]},
    }
    decision = evaluate_manifest(gtp, decider, "eu-1", EvaluationContext(now=NOW))
    assert decision.outcome is Outcome.REWRITE
    assert decision.extra["routes"][0]["known"] is False


def test_wrong_shape_is_a_manifest_error_with_the_json_path(decider: Decider) -> None:
    gtp = {
        "apiVersion": "multicluster.flomesh.io/v1alpha1",
        "kind": "GlobalTrafficPolicy",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"lbType": "ActiveActive", "targets": "eu-2"},
    }
    with pytest.raises(ManifestError, match=r"GlobalTrafficPolicy shop/checkout: spec\.targets: must be a list"):
        evaluate_manifest(gtp, decider, "eu-1")
