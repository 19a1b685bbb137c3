"""A long fuzz run against a served instance: the reliability suite's mixed bad requests (tests/fuzz/
hostile.py, fixed seed, a good request every 25th) at a larger count, audit in a fresh PostgreSQL
database. Prints the status codes, the 5xx and the tracebacks (both must be 0), whether every good
request's decision has its audit row, `policyengine audit verify`, and the rate.

    .venv/bin/python bench/fuzz.py [--requests 100000] [--seed 20261114] [--connections 8]

The hypothesis and schemathesis parts of the suite scale with POLICYENGINE_FUZZ_SCALE:
    POLICYENGINE_FUZZ_SCALE=20 .venv/bin/pytest -s tests/fuzz
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from databases import fresh_database
from fuzz.hostile import BadRequests
from fuzz.served import decision_ids, recorded, serve, summary, tracebacks, verify
from fuzz.wire_client import run
from webhook.harness import ssl_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261114)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with fresh_database("postgresql") as audit:
        tmp = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
        server = serve(tmp, audit)
        try:
            started = time.perf_counter()
            requests = itertools.islice(BadRequests(args.seed), args.requests)
            tally = asyncio.run(run(server.port, ssl_context(server.ca), requests, args.connections))
            seconds = time.perf_counter() - started
            alive = server.alive()
        finally:
            server.stop()
        ids = decision_ids(tally)
        missing = len(set(ids) - recorded(audit, ids))
        verified = verify(audit, tmp)
    print(f"fuzz run, seed {args.seed}, {args.connections} connections, load average {os.getloadavg()[0]:.1f}")
    print(summary(tally))
    print(f"5xx answers: {len(tally.server_errors)}; tracebacks in the server log: {len(tracebacks(server.log))}")
    print(f"good decisions: {len(ids)}, without an audit row: {missing}; server alive at the end: {alive}")
    print(f"audit verify: exit {verified.returncode}: {verified.stdout.strip().splitlines()[-1:]}")
    print(f"{tally.requests / seconds:.0f} requests/s ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
