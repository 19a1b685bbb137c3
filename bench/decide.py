"""Decision benchmark: decisions per second and p50/p99 latency over the example's routes.

The routes are the ones `policyengine check examples/ --cluster eu-1` decides (captured from the
extractors). Each figure is printed with its ratio to a floor measured in the same run on the same
engine: a trivial rule (`allow if input.x == 1`) evaluated through the same engine API. Also shown: the
same decisions on regorus's tree interpreter instead of its compiled RVM entry point, and with the
Decider's answer cache on (the routes repeat, so this is the cost of a route decided before). The
target (p50 <= 100 µs) is judged on the uncached figure.

    .venv/bin/python bench/decide.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.manifests import read_manifests
from policyengine.decide import Decider
from policyengine.decision import Decision
from policyengine.engine.regorus import RegorusEngine
from policyengine.policy import load_policy
from policyengine.resources import default_policies
from policyengine.route import Route

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FLOOR_QUERY = "data.bench.allow"
ROUNDS = 8
FLOOR_MODULE = "package bench\n\nallow if input.x == 1\n"


class RouteRecorder:
    """A Decider stand-in for evaluate_manifest that remembers every route it is asked about."""

    def __init__(self, decider: Decider) -> None:
        self.inner = decider
        self.policy = decider.policy
        self.engine = decider.engine
        self.routes: list[Route] = []

    def endpoint(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.endpoint(*args, **kwargs)

    def decide(self, route: Route, *, now: datetime | None = None) -> Decision:
        self.routes.append(route)
        return self.inner.decide(route, now=now)


def example_routes(decider: Decider) -> list[Route]:
    manifests = read_manifests([ROOT / "examples" / "shop"])
    recorder = RouteRecorder(decider)
    context = EvaluationContext(manifests=manifests.bodies, now=NOW)
    for doc in manifests.documents:
        evaluate_manifest(doc.body, recorder, "eu-1", context)  # type: ignore[arg-type]
    return recorder.routes


def measure(call: Callable[[], object], rounds: int) -> list[float]:
    """Latency of each call in microseconds, after a warm-up."""
    for _ in range(min(100, rounds)):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1], 1),
        "per_second": round(1e6 / statistics.fmean(ordered)),
    }


def cycle(items: list[Any]) -> Callable[[], Any]:
    state = {"i": 0}

    def next_item() -> Any:
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]

    return next_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()

    policy = load_policy(default_policies())
    decider = Decider(policy, RegorusEngine(), cache_size=0)  # every decision evaluates the rules
    cached = Decider(policy, RegorusEngine())
    routes = example_routes(decider)
    next_route = cycle(routes)

    floor_engine = RegorusEngine(compiled_entry_points=(FLOOR_QUERY,))
    floor_engine.load({"bench.rego": FLOOR_MODULE}, {})
    floor_input = json.dumps({"x": 1})
    interpreter = Decider(policy, RegorusEngine(compiled_entry_points=()), cache_size=0)

    calls: dict[str, tuple[Callable[[], object], int]] = {
        "floor: trivial rule, same engine API": (lambda: floor_engine.evaluate(FLOOR_QUERY, floor_input), 1),
        "decide(route), compiled RVM, no cache": (lambda: decider.decide(next_route(), now=NOW), 1),
        "decide(route), answer cache on (default)": (lambda: cached.decide(next_route(), now=NOW), 1),
        "decide(route), tree interpreter": (lambda: interpreter.decide(next_route(), now=NOW), 5),
    }
    # Rounds interleave the measures, so a noisy moment of this shared machine hits all of them alike.
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, (call, thin) in calls.items():
            samples[name].extend(measure(call, max(200, args.rounds // ROUNDS // thin)))
    results = {name: summary(values) for name, values in samples.items()}
    floor = results["floor: trivial rule, same engine API"]["p50_us"]
    print(f"{len(routes)} example routes (examples/shop, --cluster eu-1), {args.rounds} decisions per row")
    print(f"{'measure':42} {'p50 µs':>8} {'p99 µs':>8} {'per s':>8} {'p50 / floor':>12}")
    for name, r in results.items():
        print(f"{name:42} {r['p50_us']:8.1f} {r['p99_us']:8.1f} {r['per_second']:8d} {r['p50_us'] / floor:11.1f}x")
    target = results["decide(route), compiled RVM, no cache"]["p50_us"]
    print(f"target p50 <= 100 µs per decision: {'met' if target <= 100 else 'NOT met'} ({target} µs)")
    print(json.dumps({"bench": "decide", "routes": len(routes), "results": results}))


if __name__ == "__main__":
    main()
