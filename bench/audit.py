"""Audit trail benchmark: chained durable recording vs plain batched inserts, verify, 1M-row CSV export.

Each figure is measured in the same run as its baseline:
- record: N rows through `AuditWriter.record_async` from 32 concurrent callers (asyncio tasks, as the
  server records: chaining, group commit, durability), in one process and in two (a chain each, as two
  server workers), vs. the same rows built and inserted unchained in batches of the same size from one
  thread through the same insert path; then the same writer once with each hash replaced by a constant
  (what the hash chain itself costs); also the blocking `record` from 32 threads;
- verify: rows/s of `verify` over the chained table the record runs left (~2.25x --rows rows), and over
  a verify-only table of --verify-rows correctly chained rows (default 500,000; one chain) bulk-filled by
  COPY before the clock starts, so the figure is of verify, not of setup; best and median of --repeat runs;
  then the same table with its head signed every 10,000 rows (the server's default) and closed, verified
  with the public key, as a ratio to the hash-chain-only median of the same run;
- export: `policyengine audit export --format csv` of 1,000,000 rows in a subprocess (wall time and the
  subprocess's peak RSS).

Usage: .venv/bin/python bench/audit.py [--backend postgresql|sqlite|both] [--rows 60000] [--export-rows 1000000]
       [--verify-rows 500000] [--repeat 3] [--only record|verify|export ...]
e.g. the verify figure alone: .venv/bin/python bench/audit.py --backend postgresql --only verify
Needs PostgreSQL at 127.0.0.1:5432 for the postgresql backend (a database pe_bench_<uuid> is made and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing as mp
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import uvloop
from databases import fresh_database
from sqlalchemy import Engine, delete, select, text

from policyengine.api.memory import settle_heap, tune_collector
from policyengine.audit import AuditRecord, AuditWriter
from policyengine.audit import tail as tail_module
from policyengine.audit.chain import GENESIS, row_hash
from policyengine.audit.inserts import insert_rows, write_postgres_async
from policyengine.audit.record import content_of
from policyengine.audit.schema import audit_decision
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey, VerifyKey
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify
from policyengine.decision import Decision, Enforcement, Outcome, Violation

CALLERS = 32
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def sample_record(n: int) -> AuditRecord:
    deny = n % 3 == 0
    decision = Decision(
        decision_id=f"bench-{n}",
        outcome=Outcome.DENY if deny else Outcome.ALLOW,
        enforcement=Enforcement.DENY,
        violations=(
            (
                Violation(
                    "GDPR",
                    "no_transfer_without_mechanism",
                    "GDPR Art. 44-46",
                    "shop/checkout in eu-1 would send personal data of EU subjects to us-1",
                    "route to eu-1 or eu-2",
                    "us-1",
                ),
            )
            if deny
            else ()
        ),
        permitted_clusters=("eu-1", "eu-2"),
        policy_revision="sha256:" + "ab" * 32,
        engine="regorus",
        latency_us=120.0 + n % 50,
        regimes=("GDPR",),
        input_digest="sha256:" + hashlib.sha256(str(n).encode()).hexdigest(),
    )
    return AuditRecord(
        source="admission",
        decision=decision,
        cluster="eu-1",
        operation="CREATE",
        api_version="networking.istio.io/v1",
        kind="ServiceEntry",
        namespace="shop",
        name=f"checkout-{n % 997}",
        user="system:serviceaccount:argocd:argocd-application-controller",
        time=T0 + timedelta(seconds=n),
    )


UNHASHED = "unhashed"  # the chain_id of the run whose hash is a constant (its rows are deleted after)


def _async_recorder(
    url: str, records: list[AuditRecord], callers: int, spool: str, start_at: float, out: Any, hashed: bool
) -> None:
    """One process: `callers` asyncio tasks await `record_async` (how the server records). Unhashed:
    the same writer with each row's hash replaced by a constant (what the hash chain itself costs)."""
    if not hashed:
        tail_module.fresh_hash = lambda _row: GENESIS  # this (forked) process only

    async def run() -> tuple[float, float]:
        writer = AuditWriter.open(
            url, chain_id=str(uuid.uuid4()) if hashed else UNHASHED, new_chain=True, spool_dir=spool
        )
        await writer.attach_event_loop()  # as the server does (PostgreSQL: group commits on this loop)
        settle_heap()  # as the server does after loading: the prepared records leave the collector's passes
        batches: list[int] = []
        original = tail_module.ChainTail._chain

        def counting(tail: tail_module.ChainTail, batch: list) -> list:  # type: ignore[type-arg]
            batches.append(len(batch))
            return original(tail, batch)

        tail_module.ChainTail._chain = counting  # type: ignore[method-assign]
        per = len(records) // callers

        async def work(k: int) -> None:
            for record in records[k * per : (k + 1) * per]:
                await writer.record_async(record)

        while time.time() < start_at:
            await asyncio.sleep(0.001)
        began = time.perf_counter()
        await asyncio.gather(*(work(k) for k in range(callers)))
        elapsed = time.perf_counter() - began
        await writer.detach_event_loop()
        writer.close()
        return elapsed, sum(batches) / max(len(batches), 1)

    try:
        out.put((len(records) // callers * callers, *uvloop.run(run())))  # the server's event loop
    except BaseException as exc:
        out.put(exc)  # the parent raises it rather than waiting for a result forever
        raise


def bench_record_async(
    url: str, rows: int, callers: int, processes: int, spool: Path, *, hashed: bool = True
) -> tuple[float, float]:
    """(rows/s over all processes, mean group size) with `callers` concurrent callers in total."""
    records = [sample_record(n) for n in range(rows // processes)]
    results: Any = mp.get_context("fork").Queue()
    start_at = time.time() + 2.0
    workers = [
        mp.get_context("fork").Process(
            target=_async_recorder,
            args=(url, records, callers // processes, str(spool / str(k)), start_at, results, hashed),
        )
        for k in range(processes)
    ]
    for w in workers:
        w.start()
    done = [results.get() for _ in workers]
    for result in done:
        if isinstance(result, BaseException):
            raise SystemExit(f"a recording process failed: {result!r}")
    for w in workers:
        w.join()
    total = sum(n for n, _, _ in done)
    slowest = max(elapsed for _, elapsed, _ in done)
    return total / slowest, sum(batch for _, _, batch in done) / len(done)


def bench_record_threads(url: str, rows: int, spool: Path) -> float:
    """rows/s of the blocking `record` from CALLERS threads of one process."""
    records = [sample_record(n) for n in range(rows)]
    writer = AuditWriter.open(url, chain_id=str(uuid.uuid4()), spool_dir=spool)
    per_caller = rows // CALLERS

    def work(k: int) -> None:
        for record in records[k * per_caller : (k + 1) * per_caller]:
            writer.record(record)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(CALLERS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = per_caller * CALLERS / (time.perf_counter() - start)
    writer.close()
    return rate


def bench_plain(url: str, rows: int, batch: int) -> float:
    """The baseline: the same rows built and inserted unchained (constant chain fields, no group-commit
    machinery, no waiting callers) in batches of `batch`, from one thread, through the insert path the
    chained rows take: on PostgreSQL the writer's asyncio statement (`write_postgres_async`: a multi-row
    INSERT up to 16 rows, COPY above) in autocommit on the same kind of event loop; on SQLite the
    prepared INSERT in a transaction."""
    records = [sample_record(n) for n in range(rows)]
    settle_heap()  # the same collector treatment as the chained run's records

    def chunks() -> Iterator[list[dict[str, Any]]]:
        for i in range(0, rows, batch):
            chunk = []
            for n, record in enumerate(records[i : i + batch], i + 1):
                row = content_of(record)
                row.update(chain_id="plain", seq=n, prev_hash=GENESIS, hash=GENESIS)
                chunk.append(row)
            yield chunk

    engine = make_engine(url, pre_ping=False)
    if engine.dialect.name == "postgresql":
        psycopg_url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

        async def insert_all() -> float:
            connection = await psycopg.AsyncConnection.connect(psycopg_url, autocommit=True)
            start = time.perf_counter()
            for chunk in chunks():
                await write_postgres_async(connection, chunk)
            elapsed = time.perf_counter() - start
            await connection.close()
            return elapsed

        elapsed = uvloop.run(insert_all())
    else:
        start = time.perf_counter()
        for chunk in chunks():
            with engine.begin() as c:
                insert_rows(c, chunk)
        elapsed = time.perf_counter() - start
    engine.dispose()
    drop_chain(url, "plain")
    return rows / elapsed


def drop_chain(url: str, chain: str) -> None:
    """Delete a baseline's rows, so `verify` later walks only real chains."""
    engine = make_engine(url, pre_ping=False)
    with engine.begin() as c:
        c.execute(delete(audit_decision).where(audit_decision.c.chain_id == chain))
    engine.dispose()


def bench_verify(url: str, keys: Sequence[VerifyKey] = ()) -> tuple[float, int]:
    engine = make_engine(url)
    start = time.perf_counter()
    report = verify(engine, keys=keys)
    elapsed = time.perf_counter() - start
    assert report.ok, report.findings
    engine.dispose()
    return report.rows / elapsed, report.rows


def _insert_batched(engine: Engine, rows: Iterator[dict[str, Any]], size: int) -> None:
    """Insert `rows` in transactions of `size` rows through the writer's insert path."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            with engine.begin() as c:
                insert_rows(c, batch)
            batch = []
    if batch:
        with engine.begin() as c:
            insert_rows(c, batch)


def _chained(contents: Iterator[dict[str, Any]], chain: str) -> Iterator[dict[str, Any]]:
    """The rows of `contents` linked into one chain (seq from 1, hashes computed here)."""
    head = GENESIS
    for n, row in enumerate(contents, 1):
        row.update(chain_id=chain, seq=n, prev_hash=head)
        head = row["hash"] = row_hash(row)
        yield row


def fill(url: str, rows: int, chain: str = "bulk") -> None:
    """Insert `rows` chained rows directly (fast path for the export benchmark's data)."""
    engine = make_engine(url)
    _insert_batched(engine, _chained((content_of(sample_record(n)) for n in range(rows)), chain), 20_000)
    engine.dispose()


def fill_bulk(url: str, rows: int, chain: str = "bulk") -> None:
    """Insert `rows` correctly chained rows quickly: three row templates (deny/allow variants of
    `sample_record`) with only the fields that vary per row rewritten, hashed here, written by COPY."""
    engine = make_engine(url)
    templates = [content_of(sample_record(n)) for n in range(3)]

    def contents() -> Iterator[dict[str, Any]]:
        for n in range(rows):
            row = dict(templates[n % 3])
            row.update(
                decision_id=f"bench-{n}",
                name=f"checkout-{n % 997}",
                latency_us=120 + n % 50,
                input_digest="sha256:" + hashlib.sha256(str(n).encode()).hexdigest(),
                time=T0 + timedelta(seconds=n),
            )
            yield row

    _insert_batched(engine, _chained(contents(), chain), 50_000)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE audit_decision"))  # hint bits set, as on a table that has lived
    engine.dispose()


def bench_verify_bulk(backend: str, rows: int, repeat: int) -> None:
    """verify over a fresh table of `rows` chained rows: every run's rate, the best and the median; then
    with the head signed every SIGN_EVERY rows, verify with and without the public key in turn."""
    with fresh_database(backend) as url:
        start = time.perf_counter()
        fill_bulk(url, rows)
        print(f"{backend}: filled {rows:,} chained rows for verify in {time.perf_counter() - start:.1f} s")
        rates = []
        for _ in range(repeat):
            rate, walked = bench_verify(url)
            assert walked == rows, (walked, rows)
            rates.append(rate)
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"{backend}: verify {max(rates):,.0f} rows/s best, {statistics.median(rates):,.0f} median "
            f"({rows:,} rows, one chain; runs: {runs})"
        )
        key, entries = sign_bulk(url, SIGN_EVERY)
        plain, keyed = [], []
        for _ in range(repeat):  # in turn, so a noisy moment hits both alike
            plain.append(bench_verify(url)[0])
            keyed.append(bench_verify(url, keys=[key.public])[0])
        ratios = ", ".join(f"{p / k:.2f}x" for p, k in zip(plain, keyed, strict=True))
        print(
            f"{backend}: verify --public-key {statistics.median(keyed):,.0f} rows/s median, without "
            f"{statistics.median(plain):,.0f} ({entries} signed registry entries, taken in turn); "
            f"cost of the signature checks {statistics.median(plain) / statistics.median(keyed):.2f}x "
            f"(pairs: {ratios})"
        )


SIGN_EVERY = 10_000


def sign_bulk(url: str, every: int, chain: str = "bulk") -> tuple[SigningKey, int]:
    """Sign the bulk chain's head every `every` rows and its last row closed, as the server's head
    signer would have while writing it; (the key, registry entries written)."""
    key = SigningKey.generate()
    engine = make_engine(url)
    t = audit_decision
    with engine.connect() as c:
        signed_at = (t.c.seq % every == 0) | (t.c.seq == 1)  # the first row at once, then every N
        heads = c.execute(select(t.c.seq, t.c.hash).where(t.c.chain_id == chain, signed_at).order_by(t.c.seq)).all()
        last = c.execute(select(t.c.seq, t.c.hash).where(t.c.chain_id == chain).order_by(t.c.seq.desc()).limit(1)).one()
    sealer = Sealer(engine, key)
    sealer.opened(chain)
    for seq, digest in heads:
        sealer.head(chain, int(seq), str(digest))
    sealer.head(chain, int(last.seq), str(last.hash), closed=True)
    engine.dispose()
    return key, len(heads) + 2


def bench_export(url: str, rows: int, out_dir: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of the CSV export CLI in a subprocess."""
    out = out_dir / "export.csv"
    code = (
        "import sys; from policyengine.cli.audit import app; "
        "sys.argv=['audit','export','--format','csv','--no-verify','--db',sys.argv[1],'--out',sys.argv[2]]; app()"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, url, str(out)], check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    lines = sum(1 for _ in out.open()) - 1
    assert lines == rows, (lines, rows)
    return elapsed, peak_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--rows", type=int, default=64_000)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--verify-rows", type=int, default=500_000, help="rows of the verify-only table (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="verify runs over the verify-only table")
    parser.add_argument("--pairs", type=int, default=5, help="chained/plain record runs taken in turn")
    parser.add_argument(
        "--only", action="append", choices=("record", "verify", "export"), help="run only these parts (repeatable)"
    )
    args = parser.parse_args()
    tune_collector()  # the server's collector settings (policyengine/api/memory.py), in every process
    parts = set(args.only or ("record", "verify", "export"))
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    if "verify" in parts and args.verify_rows:
        for backend in backends:
            bench_verify_bulk(backend, args.verify_rows, args.repeat)
    for backend in backends if "record" in parts else ():
        with fresh_database(backend) as url, tempfile.TemporaryDirectory() as tmp:
            ratios, chained = [], []
            for _ in range(args.pairs):  # chained and plain in turn, so a noisy moment hits both alike
                one, batch = bench_record_async(url, args.rows, CALLERS, 1, Path(tmp))
                plain = bench_plain(url, args.rows, max(1, round(batch)))
                ratios.append(plain / one)
                chained.append(one)
                print(
                    f"{backend}: record {one:,.0f} rows/s chained+durable, 1 process, {CALLERS} concurrent async "
                    f"callers (mean group commit {batch:.0f} rows); plain batched insert of the same rows "
                    f"{plain:,.0f} rows/s; chaining cost {plain / one:.2f}x"
                )
            listed = ", ".join(f"{r:.2f}x" for r in ratios)
            median = statistics.median(ratios)
            print(f"{backend}: chaining cost median {median:.2f}x over {len(ratios)} pairs ({listed})")
            bare, _ = bench_record_async(url, args.rows, CALLERS, 1, Path(tmp), hashed=False)
            drop_chain(url, UNHASHED)
            print(
                f"{backend}: record {bare:,.0f} rows/s with the same writer, each hash a constant; "
                f"the hash chain itself costs {bare / statistics.median(chained):.2f}x (against the median chained run)"
            )
            two, batch2 = bench_record_async(url, args.rows, CALLERS, 2, Path(tmp))
            print(
                f"{backend}: record {two:,.0f} rows/s chained+durable, 2 processes (one chain each, like 2 server "
                f"workers), {CALLERS} callers in all (mean group commit {batch2:.0f} rows)"
            )
            threads = bench_record_threads(url, args.rows // 4, Path(tmp))
            print(f"{backend}: record {threads:,.0f} rows/s with the blocking API from {CALLERS} threads")
            rate, walked = bench_verify(url)
            print(f"{backend}: verify {rate:,.0f} rows/s ({walked:,} rows)")
    if args.export_rows and "export" in parts:
        with fresh_database("postgresql") as url, tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            fill(url, args.export_rows)
            print(f"postgresql: filled {args.export_rows:,} chained rows in {time.perf_counter() - start:.1f} s")
            rate, walked = bench_verify(url)
            print(f"postgresql: verify {rate:,.0f} rows/s ({walked:,} rows)")
            seconds, peak = bench_export(url, args.export_rows, Path(tmp))
            print(f"postgresql: CSV export of {args.export_rows:,} rows: {seconds:.1f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
