"""Every crossing kind read since issue #11, decided end to end: allow, deny and rewrite cases shaped like
the upstream examples (tests/fixtures/crossings/kinds), the default policy repo, the real regorus engine.

A rewrite's patch is applied and the result decided again: it must be allowed (a rewrite is never
itself a refused crossing) and valid for the upstream CRD (tests/admission/upstream.py).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import jsonpatch
import pytest
from crossing_kinds import Case, cases

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.decide import Decider
from policyengine.decision import Outcome
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.resources import default_policies

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
CASES = cases()


@pytest.fixture(scope="module")
def decider() -> Decider:
    return Decider(load_policy(default_policies()), make_engine("regorus"))


def test_every_outcome_is_covered_per_file() -> None:
    by_file: dict[str, set[str]] = {}
    for case in CASES:
        by_file.setdefault(case.file, set()).add(case.outcome)
    assert by_file["gateway-routes.yaml"] == {"allow", "deny", "rewrite"}
    assert by_file["linkerd.yaml"] == {"allow", "deny", "rewrite"}
    assert by_file["istio-routing.yaml"] == {"allow", "deny", "rewrite"}
    assert by_file["multicluster-services.yaml"] == {"allow", "deny"}  # none of them can be narrowed


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_is_decided_as_annotated(decider: Decider, case: Case) -> None:
    context = EvaluationContext(manifests=list(case.together), now=NOW)
    decision = evaluate_manifest(case.body, decider, "eu-1", context)
    far = {r["source"] if r["destination"] == "eu-1" else r["destination"] for r in decision.extra["routes"]}
    assert far == case.routes, decision.extra["routes"]
    assert decision.outcome.value == case.outcome, decision.violations
    if decision.outcome is Outcome.DENY:
        assert all(v.remedy for v in decision.violations)
    if decision.outcome is not Outcome.REWRITE:
        assert decision.patch == ()
        return
    new = jsonpatch.apply_patch(copy.deepcopy(dict(case.body)), list(decision.patch))
    together = [new if b is case.body else b for b in case.together]
    again = evaluate_manifest(new, decider, "eu-1", EvaluationContext(manifests=together, now=NOW))
    assert again.outcome is Outcome.ALLOW, again.violations


def rewritten(decider: Decider, name: str) -> dict[str, object]:
    case = next(c for c in CASES if c.body["metadata"]["name"] == name)
    decision = evaluate_manifest(case.body, decider, "eu-1", EvaluationContext(manifests=list(case.together), now=NOW))
    assert decision.outcome is Outcome.REWRITE
    new: dict[str, object] = jsonpatch.apply_patch(copy.deepcopy(dict(case.body)), list(decision.patch))
    return new


def test_rewrites_keep_the_in_region_part(decider: Decider) -> None:
    spec = rewritten(decider, "checkout-udp")["spec"]
    assert spec["rules"][0]["backendRefs"] == [  # type: ignore[index]
        {"name": "checkout", "port": 53, "weight": 9},
        {"kind": "Service", "name": "checkout", "port": 53, "weight": 1},
    ]
    spec = rewritten(decider, "checkout")["spec"]  # the VirtualService: the clusterset share goes
    assert spec["http"][0]["route"] == [  # type: ignore[index]
        {"destination": {"host": "checkout.shop.svc.cluster.local", "port": {"number": 8080}}, "weight": 100}
    ]
    spec = rewritten(decider, "checkout-split")["spec"]  # the local checkout is listed already: the mirror goes
    assert spec["backends"] == [{"service": "checkout", "weight": 50}]  # type: ignore[index]
    spec = rewritten(decider, "checkout-federated")["spec"]
    assert spec["backends"] == [{"service": "checkout", "weight": 100}]  # type: ignore[index]
    spec = rewritten(decider, "checkout-failover")["spec"]
    assert spec["rules"][0]["backendRefs"][1] == {"kind": "Service", "name": "checkout", "port": 8080, "weight": 50}  # type: ignore[index]
