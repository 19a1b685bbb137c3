"""The canonical encoding the hash chain covers: sorted-key compact JSON, the same bytes from the fast
template in Python and from SQL in PostgreSQL (which `verify` uses to walk chains at database speed)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from audit.decisions import T0, admission_record, gdpr_denial
from policyengine.audit import AuditRecord, AuditWriter
from policyengine.audit.chain import GENESIS, canonical, format_time, row_hash, sql_row_hash
from policyengine.audit.migrate import upgrade
from policyengine.audit.record import content_of
from policyengine.audit.schema import CONTENT_COLUMNS, JSON_COLUMNS, audit_decision
from policyengine.audit.store import make_engine

AWKWARD = ['quote " and \\ backslash', "tab\tnew\nline\r", "ctrl \x01\x1f", "ünïcödé 中文 \u2028 emoji 🎉", ""]


def _reference(row: dict[str, Any]) -> bytes:
    """The definition, spelled out with json.dumps: every hashed field, sorted keys, compact, UTF-8."""
    doc = {name: row[name] for name in CONTENT_COLUMNS}
    doc["time"] = format_time(row["time"])
    doc["dry_run"] = bool(row["dry_run"])
    doc["latency_us"] = int(row["latency_us"])
    doc.update(chain_id=row["chain_id"], seq=int(row["seq"]), prev_hash=row["prev_hash"])
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _awkward_records() -> list[AuditRecord]:
    records = []
    for n, text in enumerate(AWKWARD):
        base = admission_record(gdpr_denial(n), n)
        records.append(
            AuditRecord(
                source="admission",
                decision=base.decision,
                cluster="eu-1",
                operation="CREATE",
                kind="HTTPRoute",
                namespace=text,
                name=f"route-{n}",
                user=text,
                dry_run=bool(n % 2),
                input=None if n % 2 else {"b": [1, 2.5, None, True], "a": text},
                time=T0 + timedelta(microseconds=n * 123457),
            )
        )
    return records


def test_template_encoding_equals_the_json_definition() -> None:
    for n, record in enumerate(_awkward_records()):
        row = content_of(record)
        row.update(chain_id="chain-\u00e9", seq=n + 1, prev_hash=GENESIS)
        assert canonical(row) == _reference(row)
        assert all(isinstance(row[name], str) or row[name] is None for name in JSON_COLUMNS)


def test_parsed_json_columns_hash_like_stored_text() -> None:
    """A row read back from a JSONL export (structured columns parsed) still hashes to its chain hash."""
    row = content_of(_awkward_records()[0])
    row.update(chain_id="c", seq=1, prev_hash=GENESIS)
    parsed = {**row, **{name: json.loads(row[name]) for name in JSON_COLUMNS if row[name] is not None}}
    assert row_hash(parsed) == row_hash(row)


def test_postgresql_computes_the_same_hashes(pg_empty_url: str, tmp_path: Path) -> None:
    upgrade(pg_empty_url)
    with AuditWriter.open(pg_empty_url, chain_id="awkward", spool_dir=tmp_path / "spool") as writer:
        for record in _awkward_records():
            writer.record(record)
    engine = make_engine(pg_empty_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(audit_decision.c.seq, audit_decision.c.hash, sql_row_hash(audit_decision)).order_by(
                    audit_decision.c.seq
                )
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == len(AWKWARD)
    for seq, stored, recomputed in rows:
        assert recomputed == stored, f"seq {seq}: PostgreSQL and Python disagree on the canonical encoding"
