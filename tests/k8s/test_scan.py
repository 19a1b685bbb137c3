"""The scan, its reports and its Lease, with the real `kubernetes` client against the API server double
(tests/k8s/apiserver.py says why a double), the default policy repo and the real regorus engine."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from webhook.harness import wait_for

from k8s import objects
from k8s.apiserver import ApiServerDouble
from policyengine.decide import Decider
from policyengine.decision import Outcome
from policyengine.engine import make_engine
from policyengine.k8s.client import connect
from policyengine.k8s.lease import LeaseElector
from policyengine.k8s.reports_writer import write_reports
from policyengine.k8s.scan import scan_cluster
from policyengine.policy import load_policy
from policyengine.reports import build_reports
from policyengine.resources import default_policies

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GLOBAL = {"service.cilium.io/global": "true"}


@pytest.fixture(scope="module")
def decider() -> Decider:
    return Decider(load_policy(default_policies()), make_engine("regorus"))


@pytest.fixture
def api(apiserver: ApiServerDouble, kubeconfig_of: Callable[..., Path]) -> Any:
    return connect(kubeconfig_of(**{"eu-1": apiserver}), "eu-1").api


def seed(apiserver: ApiServerDouble) -> None:
    apiserver.put_many([
        objects.namespace("shop"),
        objects.service("shop", "checkout", GLOBAL),  # GDPR data shared with every cluster: narrowed
        objects.service("shop", "catalog", GLOBAL),  # product data: allowed anywhere
        objects.service("shop", "plain"),  # no crossing marker: no route
        objects.service_import("shop", "checkout", "eu-1", "eu-2"),
        objects.http_route("shop", "to-checkout", "checkout"),
    ])  # fmt: skip


def test_the_scan_decides_every_crossing_object_as_admitted_now(
    apiserver: ApiServerDouble, api: Any, decider: Decider
) -> None:
    seed(apiserver)
    scan = scan_cluster(api, decider, "eu-1", now=NOW)
    outcome = {f"{o.manifest['kind']}/{o.manifest['metadata']['name']}": o.decision.outcome for o in scan.decided}  # type: ignore[union-attr]
    assert outcome["Service/checkout"] is Outcome.REWRITE  # GDPR in shop is enforced by rewrite
    assert outcome["Service/catalog"] is Outcome.ALLOW
    assert outcome["HTTPRoute/to-checkout"] is Outcome.ALLOW  # observed in eu-1 and eu-2 only
    assert outcome["ServiceImport/checkout"] is Outcome.ALLOW
    assert "TCPRoute.gateway.networking.k8s.io" in scan.not_served
    assert scan.listed["Service"] == 3
    # The ServiceImport gains a US cluster: the next scan sees the route deny.
    apiserver.put(objects.service_import("shop", "checkout", "eu-1", "eu-2", "us-1"))
    again = scan_cluster(api, decider, "eu-1", now=NOW)
    route = next(o for o in again.decided if o.manifest["kind"] == "HTTPRoute")
    assert route.decision is not None and route.decision.outcome is Outcome.REWRITE  # narrowed to the EU part
    assert any(v.cluster == "us-1" for v in route.decision.violations)


def test_reports_are_created_then_updated_in_place(apiserver: ApiServerDouble, api: Any, decider: Decider) -> None:
    seed(apiserver)
    first = write_reports(api, build_reports(scan_cluster(api, decider, "eu-1", now=NOW).results()))
    assert first.created == ["shop/policyengine-shop"] and not first.refused
    created = apiserver.get("PolicyReport", "shop", "policyengine-shop", "wgpolicyk8s.io")
    assert created is not None and created["summary"]["warn"] >= 1 and created["summary"]["pass"] >= 1
    apiserver.remove("Service", "shop", "checkout")
    apiserver.fail_next(1, 409, "/policyreports/policyengine-shop", method="PUT")  # someone wrote in between
    second = write_reports(api, build_reports(scan_cluster(api, decider, "eu-1", now=NOW).results()))
    assert second.updated == ["shop/policyengine-shop"] and not second.refused
    assert apiserver.count("PUT", "/policyreports/policyengine-shop") == 2  # the conflict, then the retry
    updated = apiserver.get("PolicyReport", "shop", "policyengine-shop", "wgpolicyk8s.io")
    assert updated is not None and updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["summary"]["warn"] == 0
    about = {(r["resources"][0]["kind"], r["resources"][0]["name"]) for r in updated["results"]}
    assert ("Service", "checkout") not in about and ("Service", "catalog") in about
    assert len(apiserver.all("PolicyReport", "wgpolicyk8s.io")) == 1


def test_openreports_and_a_namespace_without_results_left_is_emptied(
    apiserver: ApiServerDouble, api: Any, decider: Decider
) -> None:
    seed(apiserver)
    apiserver.put_many([objects.namespace("crm"), objects.service("crm", "contacts", GLOBAL)])
    api_version = "openreports.io/v1alpha1"
    results = scan_cluster(api, decider, "eu-1", now=NOW).results()
    write_reports(api, build_reports(results, api=api_version), api_version)
    assert {r["metadata"]["name"] for r in apiserver.all("Report", "openreports.io")} == {
        "policyengine-shop", "policyengine-crm"}  # fmt: skip
    apiserver.remove("Service", "crm", "contacts")
    outcome = write_reports(
        api, build_reports(scan_cluster(api, decider, "eu-1", now=NOW).results(), api=api_version), api_version
    )
    assert outcome.emptied == ["crm/policyengine-crm"]
    crm = apiserver.get("Report", "crm", "policyengine-crm", "openreports.io")
    assert crm is not None and crm["results"] == []


def test_a_refused_report_is_logged_with_what_was_cut_and_the_others_are_written(
    apiserver: ApiServerDouble, api: Any, decider: Decider, caplog: pytest.LogCaptureFixture
) -> None:
    seed(apiserver)
    apiserver.put_many([objects.namespace("crm"), objects.service("crm", "contacts", GLOBAL)])
    apiserver.invalid = lambda obj: "results: Too many" if obj["metadata"]["name"] == "policyengine-crm" else None
    caplog.set_level(logging.WARNING, logger="policyengine.scan")
    outcome = write_reports(api, build_reports(scan_cluster(api, decider, "eu-1", now=NOW).results()))
    assert outcome.created == ["shop/policyengine-shop"]
    assert len(outcome.refused) == 1 and "HTTP 422" in outcome.refused[0] and "Too many" in outcome.refused[0]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "crm/policyengine-crm refused (HTTP 422" in logged and "already cut by the size cap: nothing" in logged
    apiserver.invalid = lambda obj: None
    apiserver.max_body_bytes = 1000  # every report is now over the API server's request limit
    outcome = write_reports(api, build_reports(scan_cluster(api, decider, "eu-1", now=NOW).results()))
    assert all("HTTP 413" in r for r in outcome.refused) and len(outcome.refused) == 2


def test_reports_stay_under_the_cap_at_5000_resources(apiserver: ApiServerDouble, api: Any, decider: Decider) -> None:
    apiserver.put(objects.namespace("analytics"))
    apiserver.put(objects.namespace("small"))
    for i in range(4_900):  # personal data imported from us-1: each denied
        apiserver.put(objects.service_import("analytics", f"events-{i}", "us-1"))
    for i in range(100):
        apiserver.put(objects.service_import("small", f"catalog-{i}", "eu-2"))
    scan = scan_cluster(api, decider, "eu-1", now=NOW)
    assert len(scan.decided) == 5_000
    cap = 256 * 1024
    outcome = write_reports(api, build_reports(scan.results(), cap_bytes=cap))
    assert sorted(outcome.created) == ["analytics/policyengine-analytics", "small/policyengine-small"]
    assert not outcome.refused
    big = apiserver.get("PolicyReport", "analytics", "policyengine-analytics", "wgpolicyk8s.io")
    small = apiserver.get("PolicyReport", "small", "policyengine-small", "wgpolicyk8s.io")
    assert big is not None and small is not None
    for report in (big, small):
        assert len(json.dumps({k: v for k, v in report.items() if k != "metadata"})) < cap
    assert big["metadata"]["labels"]["policyengine.io/truncated"] == "true"
    assert int(big["metadata"]["annotations"]["policyengine.io/results-total"]) >= 4_900
    assert "fail" in big["metadata"]["annotations"]["policyengine.io/omitted"]
    assert all(r["result"] == "fail" for r in big["results"])
    assert "policyengine.io/truncated" not in small["metadata"].get("labels", {})
    assert small["summary"]["pass"] == 100


def test_two_replicas_elect_one_scanner(apiserver: ApiServerDouble, api: Any) -> None:
    first = LeaseElector(api, "policyengine-system", identity="replica-a", duration_seconds=2)
    second = LeaseElector(api, "policyengine-system", identity="replica-b", duration_seconds=2)
    assert [first.try_acquire_or_renew(), second.try_acquire_or_renew()] == [True, False]
    assert first.try_acquire_or_renew() and not second.try_acquire_or_renew()  # renewed, still one
    lease = apiserver.get("Lease", "policyengine-system", "policyengine-scan", "coordination.k8s.io")
    assert lease is not None and lease["spec"]["holderIdentity"] == "replica-a"
    assert lease["spec"]["leaseDurationSeconds"] == 2
    # The holder stops renewing (it died): once the Lease expires the other takes it.
    assert wait_for(second.try_acquire_or_renew, 60)
    assert not first.try_acquire_or_renew()
    lease = apiserver.get("Lease", "policyengine-system", "policyengine-scan", "coordination.k8s.io")
    assert (
        lease is not None and lease["spec"]["holderIdentity"] == "replica-b" and lease["spec"]["leaseTransitions"] == 1
    )
    second.release()  # a clean shutdown hands it over at once
    assert first.try_acquire_or_renew()


def test_a_race_for_a_free_lease_has_one_winner(apiserver: ApiServerDouble, api: Any) -> None:
    electors = [
        LeaseElector(api, "policyengine-system", identity=f"replica-{i}", duration_seconds=30) for i in range(2)
    ]
    electors[0].try_acquire_or_renew()
    electors[0].release()
    # Both read the free Lease; the API server accepts the first update and answers the second 409.
    apiserver.fail_next(1, 409, "/leases/policyengine-scan", method="PUT")
    won = [e.try_acquire_or_renew() for e in electors]
    assert won == [False, True]
