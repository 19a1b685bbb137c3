"""Walking the chains: every row's hash must match its content and link to its predecessor.

`verify(engine)` reports, per chain, the first edited, deleted, inserted or reordered row (chain, seq,
what differs). Rows are streamed in seq order, so memory stays constant on large tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, func, or_, select

from policyengine.audit.chain import GENESIS, row_hash, sql_row_hash
from policyengine.audit.schema import ROW_COLUMNS, audit_checkpoint, audit_decision

FindingKind = Literal["edited", "deleted", "inserted", "reordered"]
STREAM_CHUNK = 10_000
SPAN_ROWS = 100_000  # seq range PostgreSQL verifies in one query (two at a time)


@dataclass(frozen=True, slots=True)
class Finding:
    """The first break in one chain."""

    kind: FindingKind
    chain_id: str
    seq: int
    detail: str

    def __str__(self) -> str:
        return f"chain {self.chain_id} seq {self.seq}: {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain stands: its last row (or its prune checkpoint when every row was pruned)."""

    chain_id: str
    rows: int
    first_seq: int
    last_seq: int
    head_hash: str
    verified: bool


@dataclass(slots=True)
class VerifyReport:
    """The outcome of a walk over every chain."""

    rows: int = 0
    chains: list[ChainHead] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def total_rows(engine: Engine) -> int:
    """Rows in the audit table (for progress bars)."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(audit_decision)).scalar_one())


def verify(engine: Engine, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Walk every chain; `progress(n)` is called after each chunk of n rows."""
    report = VerifyReport()
    with engine.connect() as connection:
        chain_ids = [
            str(c)
            for c in connection.execute(
                select(audit_decision.c.chain_id).distinct().order_by(audit_decision.c.chain_id)
            ).scalars()
        ]
        checkpoints = {
            str(r.chain_id): (int(r.seq), str(r.hash))
            for r in connection.execute(
                select(audit_checkpoint.c.chain_id, audit_checkpoint.c.seq, audit_checkpoint.c.hash)
            )
        }
    for chain_id in chain_ids:
        head, finding = _verify_chain(engine, chain_id, checkpoints.get(chain_id), progress)
        report.rows += head.rows
        report.chains.append(head)
        if finding is not None:
            report.findings.append(finding)
    for chain_id, (seq, digest) in sorted(checkpoints.items()):
        if chain_id not in chain_ids:
            report.chains.append(ChainHead(chain_id, 0, seq + 1, seq, digest, True))
    return report


def _stream(engine: Engine, chain_id: str, after_seq: int) -> Iterator[dict[str, Any]]:
    """The chain's rows in seq order, fetched in keyset-paginated chunks (plain tuples: the structured
    columns are stored as the canonical text the hash covers, so nothing is decoded)."""
    columns = [audit_decision.c[name] for name in ROW_COLUMNS]
    seq_index = ROW_COLUMNS.index("seq")
    last = after_seq
    with engine.connect() as connection:
        while True:
            chunk = connection.execute(
                select(*columns)
                .where(audit_decision.c.chain_id == chain_id, audit_decision.c.seq > last)
                .order_by(audit_decision.c.seq)
                .limit(STREAM_CHUNK)
            ).all()
            if not chunk:
                return
            for row in chunk:
                yield dict(zip(ROW_COLUMNS, row, strict=True))
            last = int(chunk[-1][seq_index])


def _verify_chain(
    engine: Engine,
    chain_id: str,
    checkpoint: tuple[int, str] | None,
    progress: Callable[[int], None] | None,
) -> tuple[ChainHead, Finding | None]:
    expected_seq, expected_prev = (checkpoint[0] + 1, checkpoint[1]) if checkpoint else (1, GENESIS)
    if engine.dialect.name == "postgresql":
        return _verify_chain_in_database(engine, chain_id, expected_seq, expected_prev, progress)
    first_seq = expected_seq
    rows = 0
    finding: Finding | None = None
    pending_progress = 0
    for row in _stream(engine, chain_id, expected_seq - 1):
        rows += 1
        pending_progress += 1
        if progress is not None and pending_progress >= STREAM_CHUNK:
            progress(pending_progress)
            pending_progress = 0
        seq = int(row["seq"])
        if finding is None and (
            seq != expected_seq or row["prev_hash"] != expected_prev or row_hash(row) != row["hash"]
        ):
            finding = _check(engine, row, expected_seq, expected_prev)
        expected_seq = seq + 1
        expected_prev = str(row["hash"])
    if progress is not None and pending_progress:
        progress(pending_progress)
    head = ChainHead(chain_id, rows, first_seq, expected_seq - 1, expected_prev, finding is None)
    return head, finding


@dataclass(slots=True)
class _Span:
    """What one scan saw over a seq range of a chain."""

    rows: int = 0
    first: tuple[int, str] | None = None  # (seq, prev_hash) of its first row
    last: tuple[int, str] | None = None  # (seq, hash) of its last row
    break_at: int | None = None  # first row inside the range whose seq, link or content is wrong


def _scan_span(
    engine: Engine, chain_id: str, low: int, high: int, progress: Callable[[int], None] | None
) -> _Span:
    """Walk rows low..high of a chain inside PostgreSQL: it recomputes every hash (`sql_row_hash`) and
    compares each row with the one before it (a window over seq), so only the answer crosses the wire:
    how many rows, the first broken one, and the range's first and last links."""
    t = audit_decision
    ranged = and_(t.c.chain_id == chain_id, t.c.seq >= low, t.c.seq <= high)
    walked = (
        select(
            t.c.seq,
            (sql_row_hash(t) != t.c.hash).label("edited"),
            func.lag(t.c.seq).over(order_by=t.c.seq).label("before_seq"),
            func.lag(t.c.hash).over(order_by=t.c.seq).label("before_hash"),
            t.c.prev_hash,
        )
        .where(ranged)
        .subquery()
    )
    broken = or_(
        walked.c.edited,
        and_(
            walked.c.before_seq.is_not(None),
            or_(walked.c.seq != walked.c.before_seq + 1, walked.c.prev_hash != walked.c.before_hash),
        ),
    )
    with engine.connect() as connection:
        rows, break_at = connection.execute(
            select(func.count(), func.min(walked.c.seq).filter(broken)).select_from(walked)
        ).one()
        first = connection.execute(select(t.c.seq, t.c.prev_hash).where(ranged).order_by(t.c.seq).limit(1)).first()
        last = connection.execute(select(t.c.seq, t.c.hash).where(ranged).order_by(t.c.seq.desc()).limit(1)).first()
    if progress is not None and rows:
        progress(int(rows))
    return _Span(
        rows=int(rows),
        first=(int(first.seq), str(first.prev_hash)) if first is not None else None,
        last=(int(last.seq), str(last.hash)) if last is not None else None,
        break_at=int(break_at) if break_at is not None else None,
    )


def _verify_chain_in_database(
    engine: Engine,
    chain_id: str,
    expected_seq: int,
    expected_prev: str,
    progress: Callable[[int], None] | None,
) -> tuple[ChainHead, Finding | None]:
    """Verify with the hashing done by PostgreSQL, seq ranges checked two at a time (two backends), the
    links between ranges checked here. The first break found is then explained from the full row."""
    t = audit_decision
    with engine.connect() as connection:
        low, top = connection.execute(
            select(func.min(t.c.seq), func.max(t.c.seq)).where(t.c.chain_id == chain_id)
        ).one()
    first_seq = expected_seq
    start = min(int(low), expected_seq) if low is not None else expected_seq  # rows below: re-inserted
    high = int(top) if top is not None else expected_seq - 1
    ranges = [(low_, min(low_ + SPAN_ROWS - 1, high)) for low_ in range(start, high + 1, SPAN_ROWS)] or [
        (start, high)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two backends hash at once
        spans = list(pool.map(lambda r: _scan_span(engine, chain_id, r[0], r[1], progress), ranges))
    rows = sum(span.rows for span in spans)
    seq, prev = expected_seq, expected_prev
    problem: int | None = None
    for span in spans:
        if span.first is not None and problem is None and (span.first[0] != seq or span.first[1] != prev):
            problem = span.first[0]
        if span.break_at is not None and problem is None:
            problem = span.break_at
        if span.last is not None:
            seq, prev = span.last[0] + 1, span.last[1]
    finding = None
    if problem is not None:
        before_seq, before_hash = _row_before(engine, chain_id, problem, expected_seq, expected_prev)
        finding = _check(engine, _row_at(engine, chain_id, problem), before_seq, before_hash)
    return ChainHead(chain_id, rows, first_seq, seq - 1, prev, finding is None), finding


def _row_before(engine: Engine, chain_id: str, seq: int, start_seq: int, start_prev: str) -> tuple[int, str]:
    """(expected seq, expected prev_hash) for the row at `seq`: from the row just before it."""
    t = audit_decision
    with engine.connect() as connection:
        row = connection.execute(
            select(t.c.seq, t.c.hash)
            .where(t.c.chain_id == chain_id, t.c.seq < seq, t.c.seq >= start_seq)
            .order_by(t.c.seq.desc())
            .limit(1)
        ).first()
    return (int(row.seq) + 1, str(row.hash)) if row is not None else (start_seq, start_prev)


def _row_at(engine: Engine, chain_id: str, seq: int) -> dict[str, Any]:
    """The whole row at (chain_id, seq), to say what is wrong with it."""
    columns = [audit_decision.c[name] for name in ROW_COLUMNS]
    with engine.connect() as connection:
        row = connection.execute(
            select(*columns).where(audit_decision.c.chain_id == chain_id, audit_decision.c.seq == seq)
        ).one()
    return dict(zip(ROW_COLUMNS, row, strict=True))


def _check(engine: Engine, row: dict[str, Any], expected_seq: int, expected_prev: str) -> Finding | None:
    chain_id, seq = str(row["chain_id"]), int(row["seq"])
    if seq != expected_seq:
        missing = f"seq {expected_seq}" if seq == expected_seq + 1 else f"seq {expected_seq}..{seq - 1}"
        return Finding("deleted", chain_id, expected_seq, f"{missing} missing: the next row present is seq {seq}")
    recomputed = row_hash(row)
    if recomputed == row["hash"]:
        if row["prev_hash"] == expected_prev:
            return None
        origin = _seq_of_hash(engine, chain_id, str(row["prev_hash"]))
        if origin is None:
            return Finding(
                "edited",
                chain_id,
                seq - 1,
                f"the row before seq {seq} was rewritten: seq {seq} links to {row['prev_hash'][:16]}…, "
                f"the row now at seq {seq - 1} hashes to {expected_prev[:16]}…",
            )
        return Finding(
            "inserted",
            chain_id,
            origin + 1,
            f"rows {origin + 1}..{seq - 1} were inserted: seq {seq} links to seq {origin}",
        )
    if row["prev_hash"] == expected_prev:
        return Finding(
            "edited",
            chain_id,
            seq,
            f"content changed: stored hash {row['hash'][:16]}…, content hashes to {recomputed[:16]}… "
            f"(decision_id {row['decision_id']})",
        )
    origin = _seq_of_hash(engine, chain_id, str(row["prev_hash"]))
    if origin is not None and origin + 1 != seq and row_hash({**row, "seq": origin + 1}) == row["hash"]:
        if origin + 1 < seq:
            return Finding(
                "inserted",
                chain_id,
                origin + 1,
                f"{seq - origin - 1} row(s) inserted before seq {seq} (this row was seq {origin + 1})",
            )
        return Finding(
            "reordered",
            chain_id,
            seq,
            f"the row at seq {seq} was at seq {origin + 1} (decision_id {row['decision_id']})",
        )
    if origin is None:
        return Finding(
            "deleted",
            chain_id,
            seq,
            f"the predecessor of the row at seq {seq} is missing (rows renumbered after a deletion?) "
            f"and its hash no longer matches its content",
        )
    return Finding(
        "edited",
        chain_id,
        seq,
        f"neither its hash nor its link match: stored hash {row['hash'][:16]}…, content hashes to {recomputed[:16]}…",
    )


def _seq_of_hash(engine: Engine, chain_id: str, digest: str) -> int | None:
    with engine.connect() as connection:
        return _lookup(connection, chain_id, digest)


def _lookup(connection: Connection, chain_id: str, digest: str) -> int | None:
    found = connection.execute(
        select(audit_decision.c.seq).where(audit_decision.c.chain_id == chain_id, audit_decision.c.hash == digest)
    ).scalar()
    return None if found is None else int(found)
