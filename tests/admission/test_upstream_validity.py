"""Every rewrite the extractors produce is an object the API server and its controller accept, and is
decided again as allowed; and the validity checks themselves catch what upstream refuses.

The rewrites come from every manifest the tests ship (tests/fixtures/crossings, examples/shop), each
decided in eu-1 and in cn-1 under the default policy repo with the real regorus engine. Validity is
tests/upstream.py: the upstream CRD schemas (with defaults), their CEL rules through a CEL interpreter,
the checks istiod, FSM and SMI make in code, and the Kubernetes 1.32 schema for core kinds.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import upstream

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.extract import extractors_for
from policyengine.admission.extract.istio import scale_to_100
from policyengine.admission.manifests import read_manifests
from policyengine.decide import Decider
from policyengine.decision import Outcome
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.resources import default_policies

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *sorted((ROOT / "tests" / "fixtures" / "crossings" / "kinds").glob("*.yaml")),
    *sorted((ROOT / "tests" / "fixtures" / "crossings" / "repros").glob("*.yaml")),
    *sorted((ROOT / "examples" / "shop").glob("*.yaml")),
]
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def decider() -> Decider:
    return Decider(load_policy(default_policies()), make_engine("regorus"))


def rewrites(decider: Decider) -> list[tuple[str, Mapping[str, Any], dict[str, Any], list[Mapping[str, Any]], str]]:
    """(label, original, rewritten, objects applied together, cluster) of every rewrite."""
    out = []
    for source in SOURCES:
        together = read_manifests([source]).bodies
        for cluster in ("eu-1", "cn-1"):
            for body in together:
                if not extractors_for(body):
                    continue
                decision = evaluate_manifest(body, decider, cluster, EvaluationContext(manifests=together, now=NOW))
                if decision.outcome is Outcome.REWRITE:
                    new = jsonpatch.apply_patch(copy.deepcopy(dict(body)), list(decision.patch))
                    label = f"{source.name} {body['kind']}/{body['metadata']['name']} in {cluster}"
                    out.append((label, body, new, [new if b is body else b for b in together], cluster))
    return out


def test_every_rewrite_is_valid_upstream_and_allowed_when_decided_again(decider: Decider) -> None:
    found = rewrites(decider)
    kinds = {new["kind"] for _, _, new, _, _ in found}
    # every family that can narrow an object shows at least one rewrite here
    assert {"GlobalTrafficPolicy", "HTTPRoute", "TLSRoute", "TCPRoute", "UDPRoute", "GRPCRoute", "TrafficSplit",
            "DestinationRule", "ServiceEntry", "VirtualService", "Service"} <= kinds, kinds  # fmt: skip
    for label, original, new, together, cluster in found:
        assert upstream.problems(original) == [], (label, "the fixture itself is not valid upstream")
        assert upstream.problems(new) == [], (label, new)
        again = evaluate_manifest(new, decider, cluster, EvaluationContext(manifests=together, now=NOW))
        assert again.outcome is Outcome.ALLOW, (label, again.violations)


ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "store", "namespace": "shop"},
    "spec": {"rules": [{"backendRefs": [{"kind": "Service", "name": "checkout", "port": 8080}]}]},
}


def changed(obj: Mapping[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    new = copy.deepcopy(dict(obj))
    node: Any = new
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return new


def test_checks_refuse_what_upstream_refuses() -> None:
    assert upstream.problems(ROUTE) == []
    no_port = changed(ROUTE, ["spec", "rules", 0, "backendRefs", 0], {"kind": "Service", "name": "checkout"})
    assert upstream.problems(no_port) == [".spec.rules[0].backendRefs[0]: CEL Must have port for Service reference"]
    heavy = changed(ROUTE, ["spec", "rules", 0, "backendRefs", 0, "weight"], 1_000_001)
    assert any("1000001 is greater than the maximum" in p for p in upstream.problems(heavy))
    tcp = {**ROUTE, "apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute"}
    assert upstream.problems(changed(tcp, ["spec", "rules", 0, "backendRefs"], [])) == [
        "spec.rules.0.backendRefs: [] should be non-empty"
    ]
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "checkout"},
        "spec": {"host": "checkout", "trafficPolicy": {"loadBalancer": {"localityLbSetting": {
            "distribute": [{"from": "eu-central-1/*", "to": {"eu-central-1/*": 99, "europe-west1/*": 0}}]}}}},
    }  # fmt: skip
    found = upstream.problems(rule)
    assert "spec.trafficPolicy.loadBalancer.distribute[0]: locality weight must be in range [1, 100]" in found
    assert "spec.trafficPolicy.loadBalancer.distribute[0]: total locality weight 99 != 100" in found
    both = changed(rule, ["spec", "trafficPolicy", "loadBalancer", "zoneAwareLbSetting"], {"enabled": True})
    assert any("only one of localityLbSetting and zoneAwareLbSetting" in p for p in upstream.problems(both))
    gtp = {
        "apiVersion": "flomesh.io/v1alpha1",
        "kind": "GlobalTrafficPolicy",
        "metadata": {"name": "x"},
        "spec": {"lbType": "FailOver"},
    }
    assert upstream.problems(gtp) == ["FSM: requires at least one cluster for failover"]
    assert upstream.problems({**gtp, "spec": {"lbType": "Sticky"}})[0].startswith("spec.lbType: 'Sticky' is not one of")
    entry = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "x"},
             "spec": {"hosts": ["*"], "resolution": "NONE", "endpoints": [{"address": "10.0.0.1"}]}}  # fmt: skip
    found = upstream.problems(entry)
    assert (
        ".spec.hosts[0]: CEL hostname cannot be wildcard" in found
        and ".spec: CEL NONE mode cannot set endpoints" in found
    )
    assert upstream.problems({"apiVersion": "example.io/v1", "kind": "Widget"})[0].startswith(
        "no upstream schema fixture"
    )
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": "http"}]}}
    assert upstream.problems(service)[0].startswith("Kubernetes 1.32 schema")


@pytest.mark.parametrize(
    "weights",
    [
        {"a": 70, "b": 20},
        {"a": 1, "b": 999},
        {"a": 0, "b": 0},
        {"a": 1, "b": 1, "c": 1},
        dict.fromkeys("abcdefgh", 7),
        {"a": 3},
    ],
)
def test_scaled_distribute_weights_are_valid_for_istiod(weights: dict[str, int]) -> None:
    scaled = scale_to_100(weights)
    assert set(scaled) == set(weights) and sum(scaled.values()) == 100
    assert all(1 <= w <= 100 for w in scaled.values())
