"""Durability: two processes at once, SIGKILL mid-stream, and a PostgreSQL outage with the spool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from audit.decisions import admission_record, gdpr_denial
from audit.own_postgres import OwnPostgres, stored_ids
from policyengine.audit import AuditStoreError, AuditWriter
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify

RECORDER = Path(__file__).with_name("recorder.py")


def _recorder(url: str, chain: str, spool: Path, per_thread: int, threads: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(RECORDER), url, chain, str(spool), str(per_thread), str(threads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_with_eight_threads_each(db_url: str, tmp_path: Path) -> None:
    per_thread, threads = 40, 8
    procs = [_recorder(db_url, f"proc-{i}", tmp_path, per_thread, threads) for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.rstrip().endswith("done")
    reported = [line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("recorded")]
    stored = stored_ids(db_url)
    assert len(reported) == len(stored) == 2 * per_thread * threads
    assert sorted(reported) == sorted(stored)
    report = verify(make_engine(db_url))
    assert report.ok, report.findings
    assert sorted(h.chain_id for h in report.chains) == ["proc-0", "proc-1"]
    assert all(h.rows == per_thread * threads for h in report.chains)


def test_sigkill_mid_stream_loses_no_acknowledged_row(db_url: str, tmp_path: Path) -> None:
    proc = _recorder(db_url, "crashing", tmp_path, 100_000, 4)
    assert proc.stdout is not None
    reported: list[str] = []
    for line in proc.stdout:
        if line.startswith("recorded"):
            reported.append(line.split()[1])
        if len(reported) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    reported += [line.split()[1] for line in rest.splitlines() if line.startswith("recorded ")]
    assert proc.returncode == -signal.SIGKILL
    stored = set(stored_ids(db_url))
    missing = [d for d in reported if d not in stored]
    assert not missing, f"{len(missing)} acknowledged decisions are not in the database"
    report = verify(make_engine(db_url))
    assert report.ok, report.findings
    # the chain can be continued after the crash
    with AuditWriter.open(db_url, chain_id="crashing", spool_dir=tmp_path) as writer:
        writer.record(admission_record(gdpr_denial()))
    assert verify(make_engine(db_url)).ok


def test_outage_spools_then_ships_in_order(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    writer = AuditWriter.open(own_postgres.url, chain_id="outage", spool_dir=tmp_path)
    recorded: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        n = 0
        while not stop.is_set():
            record = admission_record(gdpr_denial(n), n)
            try:
                writer.record(record)
            except BaseException as exc:
                errors.append(exc)
                return
            recorded.append(record.decision.decision_id)
            n += 1
            time.sleep(0.001)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    while len(recorded) < 200:
        time.sleep(0.01)
    own_postgres.stop()
    deadline = time.monotonic() + 20
    while writer.spool_size() < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.spool_size() >= 200, "rows did not go to the spool while the database was down"
    assert not writer.healthy()
    own_postgres.start()
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join()
    assert not errors, errors
    assert writer.flush(timeout=30), f"{writer.spool_size()} rows still spooled"
    assert writer.healthy()
    writer.close()
    stored = stored_ids(own_postgres.url)
    assert len(stored) == len(recorded) and set(stored) == set(recorded)
    report = verify(make_engine(own_postgres.url))
    assert report.ok, report.findings
    assert report.chains[0].rows == len(recorded)


def test_unwritable_spool_during_outage_is_an_error(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    """The database is down and the spool's disk is full (its file swapped for /dev/full, which answers
    every write with ENOSPC): the caller is told the decision is NOT recorded, and the writer reports
    itself failed (not ready, not live), not merely degraded."""
    writer = AuditWriter.open(own_postgres.url, chain_id="doomed", new_chain=True, spool_dir=tmp_path)
    writer.record(admission_record(gdpr_denial()))
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, writer._spool._fd)
    os.close(full)
    own_postgres.stop()
    with pytest.raises(AuditStoreError) as caught:
        writer.record(admission_record(gdpr_denial(1)))
    assert "NOT recorded" in str(caught.value) and "doomed.spool" in str(caught.value)
    status = writer.status()
    assert status.state == "failed" and "full" in (status.problem or ""), status
    writer.close()
