"""Each audit row names the route that was judged: source cluster -> destination cluster and the service.

The DPO's report once read "eu-1 → eu-1; refused: eu-1" where the message said eu-1 -> cn-1 (the
routing filter recorded the end a violation found unpermitted as the destination), "eu-1 → " for
admission rows (no destination) and "/" for rows without a service. The rows here come from the real
rules (regorus) on the default policy repo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from routing.parts import CHECKOUT, Snapshot, snapshot_of

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.manifests import read_manifests
from policyengine.audit.record import AuditRecord, content_of
from policyengine.decide import Decider
from policyengine.decision import Outcome, Violation
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.resources import default_policies
from policyengine.route import Route
from policyengine.routing.adapters import AuthzRequest
from policyengine.routing.filter import RoutingFilter
from policyengine.routing.identity import parse_identity

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return snapshot_of()


@pytest.fixture(scope="module")
def decider() -> Decider:
    return Decider(load_policy(default_policies()), make_engine("regorus"))


def test_violations_name_the_route_judged(decider: Decider) -> None:
    service = "shop/profile"  # PIPL data: eu-1 -> cn-1 moves it out of the mainland and back to eu-1
    data = decider.policy.classify("shop", "profile")
    route = Route(service, decider.endpoint("eu-1"), decider.endpoint("cn-1", workload=service, data=data))
    decision = decider.decide(route, now=NOW)
    assert decision.outcome is Outcome.DENY and decision.violations
    for v in decision.violations:
        assert (v.service, v.source, v.destination) == (service, "eu-1", "cn-1")
    again = decider.decide(route, now=NOW)  # served from the cache: still this route
    assert {(v.source, v.destination) for v in again.violations} == {("eu-1", "cn-1")}
    other = Route(service, decider.endpoint("us-1"), decider.endpoint("cn-1", workload=service, data=data))
    assert {v.source for v in decider.decide(other, now=NOW).violations} == {"us-1"}


def test_violation_route_survives_the_row_encoding() -> None:
    v = Violation(
        "PIPL", "r", "PIPL Art. 38", "m", "x", cluster="eu-1", service="shop/p", source="eu-1", destination="cn-1"
    )
    assert Violation.from_dict(v.to_dict()) == v
    bare = Violation("GDPR", "r", "a", "m", "x")
    assert "destination" not in bare.to_dict()  # rows written before keep their encoding


def test_refused_routing_row_names_the_judged_destination_not_the_refused_end(snapshot: Snapshot) -> None:
    routing = RoutingFilter("eu-1")
    routing.install(snapshot)
    request = AuthzRequest(parse_identity(CHECKOUT, "test"), "profile.shop.svc.clusterset.local", False, "GET", "/")
    verdict = routing.judge(request)
    assert verdict.status == 403
    judged = verdict.decision.violations[0]
    assert judged.destination in ("cn-1", "hk-1")
    assert verdict.destination_cluster == judged.destination
    assert verdict.service == "shop/profile"
    assert "eu-1 -> " + judged.destination in judged.message or judged.destination in judged.message


def test_unknown_host_row_names_the_host(snapshot: Snapshot) -> None:
    routing = RoutingFilter("eu-1")
    routing.install(snapshot)
    request = AuthzRequest(parse_identity(CHECKOUT, "test"), "www.example.com", False, "GET", "/")
    verdict = routing.judge(request)
    assert verdict.status == 403 and verdict.service == "www.example.com"


def test_admission_rows_carry_the_objects_routes(decider: Decider) -> None:
    manifests = read_manifests([ROOT / "examples" / "shop"])
    context = EvaluationContext(manifests=[d.body for d in manifests.documents], now=NOW)
    seen_refused = seen_allowed = 0
    for doc in manifests.documents:
        decision = evaluate_manifest(doc.body, decider, "eu-1", context)
        routes = decision.extra.get("routes") or []
        row = content_of(AuditRecord.for_manifest(decision, doc.body, source="admission", cluster="eu-1"))
        assert row["service"] not in ("", "/") and not row["service"].endswith("/")
        if not routes:
            assert row["destination_cluster"] == ""
            continue
        assert row["destination_cluster"], (doc.body["kind"], row)
        destinations = set(row["destination_cluster"].split(","))
        sources = set(row["source_cluster"].split(","))
        if decision.violations:
            seen_refused += 1
            assert destinations == {v.destination for v in decision.violations}
            assert sources == {v.source for v in decision.violations}
        else:
            seen_allowed += 1
            assert destinations == {r["destination"] for r in routes}
            assert sources == {r["source"] for r in routes}
    assert seen_refused and seen_allowed
