"""The crossing repros (tests/fixtures/crossings/repros, copied from issue #11): each decided as the issue says.

Every manifest is read as `check` reads it and decided by the real regorus engine under the default
policy repo, on the decision date below. A rewrite's patch is applied and the result decided again:
a rewrite is never itself a crossing the rules refuse.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.extract import extractors_for
from policyengine.admission.manifests import read_manifests
from policyengine.decide import Decider
from policyengine.decision import Decision, Outcome
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.resources import default_policies

REPROS = Path(__file__).resolve().parents[1] / "fixtures" / "crossings" / "repros"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def decider() -> Decider:
    return Decider(load_policy(default_policies()), make_engine("regorus"))


def objects(name: str, extra: list[dict[str, Any]] | None = None) -> list[Mapping[str, Any]]:
    manifests = read_manifests([REPROS / name])
    assert manifests.problems == [], manifests.problems
    return [*manifests.bodies, *(extra or [])]


def decide(decider: Decider, body: Mapping[str, Any], cluster: str, together: list[Mapping[str, Any]]) -> Decision:
    return evaluate_manifest(body, decider, cluster, EvaluationContext(manifests=together, now=NOW))


def first_decided(
    decider: Decider, name: str, cluster: str = "eu-1", extra: list[dict[str, Any]] | None = None
) -> tuple[Mapping[str, Any], Decision, list[Mapping[str, Any]]]:
    together = objects(name, extra)
    body = next(b for b in together if extractors_for(b))
    return body, decide(decider, body, cluster, together), together


def routes(decision: Decision) -> list[tuple[str, str, str]]:
    return [(r["service"], r["source"], r["destination"]) for r in decision.extra["routes"]]


def redecided(
    decider: Decider, body: Mapping[str, Any], decision: Decision, cluster: str, together: list[Mapping[str, Any]]
) -> tuple[dict[str, Any], Decision]:
    """The rewritten object and its decision: it must be allowed (a rewrite is never a refused crossing)."""
    assert decision.outcome is Outcome.REWRITE, decision
    new: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(dict(body)), list(decision.patch))
    again = decide(decider, new, cluster, [new if b is body else b for b in together])
    assert again.outcome is Outcome.ALLOW, again.violations
    return new, again


def test_gtp_active_active_without_targets_is_a_route_to_every_cluster_and_gets_explicit_targets(
    decider: Decider,
) -> None:
    body, decision, together = first_decided(decider, "gtp-activeactive-no-targets.yaml")
    assert routes(decision) == [("shop/checkout", "eu-1", "eu-2"), ("shop/checkout", "eu-1", "us-1")]
    new, again = redecided(decider, body, decision, "eu-1", together)
    assert new["spec"] == {"lbType": "ActiveActive", "targets": [{"clusterKey": "europe-west1/default/default/eu-2"}]}
    assert routes(again) == [("shop/checkout", "eu-1", "eu-2")]


def test_gtp_failover_without_targets_is_read_like_active_active(decider: Decider) -> None:
    together = objects("gtp-activeactive-no-targets.yaml")
    body = {**together[0], "spec": {"lbType": "FailOver"}}
    decision = decide(decider, body, "eu-1", [body])
    assert {d for _, _, d in routes(decision)} == {"eu-2", "us-1"}
    assert decision.outcome is Outcome.REWRITE


def test_gtp_locality_ignores_its_targets_and_says_so(decider: Decider) -> None:
    _, decision, _ = first_decided(decider, "gtp-locality-with-targets.yaml")
    assert decision.outcome is Outcome.ALLOW and routes(decision) == []
    assert any("ignored" in w and "Locality" in w for w in decision.warnings), decision.warnings


def test_cilium_legacy_annotation_is_a_global_service(decider: Decider) -> None:
    body, decision, together = first_decided(decider, "cilium-legacy-annotation.yaml")
    assert ("shop/checkout", "eu-1", "us-1") in routes(decision)
    new, again = redecided(decider, body, decision, "eu-1", together)
    annotations = new["metadata"]["annotations"]
    assert annotations["io.cilium/global-service"] == "false" == annotations["service.cilium.io/global"]
    assert routes(again) == []


def test_tls_route_to_a_service_import_is_a_route(decider: Decider) -> None:
    _, decision, _ = first_decided(decider, "tlsroute-serviceimport.yaml")
    assert routes(decision) == [("shop/profile", "eu-1", "cn-1"), ("shop/profile", "eu-1", "hk-1")]
    assert decision.outcome is Outcome.DENY and decision.enforced  # PIPL data, deny in shop


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
def test_tcp_and_udp_routes_are_read_like_tls_routes(decider: Decider, kind: str) -> None:
    body = {**objects("tlsroute-serviceimport.yaml")[0], "kind": kind}
    assert routes(decide(decider, body, "eu-1", [body])) == [
        ("shop/profile", "eu-1", "cn-1"),
        ("shop/profile", "eu-1", "hk-1"),
    ]


def test_service_import_ref_without_a_port_is_dropped_not_rewritten_into_an_invalid_ref(decider: Decider) -> None:
    _, decision, _ = first_decided(decider, "httproute-serviceimport-no-port.yaml")
    assert decision.outcome is Outcome.DENY  # its rule would be left without backendRefs
    assert decision.patch == ()


def test_service_import_ref_without_a_port_takes_the_port_of_the_service_import_applied_with_it(
    decider: Decider,
) -> None:
    service_import = {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceImport",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"type": "ClusterSetIP", "ports": [{"port": 8080, "protocol": "TCP"}]},
    }
    body, decision, together = first_decided(decider, "httproute-serviceimport-no-port.yaml", extra=[service_import])
    new, _ = redecided(decider, body, decision, "eu-1", together)
    assert new["spec"]["rules"][0]["backendRefs"] == [{"kind": "Service", "name": "checkout", "port": 8080}]


def test_reference_grant_for_service_imports_does_not_permit_a_service_ref(decider: Decider) -> None:
    _, decision, _ = first_decided(decider, "httproute-serviceimport-referencegrant.yaml")
    assert decision.outcome is Outcome.DENY and decision.patch == ()


def test_reference_grant_for_services_permits_the_cross_namespace_replacement(decider: Decider) -> None:
    together = objects("httproute-serviceimport-referencegrant.yaml")
    grant = copy.deepcopy(dict(together[1]))
    grant["spec"]["to"] = [{"group": "", "kind": "Service"}]
    together = [together[0], grant]
    decision = decide(decider, together[0], "eu-1", together)
    new, _ = redecided(decider, together[0], decision, "eu-1", together)
    assert new["spec"]["rules"][0]["backendRefs"] == [
        {"kind": "Service", "name": "checkout", "namespace": "shop", "port": 8080}
    ]


def test_distribute_from_is_decided_per_from_to_pair(decider: Decider) -> None:
    """Applied in cn-1, the EU entry still sends EU clients' traffic: its cn-north-1 share is refused."""
    body, decision, together = first_decided(decider, "destinationrule-distribute-from.yaml", cluster="cn-1")
    assert routes(decision) == [("shop/checkout", "eu-1", "cn-1")]
    new, again = redecided(decider, body, decision, "cn-1", together)
    assert new["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["distribute"] == [
        {"from": "eu-central-1/*", "to": {"eu-central-1/*": 100}}
    ]
    assert routes(again) == []


def test_zone_aware_failover_is_decided_and_rewritten(decider: Decider) -> None:
    body, decision, together = first_decided(decider, "destinationrule-zoneaware-failover.yaml")
    assert ("shop/checkout", "eu-1", "us-1") in routes(decision)
    new, _ = redecided(decider, body, decision, "eu-1", together)
    lb = new["spec"]["trafficPolicy"]["loadBalancer"]
    assert "zoneAwareLbSetting" not in lb
    assert lb["localityLbSetting"]["distribute"] == [{"from": "eu-central-1/*", "to": {"eu-central-1/*": 100}}]


def test_service_entry_is_the_service_of_its_hosts(decider: Decider) -> None:
    _, decision, _ = first_decided(decider, "serviceentry-host-not-name.yaml")
    assert routes(decision) == [("shop/checkout", "eu-1", "us-1")]
    assert decision.outcome is Outcome.DENY  # its only endpoint is refused: nothing left to keep


def test_service_entry_address_is_not_a_cluster(decider: Decider) -> None:
    _, decision, _ = first_decided(decider, "serviceentry-loopback-endpoint.yaml")
    assert decision.outcome is Outcome.ALLOW and routes(decision) == []
    assert any("127.0.0.1 is local to the calling pod" in w for w in decision.warnings)


def test_hosts_only_and_address_only_entries_are_placed_alike(decider: Decider) -> None:
    entry = dict(objects("serviceentry-loopback-endpoint.yaml")[0])
    hosts_only = {**entry, "spec": {"hosts": ["api.payments.example"], "resolution": "DNS"}}
    address_only = {
        **entry,
        "spec": {"hosts": ["ext.local"], "resolution": "DNS", "endpoints": [{"address": "api.payments.example"}]},
    }
    for body in (hosts_only, address_only):
        decision = decide(decider, body, "eu-1", [body])
        assert decision.outcome is Outcome.ALLOW and routes(decision) == []
        assert any("api.payments.example is not a cluster of the set" in w for w in decision.warnings)
    clusterset = {
        **entry,
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"hosts": ["checkout.shop.svc.clusterset.local"], "resolution": "DNS"},
    }
    assert {d for _, _, d in routes(decide(decider, clusterset, "eu-1", [clusterset]))} == {"eu-2", "us-1"}


def test_typed_list_items_are_decided(decider: Decider) -> None:
    manifests = read_manifests([REPROS / "typed-list.yaml"])
    (doc,) = manifests.documents
    assert (doc.body["kind"], doc.body["metadata"]["name"]) == ("GlobalTrafficPolicy", "profile")
    decision = decide(decider, doc.body, "eu-1", [doc.body])
    assert routes(decision) == [("shop/profile", "eu-1", "us-1")] and decision.outcome is Outcome.DENY


def test_typed_list_items_without_kind_take_it_from_the_list(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text(
        "apiVersion: flomesh.io/v1alpha1\nkind: GlobalTrafficPolicyList\n"
        "items:\n- metadata: {name: profile, namespace: shop}\n  spec: {lbType: ActiveActive}\n"
    )
    (doc,) = read_manifests([listed]).documents
    assert (doc.body["apiVersion"], doc.body["kind"]) == ("flomesh.io/v1alpha1", "GlobalTrafficPolicy")
