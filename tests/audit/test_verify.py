"""Tampering with the trail (edit, delete, insert, swap) is detected by verify, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from audit.decisions import mixed_records
from policyengine.audit import AuditWriter
from policyengine.audit.chain import row_hash
from policyengine.audit.schema import ROW_COLUMNS, audit_decision
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify

T = audit_decision


@pytest.fixture
def chained(db_url: str, tmp_path: Path) -> tuple[str, str]:
    """A database with one chain of 10 rows and a second chain of 3; returns (url, first chain id)."""
    with AuditWriter.open(db_url, chain_id="chain-a", spool_dir=tmp_path) as writer:
        for record in mixed_records(10):
            writer.record(record)
    with AuditWriter.open(db_url, chain_id="chain-b", spool_dir=tmp_path) as writer:
        for record in mixed_records(3):
            writer.record(record)
    return db_url, "chain-a"


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
