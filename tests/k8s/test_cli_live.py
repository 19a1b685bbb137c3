"""`policyengine scan` and `policyengine inventory` over two contexts of one kubeconfig, each an API server
double (tests/k8s/apiserver.py says why a double), run as the real command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from k8s import objects
from k8s.apiserver import ApiServerDouble, kubeconfig
from k8s.repo import policies

NOW = "2026-11-26T10:00:00Z"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "policyengine.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=180, check=False)  # fmt: skip


@pytest.fixture
def fleet(tmp_path: Path, make_apiserver: Callable[[str], ApiServerDouble]) -> dict[str, object]:
    eu, us = make_apiserver("eu-1"), make_apiserver("us-1")
    eu.put_many([
        objects.namespace("team", **{"data-classification": "personal"}),
        objects.node("eu-1-a", "eu-central-1"),
        objects.service_export("team", "api"),  # GDPR data exported to every cluster: denied
        objects.namespace("shop"),
        objects.service_import("shop", "checkout-eu", "eu-1", "eu-2", "us-1"),  # observed beyond services.yaml
    ])  # fmt: skip
    us.put_many([
        objects.namespace("shop"),
        objects.node("us-1-a", "eu-west-1"),  # nodes somewhere else than clusters.yaml says
        objects.service("shop", "catalog", {"service.cilium.io/global": "true"}),  # product data: allowed
    ])  # fmt: skip
    config = kubeconfig(tmp_path / "kubeconfig", {"eu-1": eu, "us-1": us, "staging": eu})
    return {"eu": eu, "us": us, "kubeconfig": str(config), "policies": str(policies(tmp_path))}


def scan(fleet: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    return run("scan", "--kubeconfig", str(fleet["kubeconfig"]), "--policies", str(fleet["policies"]),
               "--time", NOW, *args)  # fmt: skip


def test_scan_decides_each_context_as_its_cluster_in_json(fleet: dict[str, object]) -> None:
    result = scan(fleet, "--context", "eu-1", "--context", "us-1", "-o", "json")
    assert result.returncode == 1, result.stderr  # the ServiceExport is enforced as deny
    doc = json.loads(result.stdout)
    by = {(r["file"], r["resource"]["kind"], r["resource"]["name"]): r for r in doc["results"]}
    export = by[("eu-1", "ServiceExport", "api")]
    assert export["decision"] == "deny" and export["enforcement"] == "deny"
    assert any(v["regime"] == "GDPR" and v["cluster"] == "us-1" for v in export["violations"])
    assert by[("us-1", "Service", "catalog")]["decision"] == "allow"
    # The EU-only service is observed in us-1 too: its import is refused (in shop, by the rewrite action,
    # which cannot narrow a controller's status).
    assert by[("eu-1", "ServiceImport", "checkout-eu")]["decision"] == "deny"
    assert "not served (CRD not installed)" in result.stderr


def test_scan_prints_every_check_format(fleet: dict[str, object]) -> None:
    text = scan(fleet, "--context", "eu-1", "--context", "us-1")
    assert text.returncode == 1
    assert "DENY     eu-1  ServiceExport team/api" in text.stdout and "GDPR" in text.stdout
    sarif = json.loads(scan(fleet, "--context", "eu-1", "-o", "sarif").stdout)
    levels = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r["level"]
        for r in sarif["runs"][0]["results"]
    }
    assert levels["eu-1"] == "error"
    junit = ET.fromstring(scan(fleet, "--context", "eu-1", "--context", "us-1", "-o", "junit").stdout)
    assert int(junit.get("failures", "0")) == 2  # the ServiceExport and the ServiceImport
    allowed = scan(fleet, "--context", "us-1", "-o", "json")
    assert allowed.returncode == 0, allowed.stdout  # nothing enforced is violated in us-1


def test_an_unmapped_or_unknown_context_is_exit_2_naming_it(fleet: dict[str, object]) -> None:
    unmapped = scan(fleet, "--context", "eu-1", "--context", "staging")
    assert unmapped.returncode == 2
    assert "--context staging: no cluster of the policy repo" in unmapped.stderr and "kube_context" in unmapped.stderr
    assert "Traceback" not in unmapped.stderr
    unknown = scan(fleet, "--context", "prod")
    assert unknown.returncode == 2 and "--context prod: the kubeconfig has no such context" in unknown.stderr


def test_scan_write_reports_writes_each_clusters_reports(fleet: dict[str, object]) -> None:
    result = scan(fleet, "--context", "eu-1", "--context", "us-1", "--write-reports", "-o", "json")
    assert result.returncode == 1
    assert "eu-1: reports 2 created" in result.stderr and "us-1: reports 1 created" in result.stderr
    eu, us = fleet["eu"], fleet["us"]
    assert isinstance(eu, ApiServerDouble) and isinstance(us, ApiServerDouble)
    team = eu.get("PolicyReport", "team", "policyengine-team", "wgpolicyk8s.io")
    assert team is not None and team["summary"]["fail"] >= 1 and team["summary"]["pass"] == 0
    shop = us.get("PolicyReport", "shop", "policyengine-shop", "wgpolicyk8s.io")
    assert shop is not None and shop["summary"] == {"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    again = scan(fleet, "--context", "us-1", "--write-reports", "--report-api", "openreports.io/v1alpha1")
    assert again.returncode == 0 and "us-1: reports 1 created" in again.stderr
    assert us.get("Report", "shop", "policyengine-shop", "openreports.io") is not None


def test_inventory_lists_placement_drift_and_flags(fleet: dict[str, object]) -> None:
    base = ("inventory", "--kubeconfig", str(fleet["kubeconfig"]), "--policies", str(fleet["policies"]))
    text = run(*base, "--context", "eu-1", "--context", "us-1")
    assert text.returncode == 0, text.stderr
    assert "DRIFT shop/checkout-eu: observed eu-1, eu-2, us-1; declared eu-1, eu-2" in text.stdout
    assert "FLAGGED cluster us-1: nodes report region eu-west-1, clusters.yaml says aws/us-east-1" in text.stdout
    assert "2 cluster(s): 1 service(s) with drift, 1 flagged cluster(s)" in text.stdout
    doc = json.loads(run(*base, "--context", "eu-1", "-o", "json").stdout)
    eu = doc["clusters"][0]
    assert eu["cluster"] == "eu-1" and eu["node_regions"] == ["eu-central-1"] and eu["flags"] == []
    assert eu["placement"] == [{"service": "shop/checkout-eu", "observed": ["eu-1", "eu-2", "us-1"],
                                "declared": ["eu-1", "eu-2"], "unknown": [],
                                "drift": "observed in us-1, which services.yaml does not list"}]  # fmt: skip
    assert run(*base, "--context", "eu-1", "--strict").returncode == 1


def test_simulate_over_two_live_contexts_lists_only_what_flips(fleet: dict[str, object]) -> None:
    # Current: the bundled repo; candidate: the same with a classification by namespace label.
    args = ("simulate", "--kubeconfig", str(fleet["kubeconfig"]), "--context", "eu-1", "--context", "us-1",
            "--candidate-policies", str(fleet["policies"]), "--now", NOW)  # fmt: skip
    result = run(*args, "-o", "json")
    assert result.returncode == 1, result.stderr  # an object admitted today would be refused
    doc = json.loads(result.stdout)
    assert doc["summary"]["flips"] == 1 and doc["summary"]["newly_denied"] == 1
    text = run(*args)
    assert "context eu-1" in text.stdout and "ServiceExport team/api" in text.stdout, text.stdout
    no_context = run("simulate", "--candidate-policies", str(fleet["policies"]))
    assert no_context.returncode == 2 and "--context" in no_context.stderr
