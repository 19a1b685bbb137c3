"""The writer on SQLite and PostgreSQL: rows land chained, durable, masked; concurrency and async."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from pathlib import Path

from sqlalchemy import func, select

from audit.decisions import T0, admission_record, gdpr_denial, mixed_records, pipl_rewrite
from policyengine.audit import AuditRecord, AuditWriter, record_cli_decisions
from policyengine.audit.chain import GENESIS, as_utc, row_hash
from policyengine.audit.record import MASK
from policyengine.audit.schema import JSON_COLUMNS, ROW_COLUMNS, audit_decision
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify


def _rows(url: str) -> list[dict[str, object]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            cols = [audit_decision.c[name] for name in ROW_COLUMNS]
            result = connection.execute(select(*cols).order_by(audit_decision.c.chain_id, audit_decision.c.seq))
            rows = [dict(r) for r in result.mappings()]
    finally:
        engine.dispose()
    for row in rows:  # structured columns are stored as canonical JSON text
        for name in JSON_COLUMNS:
            if row[name] is not None:
                row[name] = json.loads(str(row[name]))
    return rows


def test_rows_are_chained_and_carry_the_decision(db_url: str, tmp_path: Path) -> None:
    records = mixed_records(6)
    with AuditWriter.open(db_url, spool_dir=tmp_path) as writer:
        for record in records:
            writer.record(record)
        chain = writer.chain_id
    rows = _rows(db_url)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {r["chain_id"] for r in rows} == {chain}
    assert rows[0]["prev_hash"] == GENESIS
    for previous, row in itertools.pairwise(rows):
        assert row["prev_hash"] == previous["hash"]
    for row in rows:
        assert row_hash(row) == row["hash"]
    denial = rows[0]
    assert denial["decision"] == "deny" and denial["source"] == "admission"
    assert denial["regimes"] == "GDPR" and denial["cluster"] == "eu-1"
    assert denial["violations"][0]["article"] == "GDPR Art. 44-46"  # type: ignore[index]
    assert as_utc(denial["time"]) == T0  # type: ignore[arg-type]
    rewrite = rows[1]
    assert rewrite["decision"] == "rewrite" and rewrite["source"] == "routing"
    assert rewrite["patch"] == [{"op": "replace", "path": "/spec/targets/0/cluster", "value": "cn-1"}]
    assert rewrite["service"] == "payments/ledger" and rewrite["destination_cluster"] == "sg-1"
    assert verify(make_engine(db_url)).ok


def test_input_is_masked(db_url: str, tmp_path: Path) -> None:
    secret = {
        "request": {
            "userInfo": {"username": "alice", "extra": {"token": ["t0ps3cret"]}},
            "object": {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}},
        }
    }
    record = AuditRecord(source="admission", decision=gdpr_denial(), cluster="eu-1", input=secret)
    with AuditWriter.open(
        db_url, spool_dir=tmp_path, mask_paths=("request.object.data", "request.userInfo.extra")
    ) as w:
        w.record(record)
    (row,) = _rows(db_url)
    stored = row["input"]
    assert stored["request"]["object"]["data"] == MASK  # type: ignore[index]
    assert stored["request"]["userInfo"]["extra"] == MASK  # type: ignore[index]
    assert stored["request"]["userInfo"]["username"] == "alice"  # type: ignore[index]
    assert "t0ps3cret" not in str(row) and "aHVudGVyMg" not in str(row)


def test_reopening_a_chain_continues_it(db_url: str, tmp_path: Path) -> None:
    with AuditWriter.open(db_url, chain_id="replica-a", spool_dir=tmp_path) as writer:
        writer.record(admission_record(gdpr_denial()))
    with AuditWriter.open(db_url, chain_id="replica-a", spool_dir=tmp_path) as writer:
        writer.record(admission_record(pipl_rewrite()))
    rows = _rows(db_url)
    assert [r["seq"] for r in rows] == [1, 2]
    report = verify(make_engine(db_url))
    assert report.ok and report.rows == 2 and len(report.chains) == 1


def test_threads_share_a_writer_with_group_commit(db_url: str, tmp_path: Path) -> None:
    per_thread = 60
    with AuditWriter.open(db_url, spool_dir=tmp_path) as writer:

        def work(t: int) -> None:
            for n in range(per_thread):
                writer.record(admission_record(gdpr_denial(t * 1000 + n), n))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert writer.healthy() and writer.spool_size() == 0
    rows = _rows(db_url)
    assert len(rows) == 8 * per_thread
    assert len({r["decision_id"] for r in rows}) == 8 * per_thread
    assert verify(make_engine(db_url)).ok


def test_record_async(db_url: str, tmp_path: Path) -> None:
    async def main(writer: AuditWriter) -> None:
        await asyncio.gather(*(writer.record_async(admission_record(gdpr_denial(n), n)) for n in range(50)))

    with AuditWriter.open(db_url, spool_dir=tmp_path) as writer:
        asyncio.run(main(writer))
    assert len(_rows(db_url)) == 50
    assert verify(make_engine(db_url)).ok


def test_closed_writer_refuses(db_url: str, tmp_path: Path) -> None:
    writer = AuditWriter.open(db_url, spool_dir=tmp_path)
    writer.close()
    try:
        writer.record(admission_record(gdpr_denial()))
    except Exception as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed writer accepted a record")


def test_record_cli_decisions(db_url: str, tmp_path: Path) -> None:
    manifest = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "checkout", "namespace": "shop"}}
    items = [AuditRecord.for_manifest(gdpr_denial(), manifest, cluster="eu-1"), pipl_rewrite()]
    assert record_cli_decisions(db_url, items, cluster="cn-1", spool_dir=tmp_path) == 2
    rows = _rows(db_url)
    assert [r["source"] for r in rows] == ["cli", "cli"]
    assert rows[0]["kind"] == "Service" and rows[0]["namespace"] == "shop" and rows[0]["cluster"] == "eu-1"
    assert rows[1]["cluster"] == "cn-1"
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(audit_decision)).scalar_one() == 2
