"""The canonical encoding the hash chain covers: sorted-key compact JSON, the same bytes from the
template in Python, from orjson for the writer's new rows, and rebuilt from PostgreSQL's COPY output
(which `verify` streams and hashes)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import select

from audit.decisions import T0, admission_record, gdpr_denial
from policyengine.audit import AuditRecord, AuditWriter, chainscan
from policyengine.audit.chain import (
    GENESIS,
    _canonical_fresh,
    canonical,
    copy_job,
    copy_templates,
    format_time,
    new_row_hash,
    row_hash,
)
from policyengine.audit.migrate import upgrade
from policyengine.audit.record import canonical_json, content_of
from policyengine.audit.schema import CONTENT_COLUMNS, JSON_COLUMNS, audit_decision
from policyengine.audit.store import make_engine

AWKWARD = ['quote " and \\ backslash', "tab\tnew\nline\r", "ctrl \x01\x1f", "ünïcödé 中文 \u2028 emoji 🎉", ""]
# What COPY text output writes differently from JSON, or could be mistaken for its escapes.
COPY_AWKWARD = ["vertical\x0btab, \b\f", "literal \\v, \\N and \\\\", "\\N", "100% %s", '\\"', "\x7f\x1b[0m"]


def _reference(row: dict[str, Any]) -> bytes:
    """The definition, spelled out with json.dumps: every hashed field, sorted keys, compact, UTF-8."""
    doc = {name: row[name] for name in CONTENT_COLUMNS}
    doc["time"] = format_time(row["time"])
    doc["dry_run"] = bool(row["dry_run"])
    doc["latency_us"] = int(row["latency_us"])
    doc.update(chain_id=row["chain_id"], seq=int(row["seq"]), prev_hash=row["prev_hash"])
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _awkward_records(texts: list[str] = AWKWARD) -> list[AuditRecord]:
    records = []
    for n, text in enumerate(texts):
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


def test_the_writers_fast_encoding_equals_the_definition() -> None:
    """The writer hashes new rows through orjson; its bytes must be the definition's for every row shape
    it sees, and any other shape must fall back to the general encoding."""
    for n, record in enumerate(_awkward_records(AWKWARD + COPY_AWKWARD)):
        row = content_of(record)
        row.update(chain_id="chain-\u00e9", seq=n + 1, prev_hash=GENESIS)
        assert _canonical_fresh(row) == _reference(row), record.user
        assert row_hash(row) == hashlib.sha256(_reference(row)).hexdigest()
        assert new_row_hash(row) == row_hash(row)  # the writer's shortcut for rows it just built
        assert set(row) == set(CONTENT_COLUMNS) | {"chain_id", "seq", "prev_hash"}
    row = content_of(_awkward_records()[1])
    row.update(chain_id="c", seq=1, prev_hash=GENESIS)
    whole_second = {**row, "time": T0}  # orjson would drop a zero fraction: the general path writes it
    assert _canonical_fresh(whole_second) == _reference(whole_second)
    with_hash = {**row, "hash": "f" * 64}  # a key outside the document: not written into it
    assert _canonical_fresh(with_hash) == _reference(row)
    offset = {**row, "time": T0.astimezone(timezone(timedelta(hours=2))) + timedelta(microseconds=7)}
    assert _canonical_fresh(offset) == _reference(offset)  # written as UTC either way
    assert _canonical_fresh({**row, "latency_us": 12.0}) is None  # a float: the general path's integer
    assert _canonical_fresh({**row, "dry_run": 1}) is None  # SQLite's integer boolean
    assert _canonical_fresh({**row, "violations": []}) is None  # a parsed JSON column
    assert _canonical_fresh({**row, "user": "lone \ud800"}) is None  # orjson refuses it; so does canonical


def test_structured_columns_are_the_canonical_json_text() -> None:
    """content_of writes string lists and violations through orjson: the same text as canonical_json."""
    for text in AWKWARD + COPY_AWKWARD:
        base = gdpr_denial(1)
        violation = replace(base.violations[0], message=text, remedy=text + "!")
        decision = replace(base, violations=(violation,), warnings=(text, "w"), permitted_clusters=(text,))
        row = content_of(admission_record(decision))
        assert row["violations"] == canonical_json([violation.to_dict()])
        assert row["warnings"] == canonical_json([text, "w"])
        assert row["permitted_clusters"] == canonical_json([text])
    empty = content_of(admission_record(replace(gdpr_denial(2), violations=(), warnings=())))
    assert (empty["violations"], empty["warnings"]) == ("[]", "[]")


def test_orjson_escapes_every_code_point_as_json_dumps_does() -> None:
    """The premise of the fast encoding: orjson and json.dumps(ensure_ascii=False) write every string
    alike, one code point at a time (surrogates, which neither can write as UTF-8, excepted)."""
    differing = [
        hex(cp)
        for cp in (*range(0xD800), *range(0xE000, 0x110000))
        if orjson.dumps(chr(cp)) != json.dumps(chr(cp), ensure_ascii=False).encode()
    ]
    assert not differing, differing[:20]


def test_parsed_json_columns_hash_like_stored_text() -> None:
    """A row read back from a JSONL export (structured columns parsed) still hashes to its chain hash."""
    row = content_of(_awkward_records()[0])
    row.update(chain_id="c", seq=1, prev_hash=GENESIS)
    parsed = {**row, **{name: json.loads(row[name]) for name in JSON_COLUMNS if row[name] is not None}}
    assert row_hash(parsed) == row_hash(row)


def test_documents_rebuilt_from_copy_output_are_canonical(pg_empty_url: str, tmp_path: Path) -> None:
    """`chainscan.scan` hashes every row, awkward characters included (controls, vertical tab, text that
    looks like COPY or JSON escapes, `%`), to the hash Python computed when it was written; the chain
    id, which the templates carry, is awkward too."""
    upgrade(pg_empty_url)
    chain_id = 'chain "%s" \\ é'
    records = _awkward_records(AWKWARD + COPY_AWKWARD)
    with AuditWriter.open(pg_empty_url, chain_id=chain_id, spool_dir=tmp_path / "spool") as writer:
        for record in records:
            writer.record(record)
    engine = make_engine(pg_empty_url)
    try:
        with engine.connect() as connection:
            last = connection.execute(select(audit_decision.c.hash).order_by(audit_decision.c.seq.desc())).scalar()
            driver = connection.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            job = copy_job(audit_decision.name)
            result = chainscan.scan(driver, job, copy_templates(chain_id), chain_id, 1, len(records))
    finally:
        engine.dispose()
    assert result == {"rows": len(records), "first": (1, GENESIS), "last": (len(records), last), "break_at": None}


def test_json_escapes_turns_copy_text_into_json() -> None:
    for text in AWKWARD + COPY_AWKWARD:
        copy_text = text.replace("\\", "\\\\")  # COPY's escapes, as PostgreSQL writes them
        for raw, escaped in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"), ("\f", "\\f"), ("\v", "\\v")):
            copy_text = copy_text.replace(raw, escaped)
        field = copy_text.encode().replace(b'"', b'\\"')
        assert chainscan.json_escapes(field) == json.dumps(text, ensure_ascii=False)[1:-1].encode()
        assert chainscan.copy_unescape(copy_text.encode()) == text
