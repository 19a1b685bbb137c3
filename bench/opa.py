"""Benchmark: decision latency through OPA over loopback HTTP against the embedded regorus engine.

Both engines decide the same routes (a grid over the default policy repo) through `Decider.decide`,
one thread, after a warm-up; the OPA side is the test OPA REST server (tests/opa_server.py: a Python
HTTP stand-in for the OPA server, evaluation by the real OPA Go evaluator) in its own process on a
loopback port. Also measured in the same run: a bare `GET /health` round trip to that server (the HTTP
floor). Prints median/p95/p99 per engine and the ratios.

    .venv/bin/python bench/opa.py [--n 2000]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from policyengine.decide import Decider  # noqa: E402
from policyengine.engine import make_engine  # noqa: E402
from policyengine.policy import load_policy  # noqa: E402
from policyengine.resources import default_policies  # noqa: E402
from policyengine.route import DataProfile, PiplVolume, Route  # noqa: E402

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
PROFILES = [
    DataProfile(),
    DataProfile(("personal",), ("EEA",), ("GDPR",)),
    DataProfile(("personal", "sensitive"), ("CN",), ("PIPL",), PiplVolume(250_000, 5_000, False)),
    DataProfile(("personal",), ("US-CA",), ("CCPA",)),
]


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "opa_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        proc.kill()
        raise SystemExit(f"the test OPA server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def timed(n: int, warmup: int, call: Callable[[int], object]) -> list[float]:
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def summary(name: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p95 = ordered[int(len(ordered) * 0.95)]
    p99 = ordered[int(len(ordered) * 0.99)]
    print(
        f"{name:<38} median {median:9.1f} µs   p95 {p95:9.1f} µs   p99 {p99:9.1f} µs   {1e6 / median:8.0f}/s"
    )
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="timed decisions per engine")
    args = parser.parse_args()
    policy = load_policy(default_policies())
    proc, url = start_server()
    try:
        embedded = Decider(policy, make_engine("regorus"), cache_size=0)  # every decision evaluates
        started = time.perf_counter()
        remote = Decider(policy, make_engine("opa", opa_url=url, timeout=5.0), cache_size=0)
        load_ms = (time.perf_counter() - started) * 1e3
        clusters = policy.cluster_names()
        routes = [
            Route("shop/checkout", embedded.endpoint(s), embedded.endpoint(d, "shop/checkout", p))
            for s, d, p in itertools.product(clusters, clusters, PROFILES)
        ]
        for route in routes:  # same answers before timing anything
            a, b = embedded.decide(route, now=NOW), remote.decide(route, now=NOW)
            assert (a.outcome, a.violations) == (b.outcome, b.violations), route
        session = requests.Session()
        print(
            f"policy {policy.revision[:19]}…  {len(routes)} routes, n={args.n}, push to OPA {load_ms:.0f} ms"
        )
        floor = summary("HTTP floor: GET /health", timed(args.n, 200, lambda i: session.get(url + "/health")))
        local = summary(
            "regorus (embedded) decide",
            timed(args.n, 200, lambda i: embedded.decide(routes[i % len(routes)], now=NOW)),
        )
        over = summary(
            "OPA over loopback HTTP decide",
            timed(args.n, 200, lambda i: remote.decide(routes[i % len(routes)], now=NOW)),
        )
        print(f"ratio OPA / regorus (median): {over / local:.1f}x")
        print(f"OPA decide minus HTTP floor: {over - floor:.0f} µs (evaluation + JSON + revision check)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
