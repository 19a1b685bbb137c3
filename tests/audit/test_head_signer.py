"""The head signer: when it signs (first row at once, every N rows, every T seconds, at close), what it
signs (the writer's durable head, closed at a graceful stop), and that a database outage only delays it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from audit.decisions import admission_record, gdpr_denial, mixed_records
from audit.own_postgres import OwnPostgres
from policyengine.audit import AuditWriter, metrics
from policyengine.audit.chain import GENESIS
from policyengine.audit.head_signer import HeadSigner
from policyengine.audit.registry import read_entries, replay
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey
from policyengine.audit.statements import Statement
from policyengine.audit.store import make_engine


def _statements(url: str) -> list[Statement]:
    engine = make_engine(url)
    try:
        return [Statement.parse(entry.statement) for entry in read_entries(engine)]
    finally:
        engine.dispose()


class _Chain:
    """A stand-in for the writer's three read-only answers, to drive `due` through exact heads."""

    chain_id = "c"

    def __init__(self) -> None:
        self.head: tuple[int, str] | None = None

    def durable_head(self) -> tuple[int, str] | None:
        return self.head

    def spool_size(self) -> int:
        return 0


def test_due_first_head_at_once_then_every_n_rows_or_t_seconds(sqlite_empty_url: str) -> None:
    sealer = Sealer(make_engine(sqlite_empty_url), SigningKey.generate())
    signer = HeadSigner(_Chain(), sealer, every_rows=10, every_seconds=60)
    assert not signer.due(None, 0.0)
    assert signer.due((1, "h1"), 0.0)
    signer._signed, signer._signed_at = (1, "h1"), 100.0
    assert not signer.due((1, "h1"), 1000.0)  # nothing new: never re-signed, however long
    assert not signer.due((10, "h10"), 100.0 + 59)
    assert signer.due((11, "h11"), 100.0)  # 10 rows
    assert signer.due((2, "h2"), 100.0 + 60)  # 60 seconds
    with pytest.raises(ValueError):
        HeadSigner(_Chain(), signer.sealer, every_rows=0)


def test_heads_are_signed_every_n_rows_and_closed_at_close(db_url: str, tmp_path: Path) -> None:
    key = SigningKey.generate()
    writer = AuditWriter.open(db_url, chain_id="replica", spool_dir=tmp_path)
    signer = HeadSigner(writer, Sealer.open(db_url, key), every_rows=4, every_seconds=3600)
    signer.tick()
    for record in mixed_records(10):
        writer.record(record)
        signer.tick()
    writer.close()
    signer.close()
    statements = _statements(db_url)
    assert [(s.kind, s.seq, s.closed) for s in statements] == [
        ("chain", None, None),
        ("head", 1, False),
        ("head", 5, False),
        ("head", 9, False),
        ("head", 10, True),
    ]
    engine = make_engine(db_url)
    registry = replay(read_entries(engine), [key.public])
    engine.dispose()
    assert registry.findings == [] and registry.chains["replica"].closed
    assert all(s.key_id == key.key_id for s in statements)


def test_a_head_is_signed_after_t_seconds_without_n_rows(db_url: str, tmp_path: Path) -> None:
    writer = AuditWriter.open(db_url, chain_id="slow", spool_dir=tmp_path)
    signer = HeadSigner(writer, Sealer.open(db_url, SigningKey.generate()), every_rows=1000, every_seconds=0.2)
    writer.record(admission_record(gdpr_denial()))
    signer.tick()  # the first row: at once
    writer.record(admission_record(gdpr_denial(1), 1))
    signer.tick()
    assert signer.signed is not None and signer.signed[0] == 1  # too soon
    time.sleep(0.25)
    signer.tick()
    assert signer.signed == writer.durable_head() and signer.signed[0] == 2
    writer.close()
    signer.close()


def test_an_empty_new_chain_closes_at_seq_0(db_url: str, tmp_path: Path) -> None:
    writer = AuditWriter.open(db_url, chain_id="idle", spool_dir=tmp_path)
    signer = HeadSigner(writer, Sealer.open(db_url, SigningKey.generate()))
    signer.tick()
    writer.close()
    signer.close()
    assert [(s.kind, s.seq, s.hash, s.closed) for s in _statements(db_url)] == [
        ("chain", None, None, None),
        ("head", 0, GENESIS, True),
    ]


def test_an_outage_delays_the_checkpoint_and_does_not_stop_it(
    own_postgres: OwnPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = AuditWriter.open(own_postgres.url, chain_id="outage", spool_dir=tmp_path)
    signer = HeadSigner(writer, Sealer.open(own_postgres.url, SigningKey.generate(), check_schema=False))
    writer.record(admission_record(gdpr_denial()))
    own_postgres.stop()
    failures = metrics.SIGNING_FAILURES._value.get()
    with caplog.at_level(logging.WARNING, logger="policyengine.audit"):
        signer._safe_tick()
        signer._safe_tick()
    assert metrics.SIGNING_FAILURES._value.get() == failures + 2
    warnings = [r.getMessage() for r in caplog.records if "head signer" in r.getMessage()]
    assert len(warnings) == 1 and "cannot sign chain outage" in warnings[0]  # once per outage
    assert signer.signed is None
    own_postgres.start()
    signer._safe_tick()
    assert signer.signed == writer.durable_head() and signer.signed is not None
    writer.close()
    signer.close()
    assert [(s.kind, s.seq, s.closed) for s in _statements(own_postgres.url)] == [
        ("chain", None, None),
        ("head", 1, False),
        ("head", 1, True),
    ]


class _SlowSealer(Sealer):
    """A real sealer whose head checkpoints take 0.3 s, to cancel the signer's task mid-checkpoint."""

    def head(self, chain_id: str, seq: int, digest: str, *, closed: bool = False):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return super().head(chain_id, seq, digest, closed=closed)


def test_cancelling_the_task_waits_for_the_checkpoint_in_flight(db_url: str, tmp_path: Path) -> None:
    writer = AuditWriter.open(db_url, chain_id="task", spool_dir=tmp_path)
    signer = HeadSigner(writer, _SlowSealer.open(db_url, SigningKey.generate()), poll_seconds=0.01)
    writer.record(admission_record(gdpr_denial()))

    async def run() -> tuple[int, str] | None:
        task = asyncio.create_task(signer.run())
        await asyncio.sleep(0.1)  # registered, and the first head's checkpoint under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return signer.signed  # what the task left when it ended

    # The checkpoint finished before the task ended, so `close` takes over with no thread still in it.
    assert asyncio.run(run()) == writer.durable_head()
    writer.close()
    signer.close()
    assert [(s.kind, s.seq, s.closed) for s in _statements(db_url)] == [
        ("chain", None, None),
        ("head", 1, False),
        ("head", 1, True),
    ]


def test_a_frozen_database_does_not_hold_up_the_stop(
    own_postgres: OwnPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOPped PostgreSQL: the checkpoint in flight never returns. Cancelling the task and the final
    checkpoint each wait `stop_seconds`, then give up saying so; the loop and the process are free."""
    writer = AuditWriter.open(own_postgres.url, chain_id="frozen", spool_dir=tmp_path, timeout_s=1.0)
    sealer = Sealer.open(own_postgres.url, SigningKey.generate(), check_schema=False)
    signer = HeadSigner(writer, sealer, poll_seconds=0.05, stop_seconds=1.0)
    writer.record(admission_record(gdpr_denial()))
    own_postgres.freeze()
    try:

        async def run() -> float:
            task = asyncio.create_task(signer.run())
            await asyncio.sleep(0.5)  # registering the chain: stuck on the frozen database
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

        with caplog.at_level(logging.WARNING, logger="policyengine.audit"):
            assert asyncio.run(run()) < 5  # stop_seconds, and asyncio.run did not wait for the thread
            started = time.monotonic()
            signer.close()
            assert time.monotonic() - started < 1
            assert any("did not answer a checkpoint within 1 s" in r.getMessage() for r in caplog.records)
            idle = HeadSigner(writer, Sealer.open(own_postgres.url, SigningKey.generate(), check_schema=False))
            idle.stop_seconds = 1.0
            started = time.monotonic()
            idle.close()  # its final checkpoint never returns: given up after stop_seconds
            assert time.monotonic() - started < 5
        assert any("is not signed: the database did not answer within 1 s" in r.getMessage() for r in caplog.records)
        writer.close()
    finally:
        own_postgres.thaw()
