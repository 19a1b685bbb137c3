"""`AuditWriter.durable_head()`: the newest row the writer itself put in the database, on the thread
path, on the event loop path, and only once spooled rows were shipped (what the head signer signs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from audit.decisions import admission_record, gdpr_denial, mixed_records
from audit.own_postgres import OwnPostgres
from policyengine.audit import AuditWriter
from policyengine.audit.schema import audit_decision
from policyengine.audit.store import make_engine

T = audit_decision


def _stored_head(url: str, chain_id: str) -> tuple[int, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(T.c.seq, T.c.hash).where(T.c.chain_id == chain_id).order_by(T.c.seq.desc()).limit(1)
            ).one()
    finally:
        engine.dispose()
    return int(row.seq), str(row.hash)


def test_durable_head_follows_the_rows_written(db_url: str, tmp_path: Path) -> None:
    with AuditWriter.open(db_url, chain_id="durable", spool_dir=tmp_path) as writer:
        assert writer.durable_head() is None
        for record in mixed_records(5):
            writer.record(record)
        head = writer.durable_head()
    assert head is not None and head[0] == 5
    assert head == _stored_head(db_url, "durable")


def test_durable_head_on_the_event_loop(pg_url: str, tmp_path: Path) -> None:
    async def run() -> tuple[int, str] | None:
        writer = AuditWriter.open(pg_url, chain_id="loop", spool_dir=tmp_path)
        try:
            assert await writer.attach_event_loop()
            await asyncio.gather(*(writer.record_async(r) for r in mixed_records(40)))
            head = writer.durable_head()
            await writer.detach_event_loop()
        finally:
            writer.close()
        return head

    head = asyncio.run(run())
    assert head == _stored_head(pg_url, "loop") and head[0] == 40  # type: ignore[index]


def test_spooled_rows_count_once_shipped(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    writer = AuditWriter.open(own_postgres.url, chain_id="outage", spool_dir=tmp_path)
    try:
        writer.record(admission_record(gdpr_denial()))
        assert writer.durable_head() is not None and writer.durable_head()[0] == 1  # type: ignore[index]
        own_postgres.stop()
        for n in range(1, 4):
            writer.record(admission_record(gdpr_denial(n), n))
        assert writer.spool_size() == 3
        assert writer.durable_head()[0] == 1  # type: ignore[index]  # spooled, not in the database
        own_postgres.start()
        assert writer.flush(timeout=30)
        assert writer.durable_head() == _stored_head(own_postgres.url, "outage")
        assert writer.durable_head()[0] == 4  # type: ignore[index]
    finally:
        writer.close()
