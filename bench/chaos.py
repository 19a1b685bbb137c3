"""Chaos runs against a served instance, longer than the reliability suite, printing figures.

Starts a private PostgreSQL 15 (initdb/pg_ctl, a free port) and `policyengine serve` writing its audit
trail there, drives /validate from a few client threads, and in each cycle: stops the database, freezes
it (SIGSTOP), and kill -9s the server during a stop and starts a new one (a new chain) while the
database is still down. After every fault the database comes back. At the end it prints, per fault:
answers, how many were decided (not the failure answer), p50/p99/max latency; and overall: decision
ids given out, rows lost (given out but not in the database), and whether `audit verify` passes.

    .venv/bin/python bench/chaos.py [--cycles 2] [--seconds 8] [--clients 4]

Uses the test suite's helpers (tests/audit/own_postgres.py, tests/reliability/served.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from audit.own_postgres import OwnPostgres
from reliability.served import Served, httproute_review, lost, serve, verified

from policyengine.audit.migrate import upgrade


def drive(server: Served, seconds: float, clients: int, start: int) -> list[tuple[float, bool]]:
    """(latency, decided) of every answer from `clients` threads for `seconds`."""
    answers: list[tuple[float, bool]] = []
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        n = 0
        while time.monotonic() < stop:
            began = time.monotonic()
            try:
                answer = server.validate(httproute_review(start + k * 1_000_000 + n), timeout=15)
                decided = answer.status_code == 200 and "auditAnnotations" in answer.json()["response"]
            except Exception:
                decided = False
            answers.append((time.monotonic() - began, decided))
            n += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def line(label: str, answers: list[tuple[float, bool]]) -> str:
    times = sorted(t for t, _ in answers) or [0.0]
    decided = sum(ok for _, ok in answers)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return (
        f"{label:<28}{len(answers):>8}{decided:>9}{statistics.median(times) * 1000:>10.1f}"
        f"{p99 * 1000:>10.1f}{times[-1] * 1000:>10.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    database = OwnPostgres()
    database.start()
    upgrade(database.url)
    tmp = Path(tempfile.mkdtemp(prefix="pe-chaos-"))
    spool = tmp / "spool"
    given: list[str] = []
    rows: list[str] = []
    n = 0
    server = serve(tmp, database.url, spool, name="chaos-0")
    try:
        for cycle in range(args.cycles):
            for fault in ("stopped", "frozen", "kill -9 + restart"):
                n += 10_000_000
                if fault == "stopped":
                    database.stop()
                elif fault == "frozen":
                    database.freeze()
                else:
                    database.stop()
                answers = drive(server, args.seconds, args.clients, n)
                if fault == "kill -9 + restart":
                    given += server.given
                    server.kill()
                    server = serve(tmp, database.url, spool, name=f"chaos-{cycle}-restart")
                    answers += drive(server, args.seconds / 2, args.clients, n + 5_000_000)
                if fault == "frozen":
                    database.thaw()
                else:
                    database.start()
                rows.append(line(f"cycle {cycle + 1}: {fault}", answers))
                after = drive(server, args.seconds / 2, args.clients, n + 9_000_000)
                rows.append(line(f"cycle {cycle + 1}: after", after))
    finally:
        given += server.given
        server.stop()
    missing = lost(database.url, given, within=120)
    total = verified(database.url)
    print(f"# bench/chaos.py: {args.cycles} cycle(s), {args.seconds:g} s per fault, {args.clients} clients")
    print(f"{'phase':<28}{'answers':>8}{'decided':>9}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    print("\n".join(rows))
    print(f"decision ids given out: {len(given)}; lost: {len(missing)}; rows in the database: {total}; verify: ok")
    database.destroy()


if __name__ == "__main__":
    main()
