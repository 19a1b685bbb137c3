"""`policyengine check`: the example's decisions, output formats, exit codes and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

from cli import ROOT, run

from policyengine.resources import default_policies

EXAMPLES = ROOT / "examples"


def test_example_shows_allow_deny_and_rewrite() -> None:
    result = run("check", str(EXAMPLES), "--cluster", "eu-1", "--format", "json")
    assert result.returncode == 1, result.stderr  # something enforced as deny is violated
    doc = json.loads(result.stdout)
    assert doc["policy_revision"].startswith("sha256:")
    decisions = {r["decision"] for r in doc["results"]}
    assert decisions == {"allow", "deny", "rewrite"}
    for item in doc["results"]:
        assert set(item) >= {"file", "resource", "decision", "enforcement", "violations", "permitted_clusters", "patch"}
        assert set(item["resource"]) == {"apiVersion", "kind", "namespace", "name"}
        for v in item["violations"]:
            assert set(v) >= {"regime", "rule", "article", "message", "remedy"}
    rewrites = [r for r in doc["results"] if r["decision"] == "rewrite"]
    assert all(r["patch"] for r in rewrites)
    gtp = next(r for r in doc["results"] if r["resource"]["kind"] == "GlobalTrafficPolicy" and r["decision"] != "allow")
    assert "us-1" not in gtp["permitted_clusters"]


def test_text_output_names_regulation_regions_and_remedy() -> None:
    result = run("check", str(EXAMPLES), "--cluster", "eu-1")
    assert result.returncode == 1
    out = result.stdout
    assert "DENY" in out and "REWRITE" in out and "ALLOW" in out
    assert "PIPL Art. 38-39" in out and "GDPR Art." in out
    assert "remedy:" in out
    assert "Traceback" not in result.stderr


def test_compliant_manifest_exits_zero(tmp_path: Path) -> None:
    manifest = tmp_path / "gtp.yaml"
    manifest.write_text(
        "apiVersion: multicluster.flomesh.io/v1alpha1\nkind: GlobalTrafficPolicy\n"
        "metadata: {name: checkout, namespace: shop}\n"
        "spec:\n  lbType: FailOver\n  targets:\n  - clusterKey: europe-west1/default/default/eu-2\n"
    )
    result = run("check", str(manifest), "--cluster", "eu-1", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["results"][0]["decision"] == "allow"


def test_sarif_and_junit(tmp_path: Path) -> None:
    sarif = run("check", str(EXAMPLES), "--cluster", "eu-1", "--format", "sarif")
    doc = json.loads(sarif.stdout)
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert results and {r["level"] for r in results} <= {"error", "warning"}
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results)
    junit = run("check", str(EXAMPLES), "--cluster", "eu-1", "--format", "junit")
    suite = ET.fromstring(junit.stdout.split("?>", 1)[1])
    assert int(suite.get("failures", "0")) >= 1
    assert int(suite.get("tests", "0")) == len(suite.findall("testcase"))


def test_invalid_yaml_is_exit_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n")
    result = run("check", str(bad), "--cluster", "eu-1")
    assert result.returncode == 2
    assert "bad.yaml:" in result.stderr
    assert "Traceback" not in result.stderr


def test_manifest_without_kind_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "nokind.yaml"
    bad.write_text("apiVersion: v1\nmetadata: {name: x}\n")
    result = run("check", str(bad), "--cluster", "eu-1")
    assert result.returncode == 2
    assert "nokind.yaml" in result.stderr and "kind" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_cluster_flag_is_exit_2() -> None:
    result = run("check", str(EXAMPLES), "--cluster", "mars-1")
    assert result.returncode == 2
    assert "mars-1" in result.stderr and "eu-1" in result.stderr


def test_policy_with_unknown_jurisdiction_names_file_and_line(tmp_path: Path) -> None:
    repo = tmp_path / "policies"
    shutil.copytree(default_policies(), repo)
    regions = repo / "regions.yaml"
    text = regions.read_text()
    assert "jurisdiction: DE" in text
    line = text[: text.index("jurisdiction: DE")].count("\n") + 1
    regions.write_text(text.replace("jurisdiction: DE", "jurisdiction: XX", 1))
    result = run("check", str(EXAMPLES), "--cluster", "eu-1", "--policies", str(repo))
    assert result.returncode == 2
    assert f"regions.yaml:{line}" in result.stderr and "XX" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_path_and_bad_format_are_exit_2() -> None:
    assert run("check", "/nonexistent/x.yaml", "--cluster", "eu-1").returncode == 2
    assert run("check", str(EXAMPLES), "--cluster", "eu-1", "--format", "xml").returncode == 2


def test_check_audit_records_cli_rows(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/audit.db"
    assert run("db", "upgrade", "--db", db).returncode == 0
    assert run("audit", "keygen", "--out", str(tmp_path / "keys")).returncode == 0
    key = str(tmp_path / "keys" / "audit.key")
    check = ("check", str(EXAMPLES), "--cluster", "eu-1", "--audit", "--db", db, "--format", "json")
    result = run(*check, "--audit-signing-key", key)
    assert result.returncode == 1, result.stderr
    count = len(json.loads(result.stdout)["results"])
    assert f"recorded {count} decision(s)" in result.stderr
    verify = run("audit", "verify", "--db", db, "--public-key", str(tmp_path / "keys" / "audit.pub"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "closed" in verify.stdout  # the check's chain was signed through its last row and closed
    assert run("audit", "verify", "--db", db).returncode == 3  # no public key: not proven
    export = run("audit", "export", "--db", db, "--format", "jsonl", "--out", str(tmp_path / "rows.jsonl"))
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == count
    assert {r["source"] for r in rows} == {"cli"}


def test_check_audit_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/empty.db"
    result = run("check", str(EXAMPLES), "--cluster", "eu-1", "--audit", "--db", db)
    assert result.returncode == 2
    assert "db upgrade" in result.stderr


def test_html_report_over_the_examples_decisions(tmp_path: Path) -> None:
    """The DPO's report over what `check --audit` recorded for the example: totals, denials with the
    article, regions and remedy, the policy revision and the verified chain, and a PDF with the totals."""
    db = f"sqlite:///{tmp_path}/audit.db"
    assert run("db", "upgrade", "--db", db).returncode == 0
    checked = run("check", str(EXAMPLES), "--cluster", "eu-1", "--audit", "--db", db, "--format", "json")
    doc = json.loads(checked.stdout)
    denied = [r for r in doc["results"] if r["decision"] == "deny"]
    html = tmp_path / "report.html"
    export = run("audit", "export", "--db", db, "--format", "html", "--out", str(html))
    assert export.returncode == 0, export.stderr
    text = html.read_text()
    assert f"Total decisions: <strong>{len(doc['results'])}</strong>" in text
    assert "PIPL Art. 38-39" in text and "eu-1 → cn-1" in text  # a denial's article and its judged route
    assert "remedy" in text.lower() or "keep the route" in text
    assert doc["policy_revision"][:19] in text
    assert "<svg" in text
    assert "keep the route to eu-1, eu-2, partner-1" in text and "permitted: [" not in text  # the remedy
    assert "verif" in text.lower()
    assert denied and all(r["resource"]["name"] in text for r in denied)  # the appendix names each object
    pdf = tmp_path / "report.pdf"
    assert run("audit", "export", "--db", db, "--format", "pdf", "--out", str(pdf)).returncode == 0
    pages = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert str(len(doc["results"])) in pages and "GDPR" in pages
