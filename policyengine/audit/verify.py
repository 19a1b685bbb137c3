"""Walking the chains: every row's hash must match its content and link to its predecessor.

`verify(engine)` reports, per chain, the first edited, deleted, inserted or reordered row (chain, seq,
what differs). Given public keys, it then holds every chain to the signed registry (`signed_heads`:
truncation, rewritten suffixes, rows after a closed head, deleted chains, forged prune checkpoints);
given anchors or export manifests, to the heads they recorded (`anchor`). Rows are streamed in seq
order, so memory stays constant on large tables. On PostgreSQL the chains are cut into seq ranges
that this process and up to WORKERS - 1 worker processes scan side by side (`chainscan`: PostgreSQL
streams the columns by COPY, Python rebuilds each canonical document and hashes it); the links
between ranges are checked here. SQLite streams each chain in chunks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import psycopg
from sqlalchemy import Connection, Engine, func, select

from policyengine.audit import anchor, chainscan, signed_heads
from policyengine.audit.anchor import Reference
from policyengine.audit.chain import GENESIS, copy_job, copy_templates, row_hash
from policyengine.audit.chainscan import SpanResult
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.findings import Finding, FindingKind
from policyengine.audit.registry import read_entries, registry_summary, replay
from policyengine.audit.schema import ROW_COLUMNS, audit_checkpoint, audit_decision
from policyengine.audit.signing import VerifyKey
from policyengine.audit.verify_report import ChainHead, VerifyReport

__all__ = ["ChainHead", "Finding", "FindingKind", "VerifyReport", "total_rows", "verify"]

STREAM_CHUNK = 10_000
SPAN_ROWS = 50_000  # rows of a chain one PostgreSQL scan covers (scans are handed out as workers free up)
WORKERS = max(1, min(os.cpu_count() or 1, 4))  # hashing processes on PostgreSQL: this one + WORKERS - 1


def total_rows(engine: Engine) -> int:
    """Rows in the audit table (for progress bars)."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(audit_decision)).scalar_one())


def verify(
    engine: Engine,
    progress: Callable[[int], None] | None = None,
    *,
    keys: Sequence[VerifyKey] = (),
    against: Sequence[Reference] = (),
    strict: bool = False,
) -> VerifyReport:
    """Walk every chain; `progress(n)` is called after each chunk of n rows. With `keys`, check the
    signed registry and hold the chains to it (`strict`: an unsigned tail is a finding too); with
    `against`, compare with the heads each reference recorded."""
    report = VerifyReport()
    t = audit_decision
    with engine.connect() as connection:
        extents = {
            str(r.chain_id): (int(r.rows), int(r.low), int(r.high))
            for r in connection.execute(
                select(
                    t.c.chain_id,
                    func.count().label("rows"),
                    func.min(t.c.seq).label("low"),
                    func.max(t.c.seq).label("high"),
                )
                .group_by(t.c.chain_id)
                .order_by(t.c.chain_id)
            )
        }
        checkpoints = {
            str(r.chain_id): (int(r.seq), str(r.hash))
            for r in connection.execute(
                select(audit_checkpoint.c.chain_id, audit_checkpoint.c.seq, audit_checkpoint.c.hash)
            )
        }
    chain_ids = list(extents)
    spans: dict[str, list[SpanResult]] = {}
    if engine.dialect.name == "postgresql":
        spans = _scan_chains(engine, extents, checkpoints, progress)
    for chain_id in chain_ids:
        checkpoint = checkpoints.get(chain_id)
        if engine.dialect.name == "postgresql":
            expected_seq, expected_prev = (checkpoint[0] + 1, checkpoint[1]) if checkpoint else (1, GENESIS)
            head, finding = _judge(engine, chain_id, expected_seq, expected_prev, spans[chain_id])
        else:
            head, finding = _verify_chain(engine, chain_id, checkpoint, progress)
        report.rows += head.rows
        report.chains.append(head)
        if finding is not None:
            report.findings.append(finding)
    for chain_id, (seq, digest) in sorted(checkpoints.items()):
        if chain_id not in chain_ids:
            report.chains.append(ChainHead(chain_id, 0, seq + 1, seq, digest, True))
    if keys:
        registry = replay(read_entries(engine), keys)
        report.registry = registry
        report.signatures_checked = True
        report.registry_entries = registry.entries
        report.registry_key_ids = sorted(registry.key_ids)
        signed_heads.judge(report, registry, checkpoints, lambda c, s: _stored_hash(engine, c, s), strict=strict)
    else:
        report.registry_entries, report.registry_key_ids = registry_summary(engine)
    for reference in against:
        anchor.judge(report, reference, checkpoints, lambda c, s: _stored_hash(engine, c, s), engine)
    return report


def _stored_hash(engine: Engine, chain_id: str, seq: int) -> str | None:
    """The stored hash of the row at (chain_id, seq), if there is one."""
    with engine.connect() as connection:
        found = connection.execute(
            select(audit_decision.c.hash).where(audit_decision.c.chain_id == chain_id, audit_decision.c.seq == seq)
        ).scalar()
    return None if found is None else str(found)


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


def _ranges(rows: int, low: int, high: int, expected_seq: int) -> list[tuple[int, int]]:
    """Seq ranges covering a chain's rows low..high in about SPAN_ROWS rows each. Rows below the
    expected first seq are scanned too (they were re-inserted); the last range runs to the highest seq,
    so a forged far-off seq adds no ranges."""
    start = min(low, expected_seq)
    stop = min(high, start + rows - 1)  # where the rows would end if contiguous
    bounds = list(range(start, stop + 1, SPAN_ROWS)) or [start]
    return [(b, b + SPAN_ROWS - 1) for b in bounds[:-1]] + [(bounds[-1], high)]


def _scan_chains(
    engine: Engine,
    extents: dict[str, tuple[int, int, int]],
    checkpoints: dict[str, tuple[int, str]],
    progress: Callable[[int], None] | None,
) -> dict[str, list[SpanResult]]:
    """Scan every chain's seq ranges with PostgreSQL streaming the columns (COPY) and Python hashing
    (`chainscan.scan`): in this process and in up to WORKERS - 1 worker processes, each taking the next
    range when it is done with one, so both PostgreSQL and Python work on every core. Each range's
    first and last links are joined up by `_judge`."""
    tasks: list[tuple[str, int, int]] = []
    for chain_id, (rows, low, high) in extents.items():
        checkpoint = checkpoints.get(chain_id)
        expected_seq = checkpoint[0] + 1 if checkpoint else 1
        tasks += [(chain_id, a, b) for a, b in _ranges(rows, low, high, expected_seq)]
    if not tasks:
        return {}
    job = copy_job(audit_decision.name)
    templates = {chain_id: copy_templates(chain_id) for chain_id in extents}
    results: list[SpanResult | None] = [None] * len(tasks)
    pending = deque(enumerate(tasks))
    lock = threading.Lock()
    failed = threading.Event()

    def take() -> tuple[int, tuple[str, int, int]] | None:
        with lock:
            return pending.popleft() if pending and not failed.is_set() else None

    def report(rows: int) -> None:
        if progress is not None:
            with lock:
                progress(rows)

    def here() -> None:
        try:
            with engine.connect() as connection:
                driver = connection.connection.driver_connection
                assert isinstance(driver, psycopg.Connection)
                while (item := take()) is not None:
                    index, (chain_id, low, high) = item
                    results[index] = chainscan.scan(driver, job, templates[chain_id], chain_id, low, high, report)
        except BaseException:
            failed.set()
            raise

    helpers = min(WORKERS, len(tasks)) - 1
    conninfo = _conninfo(engine) if helpers > 0 else ""
    with ThreadPoolExecutor(max_workers=helpers + 1) as pool:
        futures = [pool.submit(here)]
        futures += [
            pool.submit(_helper, conninfo, job, templates, take, results, report, failed) for _ in range(helpers)
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:  # e.g. Ctrl-C: every worker stops after its current range
            failed.set()
            raise
    spans: dict[str, list[SpanResult]] = {chain_id: [] for chain_id in extents}
    for (chain_id, _, _), result in zip(tasks, results, strict=True):
        assert result is not None
        spans[chain_id].append(result)
    return spans


def _conninfo(engine: Engine) -> str:
    """libpq connection string of the engine's connections (password included: it goes down a pipe)."""
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        options = {o.keyword.decode(): o.val.decode() for o in driver.pgconn.info if o.val is not None}
    return psycopg.conninfo.make_conninfo(**options)


def _helper(
    conninfo: str,
    job: chainscan.Job,
    templates: dict[str, dict[bytes, bytes]],
    take: Callable[[], tuple[int, tuple[str, int, int]] | None],
    results: list[SpanResult | None],
    report: Callable[[int], None],
    failed: threading.Event,
) -> None:
    """Feed ranges to one worker process (`chainscan.serve`) until none are left. A worker that cannot
    start or connect leaves the work to the others; one that fails during a range fails the verify."""
    try:
        process = subprocess.Popen(
            [sys.executable, "-P", chainscan.__file__],  # -P: not the package directory on sys.path
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
    except OSError:
        return  # no interpreter to start (an embedded Python): this process does the ranges
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(json.dumps({"conninfo": conninfo, "job": job}) + "\n")
        process.stdin.flush()
        if process.stdout.readline() != "ready\n":
            return  # could not start or connect: this process and the other workers do the ranges
        while (item := take()) is not None:
            index, (chain_id, low, high) = item
            sent = {flag.decode("latin-1"): t.decode("latin-1") for flag, t in templates[chain_id].items()}
            process.stdin.write(json.dumps([chain_id, low, high, sent]) + "\n")
            process.stdin.flush()
            results[index] = _answer(process.stdout, report)
    except BaseException:
        failed.set()
        raise
    finally:
        _stop(process)


def _answer(stdout: IO[str], report: Callable[[int], None]) -> SpanResult:
    while line := stdout.readline():
        kind, _, payload = line.rstrip("\n").partition(" ")
        if kind == "p":
            report(int(payload))
        elif kind == "r":
            raw = json.loads(payload)
            first, last = raw["first"], raw["last"]
            return SpanResult(
                rows=int(raw["rows"]),
                first=(int(first[0]), str(first[1])) if first is not None else None,
                last=(int(last[0]), str(last[1])) if last is not None else None,
                break_at=raw["break_at"],
            )
        else:
            raise AuditStoreError(f"verify worker failed: {json.loads(payload) if kind == 'e' else line!r}")
    raise AuditStoreError("verify worker exited in the middle of a range")


def _stop(process: subprocess.Popen[str]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()
    except OSError:
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _judge(
    engine: Engine,
    chain_id: str,
    expected_seq: int,
    expected_prev: str,
    spans: list[SpanResult],
) -> tuple[ChainHead, Finding | None]:
    """Join a chain's scanned ranges (each range's first row must link to the previous range's last)
    and explain the first break found from the full row."""
    rows = sum(span["rows"] for span in spans)
    first_seq = expected_seq
    seq, prev = expected_seq, expected_prev
    problem: int | None = None
    for span in spans:
        first, last, break_at = span["first"], span["last"], span["break_at"]
        if first is not None and problem is None and (first[0] != seq or first[1] != prev):
            problem = first[0]
        if break_at is not None and problem is None:
            problem = break_at
        if last is not None:
            seq, prev = last[0] + 1, last[1]
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
