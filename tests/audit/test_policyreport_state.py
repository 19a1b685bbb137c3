"""`audit export --format policyreport` exports state, not history: the latest result per resource and rule.

20,000 decisions over 300 resources (three namespaces) are written through the real AuditWriter into
SQLite, in shuffled order so that the newest decision of a resource is often not the last row written.
The export must give one report per namespace, each under 1 MiB of JSON and valid against the upstream
CRD schema, with exactly one result per resource and rule, each from that resource's newest decision.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import yaml
from reports.schemas import problems
from typer.testing import CliRunner

from audit.decisions import T0, admission_record, allow, gdpr_denial, pipl_rewrite
from policyengine.audit import AuditRecord, AuditWriter
from policyengine.audit.export.policyreport import write_policyreport
from policyengine.audit.migrate import upgrade
from policyengine.audit.query import ExportFilter
from policyengine.audit.store import make_engine
from policyengine.cli.audit import app
from policyengine.reports import DEFAULT_CAP

DECISIONS = 20_000
RESOURCES = 300
NAMESPACES = ("shop", "payments", "logistics")


def records() -> list[AuditRecord]:
    makers = (gdpr_denial, pipl_rewrite, allow)
    out = []
    for n in range(DECISIONS):
        resource = n % RESOURCES
        decision = makers[(n * 7 + n // RESOURCES) % 3](n)
        record = admission_record(decision, resource, T0 + timedelta(seconds=n))
        out.append(replace(record, namespace=NAMESPACES[resource % 3], input=None))
    random.Random(15).shuffle(out)
    return out


async def record_all(writer: AuditWriter, batch: list[AuditRecord]) -> None:
    """Every record at once, so the writer commits them in batches (one by one takes a minute)."""
    await asyncio.gather(*(writer.record_async(record) for record in batch))


def test_twenty_thousand_decisions_export_the_latest_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    written = records()
    with AuditWriter.open(url, chain_id="replica-1", spool_dir=tmp_path / "spool") as writer:
        asyncio.run(record_all(writer, written))
    newest: dict[tuple[str, str], AuditRecord] = {}
    for record in written:
        key = (record.namespace, record.name)
        assert record.time is not None
        if key not in newest or record.time > (newest[key].time or T0):
            newest[key] = record

    out = tmp_path / "reports.yaml"
    result = CliRunner().invoke(app, ["export", "--db", url, "--out", str(out), "--format", "policyreport"])
    assert result.exit_code == 0, result.output
    assert f"({DECISIONS} rows" in result.output
    reports = list(yaml.safe_load_all(out.read_text()))
    assert sorted(r["metadata"]["namespace"] for r in reports) == sorted(NAMESPACES)
    seen = 0
    for report in reports:
        assert len(json.dumps(report).encode()) < DEFAULT_CAP
        assert problems(report) == []
        assert "policyengine.io/truncated" not in report["metadata"]["labels"]
        keys = [(e["resources"][0]["name"], e["policy"], e["rule"]) for e in report["results"]]
        assert len(keys) == len(set(keys)), "one result per resource and rule"
        assert len({k[0] for k in keys}) == RESOURCES // 3, "every resource, each once"
        counts = Counter(e["result"] for e in report["results"])
        assert report["summary"] == {k: counts.get(k, 0) for k in ("pass", "fail", "warn", "error", "skip")}
        for entry in report["results"]:
            latest = newest[(report["metadata"]["namespace"], entry["resources"][0]["name"])]
            assert entry["properties"]["decision_id"] == latest.decision.decision_id, "the latest one wins"
            assert entry["properties"]["decision"] == latest.decision.outcome.value
        seen += len(keys)
    assert seen == RESOURCES


def test_a_capped_export_says_what_was_cut_and_how_to_get_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    with AuditWriter.open(url, chain_id="replica-1", spool_dir=tmp_path / "spool") as writer:
        for n in range(200):
            decision = gdpr_denial(n) if n % 2 else allow(n)
            writer.record(admission_record(decision, n, T0 + timedelta(seconds=n)))
    flt = ExportFilter(since=T0, cluster="eu-1")
    out = tmp_path / "capped.yaml"
    with out.open("w") as handle:
        span = write_policyreport(make_engine(url), flt, handle, cap_bytes=128 * 1024)
    assert span.rows == 200
    (report,) = yaml.safe_load_all(out.read_text())
    assert len(json.dumps(report).encode()) <= 128 * 1024
    annotations = report["metadata"]["annotations"]
    assert report["metadata"]["labels"]["policyengine.io/truncated"] == "true"
    assert report["summary"]["fail"] == 100 and report["summary"]["pass"] < 100
    assert annotations["policyengine.io/omitted"] == f"pass={100 - report['summary']['pass']}"
    hint = annotations["policyengine.io/complete-results"]
    assert "audit export --format jsonl" in hint and "--namespace shop" in hint and "--cluster eu-1" in hint
    assert "--since 2025-03-01T12:00:00" in hint
