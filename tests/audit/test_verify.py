"""Tampering with the trail (edit, delete, insert, swap) is detected by verify, on both backends; on
PostgreSQL both as one scan and split into seq ranges of 3 rows shared with a worker process."""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import delete, insert, select, update

from audit.decisions import mixed_records
from policyengine.audit import AuditWriter, chainscan
from policyengine.audit import verify as verify_module
from policyengine.audit.chain import canonical, row_hash
from policyengine.audit.chainscan import SpanResult
from policyengine.audit.migrate import upgrade
from policyengine.audit.schema import ROW_COLUMNS, audit_decision
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify

T = audit_decision


@pytest.fixture(params=["sqlite", "postgresql", "postgresql in ranges"])
def trail_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database; "postgresql in ranges" scans chains in seq ranges of 3 rows shared between
    this process and a worker process, so range boundaries fall next to every kind of tampering below."""
    url = str(request.getfixturevalue("sqlite_empty_url" if request.param == "sqlite" else "pg_empty_url"))
    upgrade(url)
    if request.param == "postgresql in ranges":
        monkeypatch.setattr(verify_module, "SPAN_ROWS", 3)
        monkeypatch.setattr(verify_module, "WORKERS", 2)
    return url


@pytest.fixture
def chained(trail_url: str, tmp_path: Path) -> tuple[str, str]:
    """A database with one chain of 10 rows and a second chain of 3; returns (url, first chain id)."""
    with AuditWriter.open(trail_url, chain_id="chain-a", spool_dir=tmp_path) as writer:
        for record in mixed_records(10):
            writer.record(record)
    with AuditWriter.open(trail_url, chain_id="chain-b", spool_dir=tmp_path) as writer:
        for record in mixed_records(3):
            writer.record(record)
    return trail_url, "chain-a"


def _in_chain(seq: int) -> object:
    return (T.c.chain_id == "chain-a") & (T.c.seq == seq)


def test_untouched_trail_verifies(chained: tuple[str, str]) -> None:
    report = verify(make_engine(chained[0]))
    assert report.ok and report.rows == 13
    heads = {h.chain_id: h for h in report.chains}
    assert heads["chain-a"].last_seq == 10 and heads["chain-b"].last_seq == 3


def test_edited_field_is_detected(chained: tuple[str, str]) -> None:
    engine = make_engine(chained[0])
    with engine.begin() as c:
        c.execute(update(T).where(_in_chain(5)).values(decision="allow"))
    report = verify(engine)
    (finding,) = report.findings
    assert (finding.kind, finding.chain_id, finding.seq) == ("edited", "chain-a", 5)
    assert "content changed" in finding.detail


def test_edit_with_rehash_is_detected_at_the_next_row(chained: tuple[str, str]) -> None:
    engine = make_engine(chained[0])
    with engine.begin() as c:
        row = dict(c.execute(select(*[T.c[n] for n in ROW_COLUMNS]).where(_in_chain(5))).mappings().one())
        row["decision"] = "allow"
        c.execute(update(T).where(_in_chain(5)).values(decision="allow", hash=row_hash(row)))
    (finding,) = verify(engine).findings
    assert (finding.kind, finding.seq) == ("edited", 5)


def test_hash_over_a_non_canonical_document_is_refused(chained: tuple[str, str]) -> None:
    """A control character must enter the document escaped (\\u0001): a row rehashed over the raw
    character (which is how COPY output shows it) is an edit, not a valid row."""
    engine = make_engine(chained[0])
    with engine.begin() as c:
        row = dict(c.execute(select(*[T.c[n] for n in ROW_COLUMNS]).where(_in_chain(5))).mappings().one())
        row["user"] = "mallory\x01"
        forged = hashlib.sha256(canonical(row).replace(b"\\u0001", b"\x01")).hexdigest()
        c.execute(update(T).where(_in_chain(5)).values(user=row["user"], hash=forged))
        c.execute(update(T).where(_in_chain(6)).values(prev_hash=forged))
    (finding,) = verify(engine).findings
    assert (finding.kind, finding.seq) == ("edited", 5)
    assert "content changed" in finding.detail


def test_deleted_row_is_detected(chained: tuple[str, str]) -> None:
    engine = make_engine(chained[0])
    with engine.begin() as c:
        c.execute(delete(T).where(_in_chain(6)))
    (finding,) = verify(engine).findings
    assert (finding.kind, finding.chain_id, finding.seq) == ("deleted", "chain-a", 6)
    assert "seq 6 missing" in finding.detail


def test_deletion_with_renumbering_is_detected(chained: tuple[str, str]) -> None:
    engine = make_engine(chained[0])
    with engine.begin() as c:
        c.execute(delete(T).where(_in_chain(6)))
        for seq in range(7, 11):
            c.execute(update(T).where(_in_chain(seq)).values(seq=seq - 1))
    (finding,) = verify(engine).findings
    assert (finding.kind, finding.seq) == ("deleted", 6)


def test_inserted_row_is_detected(chained: tuple[str, str]) -> None:
    """A forged row slipped in after seq 5, with later rows renumbered and a correct hash of its own."""
    engine = make_engine(chained[0])
    with engine.begin() as c:
        for seq in range(10, 5, -1):
            c.execute(update(T).where(_in_chain(seq)).values(seq=seq + 1))
        before = dict(c.execute(select(*[T.c[n] for n in ROW_COLUMNS]).where(_in_chain(5))).mappings().one())
        forged = dict(before, seq=6, prev_hash=before["hash"], decision_id="forged", decision="allow")
        forged["hash"] = row_hash(forged)
        c.execute(insert(T).values(**forged))
    (finding,) = verify(engine).findings
    assert (finding.kind, finding.seq) == ("inserted", 6)


def test_appended_forgery_is_detected(chained: tuple[str, str]) -> None:
    engine = make_engine(chained[0])
    with engine.begin() as c:
        last = dict(c.execute(select(*[T.c[n] for n in ROW_COLUMNS]).where(_in_chain(10))).mappings().one())
        c.execute(insert(T).values(**dict(last, seq=11, decision_id="forged")))
    (finding,) = verify(engine).findings
    assert finding.seq == 11 and finding.kind in ("edited", "inserted")


def test_swapped_rows_are_detected(chained: tuple[str, str]) -> None:
    engine = make_engine(chained[0])
    with engine.begin() as c:
        c.execute(update(T).where(_in_chain(3)).values(seq=-3))
        c.execute(update(T).where(_in_chain(7)).values(seq=3))
        c.execute(update(T).where(_in_chain(-3)).values(seq=7))
    (finding,) = verify(engine).findings
    assert (finding.kind, finding.chain_id, finding.seq) == ("reordered", "chain-a", 3)
    assert "was at seq 7" in finding.detail


def test_other_chains_still_verify(chained: tuple[str, str]) -> None:
    engine = make_engine(chained[0])
    with engine.begin() as c:
        c.execute(delete(T).where(_in_chain(2)))
    report = verify(engine)
    heads = {h.chain_id: h for h in report.chains}
    assert not heads["chain-a"].verified and heads["chain-b"].verified


def test_worker_process_finds_the_edit(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges checked by the worker process report breaks like the ones checked here: this process
    waits until the worker has answered a range before it scans any, so the worker surely scans."""
    with AuditWriter.open(pg_url, chain_id="chain-a", spool_dir=tmp_path) as writer:
        for record in mixed_records(10):
            writer.record(record)
    engine = make_engine(pg_url)
    with engine.begin() as c:
        c.execute(update(T).where(_in_chain(5)).values(decision="allow"))
    monkeypatch.setattr(verify_module, "SPAN_ROWS", 2)
    monkeypatch.setattr(verify_module, "WORKERS", 2)
    answered = threading.Event()
    worker_ranges: list[SpanResult] = []
    real_answer, real_scan = verify_module._answer, chainscan.scan

    def answer(stdout: IO[str], report: Callable[[int], None]) -> SpanResult:
        result = real_answer(stdout, report)
        worker_ranges.append(result)
        answered.set()
        return result

    def scan_here(*args: Any, **kwargs: Any) -> SpanResult:
        assert answered.wait(60), "the worker process never answered"
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(verify_module, "_answer", answer)
    monkeypatch.setattr(chainscan, "scan", scan_here)
    seen: list[int] = []
    report = verify(engine, seen.append)
    (finding,) = report.findings
    assert (finding.kind, finding.chain_id, finding.seq) == ("edited", "chain-a", 5)
    assert "content changed" in finding.detail
    assert worker_ranges and sum(seen) == report.rows == 10


def test_ranges_cover_the_rows_and_a_far_off_seq_adds_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "SPAN_ROWS", 4)
    assert verify_module._ranges(10, 1, 10, 1) == [(1, 4), (5, 8), (9, 10)]
    assert verify_module._ranges(11, 1, 10**15, 1) == [(1, 4), (5, 8), (9, 10**15)]
    assert verify_module._ranges(3, 5, 7, 1) == [(1, 7)]  # rows 1..4 gone without a checkpoint
    assert verify_module._ranges(1, 9, 9, 9) == [(9, 9)]


def test_without_a_worker_process_this_process_scans_every_range(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AuditWriter.open(pg_url, chain_id="chain-a", spool_dir=tmp_path) as writer:
        for record in mixed_records(10):
            writer.record(record)
    engine = make_engine(pg_url)
    with engine.begin() as c:
        c.execute(delete(T).where(_in_chain(6)))
    monkeypatch.setattr(verify_module, "SPAN_ROWS", 2)
    monkeypatch.setattr(verify_module, "WORKERS", 2)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    report = verify(engine)
    (finding,) = report.findings
    assert (finding.kind, finding.seq, report.rows) == ("deleted", 6, 9)
