"""The CLI (`db upgrade`, `audit verify|export|prune`) and the exports' content, on both backends.

The HTML report is opened in headless Chromium (screenshot, no console errors); the PDF is turned to
text with pdftotext.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update
from typer.testing import CliRunner

from audit.decisions import mixed_records
from policyengine.audit import AuditWriter
from policyengine.audit.chain import parse_time, row_hash
from policyengine.audit.migrate import head_revision
from policyengine.audit.schema import audit_decision
from policyengine.audit.store import make_engine
from policyengine.cli.audit import app, db_app

runner = CliRunner()
ROWS = 40  # mixed_records: 10 GDPR denials (eu-1), 10 PIPL rewrites (cn-1, routing), 20 allows


@pytest.fixture
def trail(db_url: str, tmp_path: Path) -> str:
    with AuditWriter.open(db_url, chain_id="replica-1", spool_dir=tmp_path / "spool") as writer:
        for record in mixed_records(ROWS):
            writer.record(record)
    return db_url


def _export(url: str, out: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["export", "--db", url, "--out", str(out), *args])
    return result.exit_code, result.output


def _manifest(out: Path) -> dict[str, object]:
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    return dict(manifest)


def test_db_upgrade_then_verify(empty_url: str) -> None:
    refused = runner.invoke(app, ["verify", "--db", empty_url])
    assert refused.exit_code == 2 and "policyengine db upgrade" in refused.output
    first = runner.invoke(db_app, ["upgrade", "--db", empty_url])
    assert first.exit_code == 0 and f"migrated (empty) -> {head_revision()}" in first.output
    again = runner.invoke(db_app, ["upgrade", "--db", empty_url])
    assert again.exit_code == 0 and f"already at {head_revision()}" in again.output
    unproven = runner.invoke(app, ["verify", "--db", empty_url])  # no --public-key: exit 3
    assert unproven.exit_code == 3 and "hash chains verify: 0 rows in 0 chains" in unproven.output


def test_verify_exit_codes(trail: str) -> None:
    ok = runner.invoke(app, ["verify", "--db", trail])
    assert ok.exit_code == 3, ok.output  # the chains verify; without a public key nothing more is proven
    assert f"hash chains verify: {ROWS} rows in 1 chains" in ok.output
    assert "NOT PROVEN: without the signing key's public key (--public-key) verify cannot detect" in ok.output
    engine = make_engine(trail)
    t = audit_decision
    with engine.begin() as c:
        c.execute(update(t).where(t.c.seq == 9).values(cluster="us-1"))
    bad = runner.invoke(app, ["verify", "--db", trail])
    assert bad.exit_code == 1
    assert "TAMPERED: chain replica-1 seq 9: edited" in bad.output


def test_csv_export(trail: str, tmp_path: Path) -> None:
    out = tmp_path / "audit.csv"
    code, output = _export(trail, out, "--format", "csv")
    assert code == 0, output
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == ROWS
    first = rows[0]
    assert first["time"] == "2025-03-01T12:00:00.000000Z"
    assert (first["decision"], first["regimes"], first["cluster"], first["kind"]) == (
        "deny",
        "GDPR",
        "eu-1",
        "ServiceEntry",
    )
    assert json.loads(first["violations"])[0]["article"] == "GDPR Art. 44-46"
    assert (first["chain_id"], first["seq"]) == ("replica-1", "1")
    assert rows[1]["decision"] == "rewrite" and json.loads(rows[1]["patch"])[0]["value"] == "cn-1"
    assert [r["decision"] for r in rows].count("allow") == 20
    manifest = _manifest(out)
    assert manifest["rows"] == ROWS
    assert manifest["time_range"] == {
        "first": "2025-03-01T12:00:00.000000Z",
        "last": "2025-03-01T16:33:00.000000Z",
    }
    heads = manifest["chain_heads"]
    assert isinstance(heads, list) and heads[0]["chain_id"] == "replica-1" and heads[0]["seq"] == ROWS


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--decision", "deny"], 10),
        (["--regime", "PIPL"], 10),
        (["--regime", "GDPR"], 30),
        (["--cluster", "cn-1"], 10),
        (["--namespace", "shop"], 30),
        (["--since", "2025-03-01T13:00:00Z", "--until", "2025-03-01T14:00:00Z"], 9),
        (["--regime", "GDPR", "--decision", "allow"], 20),
    ],
)
def test_export_filters(trail: str, tmp_path: Path, args: list[str], expected: int) -> None:
    out = tmp_path / "filtered.jsonl"
    code, output = _export(trail, out, "--format", "jsonl", *args)
    assert code == 0, output
    assert len(out.read_text().splitlines()) == expected
    assert _manifest(out)["rows"] == expected


def test_jsonl_rows_still_hash_to_the_chain(trail: str, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    code, output = _export(trail, out, "--format", "jsonl", "--verify")
    assert code == 0, output
    previous = "0" * 64
    for line in out.read_text().splitlines():
        row = json.loads(line)
        row["time"] = parse_time(row["time"])
        assert row["prev_hash"] == previous
        assert row_hash(row) == row["hash"]
        previous = row["hash"]
    assert row["input"]["request"]["object"]["kind"] == "ServiceEntry"
    assert _manifest(out)["chains_verified"] is True


def test_policyreport_export(trail: str, tmp_path: Path) -> None:
    out = tmp_path / "reports.yaml"
    code, output = _export(trail, out, "--format", "policyreport")
    assert code == 0, output
    docs = list(yaml.safe_load_all(out.read_text()))
    by_ns = {d["metadata"].get("namespace"): d for d in docs}
    assert set(by_ns) == {"shop", "payments"}
    shop, payments = by_ns["shop"], by_ns["payments"]
    assert shop["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and shop["kind"] == "PolicyReport"
    assert shop["summary"] == {"pass": 20, "fail": 10, "warn": 0, "error": 0, "skip": 0}
    # the ten routing rows are one route (payments/ledger cn-1 -> sg-1): its latest result is the state
    assert payments["summary"] == {"pass": 0, "fail": 0, "warn": 1, "error": 0, "skip": 0}
    (route,) = payments["results"]
    assert "resources" not in route and route["properties"]["decision_id"].startswith("pipl-37-")
    fail = next(r for r in shop["results"] if r["result"] == "fail")
    assert (fail["policy"], fail["rule"], fail["category"], fail["severity"]) == (
        "policyengine-gdpr",
        "no_transfer_without_mechanism",
        "GDPR",
        "high",
    )
    assert fail["resources"][0] == {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "name": "checkout-0",
        "namespace": "shop",
    }
    assert fail["properties"]["cluster"] == "eu-1" and fail["properties"]["decision_id"].startswith("gdpr-0-")
    assert fail["properties"]["article"] == "GDPR Art. 44-46"
    for args in (["--format", "openreports"], ["--format", "policyreport", "--report-api", "openreports"]):
        code, _ = _export(trail, tmp_path / "open.yaml", *args)
        assert code == 0
        kinds = {(d["apiVersion"], d["kind"]) for d in yaml.safe_load_all((tmp_path / "open.yaml").read_text())}
        assert kinds == {("openreports.io/v1alpha1", "Report")}
    code, output = _export(trail, tmp_path / "bad.yaml", "--format", "policyreport", "--report-api", "kyverno")
    assert code == 2 and "--report-api" in output and "openreports" in output


def test_html_report_renders_in_chromium_without_console_errors(trail: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is required for the report check: run scripts/system-deps.sh")
    out = tmp_path / "report.html"
    code, output = _export(trail, out, "--format", "html")
    assert code == 0, output
    assert "chains verify" in output
    html = out.read_text()
    for text in (
        "Total decisions: <strong>40</strong>",
        "GDPR Art. 44-46",
        "payments/ledger",
        "<svg",
        "replica-1",
    ):
        assert text in html
    assert "<script" not in html and "src=" not in html and "<link" not in html  # self-contained
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            "--enable-logging=stderr",
            "--v=0",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert "net::ERR" not in done.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_pdf_report_has_the_totals(trail: str, tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is required: run scripts/system-deps.sh")
    out = tmp_path / "report.pdf"
    code, output = _export(trail, out, "--format", "pdf")
    assert code == 0, output
    assert out.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())
    assert "Total decisions: 40" in text
    assert "deny: 10" in text and "rewrite: 10" in text and "allow: 20" in text
    assert "GDPR Art. 44-46" in text and "every chain verifies" in text
    assert _manifest(out)["rows"] == ROWS


def test_prune_keeps_the_rest_verifiable(trail: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["prune", "--db", trail, "--before", "2025-03-01T14:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "pruned 18 rows through seq 18" in result.output  # 12:00 + 7 min steps: 18 rows before 14:00
    ok = runner.invoke(app, ["verify", "--db", trail])
    assert ok.exit_code == 3, ok.output
    assert f"hash chains verify: {ROWS - 18} rows" in ok.output and "seq 19..40" in ok.output
    with AuditWriter.open(trail, chain_id="replica-1", spool_dir=tmp_path / "spool") as writer:
        writer.record(mixed_records(1, start=datetime.fromisoformat("2025-03-02T00:00:00+00:00"))[0])
    assert runner.invoke(app, ["verify", "--db", trail]).exit_code == 3
    engine = make_engine(trail)
    t = audit_decision
    with engine.begin() as c:
        c.execute(update(t).where(t.c.seq == 19).values(prev_hash="f" * 64))
    assert runner.invoke(app, ["verify", "--db", trail]).exit_code == 1


def test_prune_needs_a_date(trail: str) -> None:
    result = runner.invoke(app, ["prune", "--db", trail])
    assert result.exit_code == 2 and "--before DATE or --retention-days N" in result.output


def test_bad_filter_is_a_clear_error(trail: str, tmp_path: Path) -> None:
    code, output = _export(trail, tmp_path / "x.csv", "--format", "csv", "--since", "last tuesday")
    assert code == 2 and "--since 'last tuesday' is not a date" in output
    code, output = _export(trail, tmp_path / "x.csv", "--format", "xml")
    assert code == 2 and "--format 'xml' is not one of" in output
