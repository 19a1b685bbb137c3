"""`policyengine serve --kubeconfig --context`: a real served instance whose inventory watches the API
server double (tests/k8s/apiserver.py: no kube-apiserver runs here), so admission decides with what the
cluster observes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webhook.harness import Server, start_server, wait_for

from k8s import objects
from k8s.apiserver import ApiServerDouble, kubeconfig
from k8s.repo import policies


@pytest.fixture
def served(tmp_path: Path, apiserver: ApiServerDouble) -> Iterator[Server]:
    apiserver.put_many([
        objects.namespace("team"),
        objects.namespace("shop"),
        objects.node("eu-1-a", "eu-central-1"),
        objects.service_import("shop", "checkout-eu", "eu-1", "eu-2"),
    ])  # fmt: skip
    config = kubeconfig(tmp_path / "kubeconfig", {"eu-1": apiserver})
    server = start_server(
        tmp_path, "--kubeconfig", str(config), "--context", "eu-1", "--policy-check-seconds", "0.2",
        policies=policies(tmp_path),
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


def allowed(server: Server, obj: dict[str, Any]) -> bool:
    return bool(server.validate(obj)["response"]["allowed"])


def test_readyz_says_the_inventory_synced(served: Server) -> None:
    body = served.client.get("/readyz").json()
    inventory = body["checks"]["inventory"]
    assert inventory["ok"] and inventory["detail"].startswith("synced")
    assert inventory["objects"]["Namespace"] == 2 and "ServiceImport.flomesh.io" in inventory["not_served"]
    assert inventory["flagged_clusters"] == []


def test_a_namespace_label_change_reclassifies_the_next_admission(served: Server, apiserver: ApiServerDouble) -> None:
    export = objects.service_export("team", "api")
    assert allowed(served, export)  # team holds no classified data: exporting it anywhere is allowed
    apiserver.put(objects.namespace("team", **{"data-classification": "personal"}))
    assert wait_for(lambda: not allowed(served, export), 60), "the label change never reached admission"
    answer = served.validate(export)["response"]
    assert answer["status"]["code"] == 403 and "GDPR" in answer["status"]["message"]
    apiserver.put(objects.namespace("team", **{"data-classification": "public"}))
    assert wait_for(lambda: allowed(served, export), 60)


def test_a_service_import_gaining_a_us_cluster_denies_the_next_gdpr_decision(
    served: Server, apiserver: ApiServerDouble
) -> None:
    route = objects.http_route("shop", "to-checkout-eu", "checkout-eu")
    assert allowed(served, route)  # EU-only endpoints: GDPR data stays in the EEA
    apiserver.put(objects.service_import("shop", "checkout-eu", "eu-1", "eu-2", "us-1"))
    assert wait_for(lambda: not allowed(served, route), 60), "the new cluster never reached admission"
    answer = served.validate(route)["response"]
    assert "GDPR" in answer["status"]["message"] and "us-1" in answer["status"]["message"]
    drift = served.client.get("/readyz").json()["checks"]["inventory"]["drift"]
    assert any("shop/checkout-eu" in d and "us-1" in d for d in drift)
    assert wait_for(lambda: served.metric("policyengine_placement_drift_services") >= 1, 30)


def test_nodes_reporting_another_region_flag_the_cluster(served: Server, apiserver: ApiServerDouble) -> None:
    apiserver.put(objects.node("eu-1-b", "us-east-1"))

    def flagged() -> bool:
        return bool(served.client.get("/readyz").json()["checks"]["inventory"]["flagged_clusters"])

    assert wait_for(flagged, 60)
    assert wait_for(lambda: served.metric("policyengine_cluster_region_flagged", cluster="eu-1") == 1, 30)
    assert served.client.get("/readyz").status_code == 200  # a flag informs; it never makes the server unready
    assert "region flag: cluster eu-1" in served.log.read_text()


def test_the_background_scan_records_dry_run_rows_and_keeps_a_policy_report(
    tmp_path: Path, apiserver: ApiServerDouble
) -> None:
    apiserver.put_many([
        objects.namespace("team", **{"data-classification": "personal"}),
        objects.node("eu-1-a", "eu-central-1"),
        objects.service_export("team", "api"),  # created while the webhook was down: only the scan decides it
    ])  # fmt: skip
    config = kubeconfig(tmp_path / "kubeconfig", {"eu-1": apiserver})
    server = start_server(
        tmp_path, "--kubeconfig", str(config), "--scan-interval", "1", "--lease-seconds", "3",
        policies=policies(tmp_path),
    )  # fmt: skip
    try:

        def report_of_team() -> dict[str, Any] | None:
            return apiserver.get("PolicyReport", "team", "policyengine-team", "wgpolicyk8s.io")

        assert wait_for(lambda: report_of_team() is not None, 90)
        report = report_of_team()
        assert report is not None and report["summary"]["fail"] >= 1
        assert any(r["resources"][0]["name"] == "api" and r["category"] == "GDPR" for r in report["results"])
        lease = apiserver.get("Lease", "policyengine-system", "policyengine-scan", "coordination.k8s.io")
        assert lease is not None and lease["spec"]["holderIdentity"]
        assert wait_for(lambda: any(r["source"] == "scan" for r in server.audit_rows()), 60)
        rows = [r for r in server.audit_rows() if r["source"] == "scan"]
        assert rows[0]["kind"] == "ServiceExport" and rows[0]["name"] == "api" and rows[0]["dry_run"]
        assert rows[0]["decision"] == "deny"
        assert wait_for(lambda: server.metric("policyengine_scan_duration_seconds_count") >= 1, 30)
        assert server.metric("policyengine_scan_violations", regime="GDPR", enforcement="deny") >= 1
        # The object is removed: the next scan empties the namespace's report in place.
        apiserver.remove("ServiceExport", "team", "api", "multicluster.x-k8s.io")

        def emptied() -> bool:
            found = report_of_team()
            return found is not None and found["results"] == []

        assert wait_for(emptied, 90)
    finally:
        server.stop()
