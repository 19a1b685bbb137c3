"""The row format (`rowformat`): the canonical encoding the hash chain covers, its stored text for any
value a request can carry, the COPY layout verify rebuilds documents from, and format-1 rows (written
before migration 0002) that must still verify beside format-2 ones."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from audit.decisions import T0, admission_record, gdpr_denial
from policyengine.audit import AuditRecord, AuditWriter, chainscan
from policyengine.audit.chain import copy_job, copy_templates
from policyengine.audit.migrate import upgrade
from policyengine.audit.record import content_of
from policyengine.audit.rowformat import (
    CONTENT_COLUMNS,
    FORMAT,
    GENESIS,
    JSON_COLUMNS,
    ROW_COLUMNS,
    TEXT_COLUMNS,
    canonical,
    format_time,
    fresh_document,
    int_value,
    json_text,
    records_json,
    row_hash,
    store_texts,
    stored_text,
    strings_json,
    text_value,
)
from policyengine.audit.schema import audit_decision
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify

AWKWARD = ['quote " and \\ backslash', "tab\tnew\nline\r", "ctrl \x01\x1f", "ünïcödé 中文 \u2028 emoji 🎉", ""]
# What COPY text output writes differently from JSON, or could be mistaken for its escapes.
COPY_AWKWARD = ["vertical\x0btab, \b\f", "literal \\v, \\N and \\\\", "\\N", "100% %s", '\\"', "\x7f\x1b[0m"]
# What PostgreSQL text (and UTF-8) cannot hold: stored escaped.
UNSTORABLE = ["lone \ud800 surrogate", "nul \x00 byte", "\udfff\x00\ud83d", "shop/check\x00out"]


def _reference(row: dict[str, Any], fmt: int = FORMAT) -> bytes:
    """The definition, spelled out with json.dumps: every hashed field, sorted keys, compact, UTF-8."""
    doc = {name: row[name] for name in CONTENT_COLUMNS}
    doc["time"] = format_time(row["time"])
    doc["dry_run"] = bool(row["dry_run"])
    doc["latency_us"] = int(row["latency_us"])
    doc.update(chain_id=row["chain_id"], seq=int(row["seq"]), prev_hash=row["prev_hash"])
    if fmt >= 2:
        doc["format"] = fmt
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _awkward_records(texts: list[str]) -> list[AuditRecord]:
    records = []
    for n, value in enumerate(texts):
        base = admission_record(gdpr_denial(n), n)
        violation = replace(base.decision.violations[0], message=value)
        decision = replace(base.decision, violations=(violation,), warnings=(value,))
        records.append(
            AuditRecord(
                source="admission",
                decision=decision,
                cluster="eu-1",
                operation="CREATE",
                kind="HTTPRoute",
                namespace=value,
                name=f"route-{n}",
                user=value,
                dry_run=bool(n % 2),
                input=None if n % 2 else {"b": [1, 2.5, None, True], "a": value},
                time=T0 + timedelta(microseconds=n * 123457),
            )
        )
    return records


def _chained(record: AuditRecord, seq: int = 1) -> dict[str, Any]:
    row = content_of(record)
    row.update(chain_id="chain-\u00e9", seq=seq, prev_hash=GENESIS)
    return row


def test_the_encodings_equal_the_json_definition() -> None:
    """The template (any row) and orjson (the writer's new rows) write the definition's bytes."""
    for n, record in enumerate(_awkward_records(AWKWARD + COPY_AWKWARD + UNSTORABLE)):
        row = _chained(record, n + 1)
        assert canonical(row) == _reference(row), record.user
        assert fresh_document(row) == _reference(row)
        assert row_hash(row) == hashlib.sha256(_reference(row)).hexdigest()
    row = _chained(_awkward_records(AWKWARD)[1])
    whole_second = {**row, "time": T0}  # orjson would drop a zero fraction: the general path writes it
    assert fresh_document(whole_second) == _reference(whole_second)
    as_numbers = {**row, "latency_us": float(row["latency_us"]), "dry_run": int(row["dry_run"])}
    assert canonical(as_numbers) == _reference(row)  # numbers as a database may hand them back


def test_text_the_database_cannot_hold_is_stored_escaped() -> None:
    for value in UNSTORABLE:
        stored = stored_text(value)
        stored.encode("utf-8")  # no surrogate left
        assert "\x00" not in stored
        assert json.loads('"' + stored + '"') == value  # the escape is JSON's
    assert stored_text("plain ünïcödé") == "plain ünïcödé"
    assert json_text({"k\ud800": ["\x00"]}) == '{"k\\ud800":["\\u0000"]}'


class Label(str):
    """A `str` subclass whose `str()` is not its text (as a str-mixed Enum's is not)."""

    def __str__(self) -> str:
        return "Label(" + super().__str__() + ")"


def test_the_fast_paths_store_what_the_definitions_store() -> None:
    """`store_texts` checks a row's text columns in one pass, `records_json` and `strings_json` go through
    orjson only for strings, `int_value` returns small integers as they are: each gives what the general
    path gives, for the values the fast path takes and for those it must not."""
    plain = {name: f"{name}-value" for name in TEXT_COLUMNS} | {"latency_us": 5}
    assert store_texts(dict(plain)) == plain
    for odd in ("nul \x00", "lone \ud800", "ünï", Label("sub"), 7, None, 2.5):
        for column in ("user", "decision_id"):
            row = {**plain, column: odd}
            expected = {name: text_value(v) if name in TEXT_COLUMNS else v for name, v in row.items()}
            assert store_texts(dict(row)) == expected
    assert store_texts({**plain, "name": Label("sub")})["name"] == "Label(sub)"
    for items in (
        [{"a": "1", "b": "2"}, {"c": "\x00"}],
        [{"a": 1.5e16, "b": "x"}],  # orjson writes 1.5e16, json.dumps 1.5e+16: the general path
        [{"a": 10**30}],
        [{1: "x"}],
        [{"a": "\ud800"}],
        [{"a": Label("sub")}],
        [],
    ):
        assert records_json(items) == json_text(items), items
    for strings in (["a", "b"], ["\ud800"], [1.5e16], [Label("sub")], []):
        assert strings_json(strings) == json_text(strings), strings
    for number, expected in (
        (0, 0), (-5, -5), (2**63 - 1, 2**63 - 1), (2**63, 2**63 - 1), (-(2**63), -(2**63 - 1)),
        (2.6, 3), (2.5, 2), (-7.5, -8), (1e19, 2**63 - 1), (float("nan"), 0), (float("-inf"), -(2**63 - 1)),
        ("7", 7), (True, 1), (None, 0),
    ):  # fmt: skip
        assert int_value(number) == expected, number


def test_json_text_takes_any_depth_and_any_integer() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert json_text(deep) == "[" * 5001 + "]" * 5001
    huge = 10**5000 + 7
    assert json_text([huge]) == "[" + "1" + "0" * 4999 + "7]"
    assert json_text({2: "a", "b": 1, None: 0}) == '{"2":"a","b":1,"null":0}'  # mixed keys: by their text
    assert json_text({"x": float("nan")}) == '{"x":NaN}'


def test_orjson_escapes_every_code_point_as_json_dumps_does() -> None:
    """The premise of the fast encodings: orjson and json.dumps(ensure_ascii=False) write every string
    alike, one code point at a time (surrogates, which neither can write as UTF-8, excepted)."""
    differing = [
        hex(cp)
        for cp in (*range(0xD800), *range(0xE000, 0x110000))
        if orjson.dumps(chr(cp)) != json.dumps(chr(cp), ensure_ascii=False).encode()
    ]
    assert not differing, differing[:20]


def test_parsed_json_columns_hash_like_stored_text() -> None:
    """A row read back from a JSONL export (structured columns parsed) still hashes to its chain hash."""
    row = _chained(_awkward_records(UNSTORABLE)[0])
    parsed = {**row, **{name: json.loads(row[name]) for name in JSON_COLUMNS if row[name] is not None}}
    assert row_hash(parsed) == row_hash(row)


def test_documents_rebuilt_from_copy_output_are_canonical(pg_empty_url: str, tmp_path: Path) -> None:
    """`chainscan.scan` hashes every row, awkward characters included (controls, vertical tab, text that
    looks like COPY or JSON escapes, `%`, escaped NUL and surrogates), to the hash Python computed when it
    was written; the chain id, which the templates carry, is awkward too."""
    upgrade(pg_empty_url)
    chain_id = 'chain "%s" \\ é'
    records = _awkward_records(AWKWARD + COPY_AWKWARD + UNSTORABLE)
    with AuditWriter.open(pg_empty_url, chain_id=chain_id, new_chain=True, spool_dir=tmp_path / "spool") as writer:
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
    for value in AWKWARD + COPY_AWKWARD:
        copy_text = value.replace("\\", "\\\\")  # COPY's escapes, as PostgreSQL writes them
        for raw, escaped in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"), ("\f", "\\f"), ("\v", "\\v")):
            copy_text = copy_text.replace(raw, escaped)
        field = copy_text.encode().replace(b'"', b'\\"')
        assert chainscan.json_escapes(field) == json.dumps(value, ensure_ascii=False)[1:-1].encode()
        assert chainscan.copy_unescape(copy_text.encode()) == value


def test_format_1_rows_still_verify_beside_format_2(empty_url: str, tmp_path: Path) -> None:
    """A database written before 0002 (format-1 rows, hashed without a `format` key) is upgraded in
    place: its rows read format 1 and verify, new rows are format 2, and an edit of either is caught."""
    upgrade(empty_url, "0001_audit_trail")
    engine = make_engine(empty_url)
    prev = GENESIS
    old_rows = []
    for seq, record in enumerate(_awkward_records(AWKWARD + COPY_AWKWARD), start=1):
        row = content_of(record)
        del row["format"]
        row.update(chain_id="old-chain", seq=seq, prev_hash=prev)
        row["hash"] = prev = hashlib.sha256(_reference(row, fmt=1)).hexdigest()  # what the old writer computed
        old_rows.append(row)
    with engine.begin() as connection:
        columns = [c for c in ROW_COLUMNS if c != "format"]
        names = ", ".join(f'"{c}"' for c in columns)
        connection.execute(
            text(f"INSERT INTO audit_decision ({names}) VALUES ({', '.join(':' + c for c in columns)})"), old_rows
        )
    engine.dispose()
    upgrade(empty_url)
    with AuditWriter.open(empty_url, spool_dir=tmp_path) as writer:
        for record in _awkward_records(UNSTORABLE):
            writer.record(record)
    engine = make_engine(empty_url)
    try:
        report = verify(engine)
        assert report.ok, report.findings
        assert report.rows == len(old_rows) + len(UNSTORABLE)
        with engine.begin() as connection:
            found = connection.execute(text("SELECT chain_id, max(format) FROM audit_decision GROUP BY chain_id"))
            formats = {str(chain): int(fmt) for chain, fmt in found.all()}
            assert formats["old-chain"] == 1 and set(formats.values()) == {1, 2}
            t = audit_decision
            connection.execute(update(t).where(t.c.chain_id == "old-chain", t.c.seq == 3).values(user="mallory"))
        (finding,) = verify(engine).findings
        assert (finding.chain_id, finding.seq, finding.kind) == ("old-chain", 3, "edited")
    finally:
        engine.dispose()


# -- any value a request can carry -----------------------------------------------------------------------------

ANY_CHARACTER = st.characters(codec=None, categories=None)  # surrogates and NUL included
TEXTS = st.text(ANY_CHARACTER, max_size=40)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64, max_value=10**400)
    | st.floats(allow_nan=False)
    | TEXTS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXTS, children, max_size=4),
    max_leaves=25,
)


def _nested(depth: int) -> Any:
    value: Any = {"leaf": "\ud800"}
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


DEEP = _nested(1500)


@st.composite
def records(draw: st.DrawFn) -> AuditRecord:
    base = gdpr_denial(draw(st.integers(0, 10**6)))
    value = draw(JSON_VALUES | st.just(DEEP) | st.just(10**5000))
    words = draw(st.lists(TEXTS, min_size=4, max_size=4))
    violation = replace(base.violations[0], message=words[0], remedy=words[1])
    decision = replace(
        base,
        violations=(violation,),
        warnings=tuple(words),
        permitted_clusters=(words[2],),
        patch=({"op": "add", "path": "/metadata/labels", "value": value},),
    )
    return AuditRecord(
        source="admission",
        decision=decision,
        cluster="eu-1",
        operation=words[3],
        kind="Service",
        namespace=words[0],
        name=words[1],
        service=words[2],
        destination_cluster=words[3],
        user=draw(TEXTS),
        input=value,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(records(), min_size=1, max_size=6))
def test_any_value_encodes_stores_reads_back_and_verifies(
    backend: str, batch: list[AuditRecord], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every record holding arbitrary JSON (lone surrogates, NUL, huge integers, deep nesting) in its
    text and JSON columns is recorded (through the writer, into SQLite and PostgreSQL), reads back as the
    text `rowformat` stores, its JSON columns parse back to the very value, and verify passes."""
    url = str(request.getfixturevalue("sqlite_empty_url" if backend == "sqlite" else "pg_empty_url"))
    upgrade(url)  # the same database for every example (the fixture's): each writes a chain of its own
    with AuditWriter.open(url, spool_dir=tmp_path / "spool") as writer:
        for record in batch:
            writer.record(record)
        assert writer.spool_size() == 0  # every row went to the database, none was refused
        chain_id = writer.chain_id
    engine = make_engine(url)
    try:
        report = verify(engine)
        assert report.ok, report.findings
        assert [h.rows for h in report.chains if h.chain_id == chain_id] == [len(batch)]
        t = audit_decision
        with engine.connect() as connection:
            stored = connection.execute(
                select(t.c.user, t.c.input, t.c.patch).where(t.c.chain_id == chain_id).order_by(t.c.seq)
            ).all()
    finally:
        engine.dispose()
    for record, (user, input_text, patch) in zip(batch, stored, strict=True):
        assert user == stored_text(record.user)
        if record.input is None:
            assert input_text is None
            continue
        assert input_text == json_text(record.input)
        if record.input is not DEEP:  # (too deep for Python's own parser: the text is compared above)
            assert _parsed(input_text) == _as_json(record.input)
            assert _parsed(patch)[0]["value"] == _as_json(record.input)


def _parsed(stored: str) -> Any:
    """Stored JSON text parsed (integers kept as their digits: some are longer than Python parses)."""
    return json.loads(stored, parse_int=str)


def _as_json(value: Any) -> Any:
    """The JSON value `value` stands for: dict keys as strings, integers as their digits."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    return json_text(value)
