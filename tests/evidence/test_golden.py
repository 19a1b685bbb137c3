"""The evidence over the golden trail (`golden.py`: 20,000 decisions of the real rules, every regime and
outcome) on SQLite and PostgreSQL: the report's summary against SQL counts, the transfer record against
every (service, destination) the rows name and the bases `policyengine explain` gives, the PDF's page
cap, and the signed manifest (verifies; a modified file or manifest fails)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select
from typer.testing import CliRunner

from evidence.conftest import Golden
from policyengine.audit.schema import audit_decision
from policyengine.audit.store import make_engine
from policyengine.cli.main import app
from policyengine.policy import load_policy
from policyengine.resources import default_policies

pytestmark = pytest.mark.xdist_group("evidence-golden")
runner = CliRunner()
T = audit_decision
PAGE_CAP = 25


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def cli_stdout(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code in (0, 1), result.output
    return result.stdout


def sql_counts(url: str) -> tuple[int, dict[str, int], dict[str, int]]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            total = int(c.execute(select(func.count()).select_from(T)).scalar_one())
            grouped = c.execute(select(T.c.decision, func.count()).group_by(T.c.decision))
            by_decision = {str(d): int(n) for d, n in grouped}
            by_regime = {}
            for regime in ("GDPR", "PIPL", "CCPA"):
                like = T.c.regimes.like(f"%{regime}%")
                by_regime[regime] = int(c.execute(select(func.count()).where(like)).scalar_one())
    finally:
        engine.dispose()
    return total, by_decision, by_regime


def routes_seen(url: str) -> set[tuple[str, str]]:
    """(service, destination cluster) of every row toward a regulated or unregulated service's cluster."""
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(
                select(T.c.service, T.c.destination_cluster, T.c.decision, T.c.violations).distinct()
            ).all()
    finally:
        engine.dispose()
    seen: set[tuple[str, str]] = set()
    for service, destination, decision, violations in rows:
        if "/" not in service:
            continue
        asked = {v.get("destination") for v in json.loads(violations)} - {None, ""} if decision == "rewrite" else set()
        for cluster in asked or set(filter(None, destination.split(","))):
            seen.add((service, cluster))
    return seen


def test_summary_counts_match_sql(golden: Golden, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, output = cli("audit", "export", "-o", "html", "--out", str(out), "--db", golden.url,
                       "--public-key", str(golden.public_key))  # fmt: skip
    assert code == 0, output
    html = out.read_text()
    total, by_decision, by_regime = sql_counts(golden.url)
    assert total == golden.rows
    assert f"Total decisions: <strong>{total}</strong>" in html
    for decision in ("allow", "deny", "rewrite"):
        assert by_decision[decision] > 0  # every outcome is in the golden trail
        assert f'<span id="count-{decision}">{by_decision[decision]}</span>' in html
    table = html[html.index('id="by-regime"') : html.index("</table>", html.index('id="by-regime"'))]
    for regime, n in by_regime.items():
        assert n > 0
        assert re.search(rf"<td>{regime}</td><td class=\"n\">{n}</td>", table), (regime, n)
    assert "every chain verifies" in html and "signed registry checked" in html
    assert "seq " + str(golden.rows) + ", closed" in html  # the signed head


def test_transfer_record_lists_every_service_country_and_basis(golden: Golden, tmp_path: Path) -> None:
    out = tmp_path / "transfers.json"
    code, output = cli("audit", "transfers", "-o", "json", "--out", str(out), "--db", golden.url,
                       "--as-of", "2026-11-15", "--expiring-within", "90")  # fmt: skip
    assert code == 0, output
    doc = json.loads(out.read_text())
    listed = {(t["service"], t["destination_cluster"]): t for t in doc["transfers"]}
    policy = load_policy(default_policies())
    expected = routes_seen(golden.url)
    assert expected and {k for k in listed} == expected
    for (_service, cluster), entry in listed.items():
        info = policy.cluster_info(cluster)
        assert entry["destination_country"] == (info.jurisdiction if info else "unknown")
    # the bases, against `policyengine explain` for the same route on a day of the period
    checked = 0
    for (service, cluster), entry in sorted(listed.items()):
        if not entry["regime"]:
            continue
        source = entry["sources"].split(",")[0]
        text = cli_stdout("explain", "--service", service, "--from", source, "--to", cluster, "--time",
                          "2026-10-30T12:00:00Z", "-o", "json")  # fmt: skip
        steps = json.loads(text)["steps"]
        check = next(c for c in steps["checks"] if c["cluster"] == cluster and c["regime"] == entry["regime"])
        valid = [m["id"] for m in check["mechanisms"] if m["valid"]]
        if check["facts"].get("home"):
            assert entry["basis"] == "home", entry
        elif valid and entry["basis"] == "mechanism":
            assert entry["mechanism_id"] == ",".join(valid)
        elif not check["permitted"]:
            assert entry["basis"] == "none", entry
        checked += 1
    assert checked >= 10
    kinds = {t["basis"] for t in doc["transfers"]}
    assert {"home", "mechanism", "adequacy", "none", "recipient", "not-regulated"} <= kinds
    # CCPA third-party contract for billing -> ads-1 expires 2027-01-31: within 90 days of 2026-11-15
    assert [m["id"] for m in doc["expiring"]] == ["ccpa-tp-billing-adnet"]
    # the SCC for checkout -> us-1 expired 2026-09-30; the golden traffic (from 2026-10-01) still asks
    expired = {m["id"]: m for m in doc["expired_in_use"]}
    assert set(expired) == {"scc-checkout-us1"} and expired["scc-checkout-us1"]["requests_after_expiry"] > 0


def test_pdf_stays_under_the_page_cap_and_its_manifest_verifies(golden: Golden, tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    code, output = cli("audit", "export", "-o", "pdf", "--out", str(out), "--db", golden.url,
                       "--signing-key", str(golden.private_key))  # fmt: skip
    assert code == 0, output
    pages = len(PdfReader(str(out)).pages)
    print(f"{golden.rows} decisions: {pages} PDF pages")
    assert 3 <= pages < PAGE_CAP
    text = " ".join(PdfReader(str(out)).pages[0].extract_text().split())
    assert "page 1 of" in text and "Transfer record" in text
    code, output = cli("audit", "verify-report", str(out), "--public-key", str(golden.public_key))
    assert code == 0 and "verifies" in output, output
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["rows"] == golden.rows and manifest["chain_heads"][0]["chain_id"] == "golden-1"
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "modified.pdf").write_bytes(bytes(data))
    (tmp_path / "modified.pdf.manifest.json").write_text(
        json.dumps({**manifest, "file": "modified.pdf"}), encoding="utf-8"
    )
    code, output = cli("audit", "verify-report", str(tmp_path / "modified.pdf"))
    assert code == 1 and "the file was modified" in output, output
    # a manifest edited to match the modified file no longer carries a valid signature
    from policyengine.audit.export.manifest import file_sha256

    forged = {**manifest, "file": "modified.pdf", "sha256": file_sha256(tmp_path / "modified.pdf")}
    (tmp_path / "modified.pdf.manifest.json").write_text(json.dumps(forged), encoding="utf-8")
    code, output = cli("audit", "verify-report", str(tmp_path / "modified.pdf"), "--public-key", str(golden.public_key))
    assert code == 1 and "signature does not verify" in output, output
    code, output = cli("audit", "verify-report", str(tmp_path / "missing.pdf"))
    assert code == 2 and "cannot read the manifest" in output


def test_filters_name_the_valid_values(golden_sqlite: Golden, tmp_path: Path) -> None:
    url = golden_sqlite.url
    code, lower = cli("audit", "export", "-o", "csv", "--out", str(tmp_path / "a.csv"), "--db", url, "--regime", "gdpr")
    assert code == 0, lower
    code, upper = cli("audit", "export", "-o", "csv", "--out", str(tmp_path / "b.csv"), "--db", url, "--regime", "GDPR")
    assert code == 0 and lower.split("(")[1] == upper.split("(")[1]  # the same rows
    assert "(0 rows" not in lower
    code, output = cli("audit", "export", "-o", "csv", "--out", str(tmp_path / "c.csv"), "--db", url, "--regime", "FOO")
    assert code == 2 and "--regime 'FOO' is not one of CCPA, GDPR, PIPL" in " ".join(output.split())
    code, output = cli("audit", "transfers", "--out", str(tmp_path / "t.html"), "--db", url, "--cluster", "mars-1")
    assert code == 2 and "--cluster 'mars-1' is not one of" in output and "eu-1" in output
    report = str(tmp_path / "r.html")
    code, output = cli("audit", "export", "-o", "html", "--out", report, "--db", url, "--outcome", "maybe")
    assert code == 2 and "allow, deny, rewrite" in output
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "r.html").exists()
