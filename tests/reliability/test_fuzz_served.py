"""50,000 mixed bad requests against a served instance (PostgreSQL audit), with a fixed seed and a good
request every 25th: no answer is a 5xx, the log holds no traceback, every good request's decision has
its audit row, and `policyengine audit verify` passes afterwards.

The bad requests (tests/fuzz/hostile.py) cover AdmissionReviews with a hostile value at every path
(lone surrogates, NUL, huge and 4,300-digit integers, NaN, nesting 65 to 5,000 deep, wrong types),
missing fields, damaged bytes and wrong framing; routes for /v1/decide likewise; /v1/authz with hostile
headers, methods and paths; heads over the limits; and bytes that are not HTTP. Scale it up with
POLICYENGINE_FUZZ_SCALE (bench/fuzz.py runs it longer and prints the figures)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from fuzz.hostile import BadRequests
from fuzz.served import decision_ids, recorded, scale, serve, summary, tracebacks, verify
from fuzz.wire_client import run
from webhook.harness import ssl_context

SEED = 20261114
REQUESTS = 50_000


def test_fifty_thousand_bad_requests_cost_no_5xx_no_traceback_and_no_good_row(
    tmp_path: Path, pg_empty_url: str
) -> None:
    server = serve(tmp_path, pg_empty_url)
    try:
        requests = itertools.islice(BadRequests(SEED), REQUESTS * scale())
        tally = asyncio.run(run(server.port, ssl_context(server.ca), requests))
        assert server.alive()
    finally:
        server.stop()
    print(summary(tally))
    assert tally.requests == REQUESTS * scale()
    assert tally.server_errors == [], [(o.request.method, o.request.path, o.status) for o in tally.server_errors[:5]]
    assert tracebacks(server.log) == []
    ids = decision_ids(tally)
    assert len(ids) == REQUESTS * scale() // 25
    missing = set(ids) - recorded(pg_empty_url, ids)
    assert not missing, f"{len(missing)} good decisions have no audit row"
    verified = verify(pg_empty_url, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified:" in verified.stdout
