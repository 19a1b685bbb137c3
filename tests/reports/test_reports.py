"""PolicyReports of the current state: results per (resource, rule), one report per namespace, a size cap.

Reports are validated against the upstream CRD schemas (wgpolicyk8s.io v1alpha2 PolicyReport,
openreports.io v1alpha1 Report; tests/fixtures/reports) with nothing the API server would prune.
Decisions come from the real regorus engine over examples/shop, and from the audit tests' decision
builders for volume.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from audit.decisions import allow, gdpr_denial, pipl_rewrite

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.extract import extractors_for
from policyengine.admission.manifests import read_manifests
from policyengine.decide import Decider
from policyengine.decision import Outcome
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.reports import (
    DEFAULT_CAP,
    REPORT_APIS,
    ResourceRef,
    ResourceResult,
    build_reports,
    latest,
    report_api,
    results_of,
)
from policyengine.resources import default_policies
from reports.schemas import problems

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def size(report: dict[str, Any]) -> int:
    return len(json.dumps(report, ensure_ascii=False).encode())


def ref(n: int, namespace: str = "shop") -> ResourceRef:
    return ResourceRef(namespace, "ServiceEntry", "networking.istio.io/v1", f"entry-{n}", f"uid-{n}")


@pytest.fixture(scope="module")
def shop_results() -> list[ResourceResult]:
    decider = Decider(load_policy(default_policies()), make_engine("regorus"))
    bodies = read_manifests([ROOT / "examples" / "shop"]).bodies
    out = []
    for body in bodies:
        if extractors_for(body):
            decision = evaluate_manifest(body, decider, "eu-1", EvaluationContext(bodies, NOW))
            out.extend(results_of(decision, ResourceRef.of(body), cluster="eu-1", timestamp=NOW))
    return out


@pytest.mark.parametrize("api", REPORT_APIS)
def test_reports_of_real_decisions_are_valid_upstream(shop_results: list[ResourceResult], api: str) -> None:
    assert {r.result for r in shop_results} >= {"pass", "fail"}
    reports = build_reports(shop_results, api=report_api(api), generated_at=NOW)
    assert reports
    for report in reports:
        assert problems(report) == [], report["metadata"]["name"]
        assert report["apiVersion"] == api
        assert report["metadata"]["name"] == f"policyengine-{report['metadata']['namespace']}"
        counts = Counter(r["result"] for r in report["results"])
        assert report["summary"] == {k: counts.get(k, 0) for k in ("pass", "fail", "warn", "error", "skip")}
    kinds = {r["kind"] for r in reports}
    assert kinds == ({"PolicyReport"} if api.startswith("wgpolicyk8s") else {"Report"})


def test_an_invalid_report_is_caught_by_the_schema_check(shop_results: list[ResourceResult]) -> None:
    (report, *_) = build_reports(shop_results, generated_at=NOW)
    broken = {**report, "results": [{**report["results"][0], "result": "denied"}], "source": "x"}
    found = problems(broken)
    assert any("results.0.result" in p for p in found) and any(
        p.startswith("source is not in the schema") for p in found
    )


def test_results_of_maps_each_outcome() -> None:
    (passed,) = results_of(allow(1), ref(1), cluster="eu-1", timestamp=NOW)
    assert (passed.result, passed.rule, passed.category, passed.severity) == ("pass", "residency", "GDPR", "")
    (failed,) = results_of(gdpr_denial(2), ref(2), cluster="eu-1", timestamp=NOW)
    assert (failed.result, failed.rule, failed.severity) == ("fail", "no_transfer_without_mechanism", "high")
    assert failed.properties["violating_clusters"] == "us-1" and "GDPR Art. 44-46" in failed.message
    (rewritten,) = results_of(pipl_rewrite(3), ref(3), cluster="cn-1", timestamp=NOW)
    assert (rewritten.result, rewritten.severity) == ("warn", "medium")
    (dry,) = results_of(gdpr_denial(4), ref(4), cluster="eu-1", timestamp=NOW, dry_run=True)
    assert dry.result == "warn"
    with pytest.raises(ValueError, match="openreports"):
        report_api("nope")


def test_latest_keeps_the_newest_evaluation_of_each_resource() -> None:
    old = results_of(gdpr_denial(1), ref(1), cluster="eu-1", timestamp=NOW)
    new = results_of(allow(1), ref(1), cluster="eu-1", timestamp=NOW + timedelta(minutes=1))
    other_cluster = results_of(gdpr_denial(1), ref(1), cluster="eu-2", timestamp=NOW)
    kept = latest([*new, *old, *other_cluster])
    assert sorted((r.properties["cluster"], r.result) for r in kept) == [("eu-1", "pass"), ("eu-2", "fail")]


def five_thousand() -> list[ResourceResult]:
    """5,000 resources: 4,000 in `shop` (over the cap), 900 in `payments`, 100 cluster-scoped."""
    results: list[ResourceResult] = []
    makers = (gdpr_denial, pipl_rewrite, allow, allow)
    for n in range(5000):
        namespace = "shop" if n < 4000 else "payments" if n < 4900 else ""
        decision = makers[n % 4](n)
        results.extend(results_of(decision, ref(n, namespace), cluster="eu-1", timestamp=NOW + timedelta(seconds=n)))
    return results


@pytest.mark.parametrize("api", REPORT_APIS)
def test_five_thousand_resources_stay_under_the_cap(api: str) -> None:
    results = five_thousand()
    assert len({r.resource_key for r in results}) == 5000
    reports = build_reports(results, api=report_api(api), generated_at=NOW)
    by_name = {r["metadata"]["name"]: r for r in reports}
    assert set(by_name) == {"policyengine-cluster", "policyengine-payments", "policyengine-shop"}
    assert by_name["policyengine-cluster"]["kind"] in ("ClusterPolicyReport", "ClusterReport")
    listed = 0
    for report in reports:
        assert size(report) <= DEFAULT_CAP, report["metadata"]["name"]
        assert problems(report) == []
        keys = [(e["resources"][0]["name"], e["policy"], e["rule"]) for e in report["results"]]
        assert len(keys) == len(set(keys)), "one result per resource and rule"
        counts = Counter(e["result"] for e in report["results"])
        assert report["summary"] == {k: counts.get(k, 0) for k in ("pass", "fail", "warn", "error", "skip")}
        assert keys == sorted(keys), "results sorted by resource, then policy and rule"
        listed += len(keys)
    shop = by_name["policyengine-shop"]
    annotations = shop["metadata"]["annotations"]
    assert shop["metadata"]["labels"]["policyengine.io/truncated"] == "true"
    assert annotations["policyengine.io/results-total"] == "4000"
    omitted = dict(part.split("=") for part in annotations["policyengine.io/omitted"].split(","))
    cut = {k: int(v) for k, v in omitted.items()}
    assert shop["summary"]["fail"] == 1000 and "fail" not in cut, "every fail is kept"
    assert shop["summary"]["pass"] == 0 and cut["pass"] == 2000, "warns are kept before passes"
    assert shop["summary"]["warn"] + cut.get("warn", 0) == 1000
    assert "--namespace shop" in annotations["policyengine.io/complete-results"]
    payments = by_name["policyengine-payments"]
    assert "policyengine.io/truncated" not in payments["metadata"]["labels"] and len(payments["results"]) == 900
    assert listed + sum(cut.values()) == 5000


def test_a_small_cap_keeps_fails_first_and_says_what_was_cut() -> None:
    results = five_thousand()[:400]
    (report,) = build_reports(results, cap_bytes=64 * 1024, rest_hint="policyengine scan --context eu-1 -o json")
    assert size(report) <= 64 * 1024
    summary = report["summary"]
    assert summary["fail"] > 0 and summary["pass"] == 0
    annotations = report["metadata"]["annotations"]
    assert annotations["policyengine.io/complete-results"] == "policyengine scan --context eu-1 -o json"
    cut = dict(part.split("=") for part in annotations["policyengine.io/omitted"].split(","))
    assert int(cut["pass"]) == 200 and sum(map(int, cut.values())) + len(report["results"]) == 400


def test_an_unchanged_state_builds_the_same_report() -> None:
    results = five_thousand()[:50]
    first = build_reports(results, generated_at=NOW)
    again = build_reports(list(reversed(results)), generated_at=NOW)
    assert first == again
    assert all(r["results"][0]["timestamp"]["seconds"] >= int(NOW.timestamp()) for r in first)
    assert Outcome.ALLOW.value == "allow"
