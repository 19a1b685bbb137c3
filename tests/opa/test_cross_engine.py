"""Both engines, the same decisions: every route of a grid over the default policy repo, every manifest
under examples/, and the Rego unit tests, through regorus and through OPA.

OPA runs behind the test OPA server (tests/opa_server.py, a stand-in for the OPA *server*); its
evaluation is the real OPA Go evaluator, so this is the oracle check of DESIGN.md §5.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from opa_server import OpaTestServer

from policyengine.admission.evaluate import evaluate_manifest
from policyengine.decide import Decider
from policyengine.decision import Decision
from policyengine.engine import Engine, make_engine
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.resources import default_policies
from policyengine.route import DataProfile, PiplVolume, Route

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

PROFILES = {
    "unregulated": DataProfile(),
    "gdpr": DataProfile(("personal",), ("EEA",), ("GDPR",)),
    "pipl-small": DataProfile(("personal",), ("CN",), ("PIPL",), PiplVolume(50_000, 0, False)),
    "pipl-sensitive": DataProfile(
        ("personal", "sensitive"), ("CN",), ("PIPL",), PiplVolume(250_000, 5_000, False)
    ),
    "pipl-undeclared": DataProfile(("personal",), ("CN",), ("PIPL",), None),
    "ccpa": DataProfile(("personal",), ("US-CA",), ("CCPA",)),
    "gdpr+ccpa": DataProfile(("personal",), ("EEA", "US-CA"), ("CCPA", "GDPR")),
}
SERVICES = ("shop/checkout", "analytics/events", "sandbox/demo")


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "decision_id"}
    if isinstance(value, list | tuple):
        return [_without_ids(v) for v in value]
    return value


def comparable(decision: Decision) -> dict[str, Any]:
    """What must be identical between engines (not the ids, the latency or the engine name)."""
    raw = decision.to_dict()
    for key in ("latency_us", "engine"):
        raw.pop(key)
    return dict(_without_ids(raw))


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(default_policies())


@pytest.fixture(scope="module")
def deciders(policy: LoadedPolicy) -> Iterator[dict[str, Decider]]:
    with OpaTestServer() as opa:
        yield {
            "regorus": Decider(policy, make_engine("regorus")),
            "opa": Decider(policy, make_engine("opa", opa_url=opa.url, timeout=5.0)),
        }


def routes(policy: LoadedPolicy, decider: Decider) -> Iterator[tuple[str, Route]]:
    clusters = [*policy.cluster_names(), "nowhere-1"]
    for name, profile in PROFILES.items():
        for service in SERVICES:
            for source in clusters:
                for destination in clusters:
                    for opt_out in (False, True) if "ccpa" in name else (False,):
                        route = Route(
                            service=service,
                            source=decider.endpoint(source, workload="shop/gateway"),
                            destination=decider.endpoint(destination, workload=service, data=profile),
                            via="cross-engine grid",
                            opt_out=opt_out,
                        )
                        yield f"{name} {service} {source}->{destination} opt_out={opt_out}", route


def test_every_route_of_the_grid_decides_the_same(policy: LoadedPolicy, deciders: dict[str, Decider]) -> None:
    seen = {"allow": 0, "deny": 0, "rewrite": 0}
    differences = []
    for label, route in routes(policy, deciders["regorus"]):
        embedded = deciders["regorus"].decide(route, now=NOW)
        remote = deciders["opa"].decide(route, now=NOW)
        assert remote.engine == "opa"
        assert not any(v.rule == "engine-error" for v in remote.violations), remote.violations
        seen[embedded.outcome.value] += 1
        if comparable(embedded) != comparable(remote):
            differences.append((label, comparable(embedded), comparable(remote)))
    assert not differences, differences[:3]
    assert seen["allow"] and seen["deny"], seen  # the grid exercises both answers


def route_scenarios() -> list[Any]:
    """The core's route scenarios (tests/scenarios/*.yaml, read by tests/rules/scenarios.py)."""
    sys.path.insert(0, str(ROOT / "tests" / "rules"))
    from scenarios import load_scenarios

    return [pytest.param(s, id=s.name) for s in load_scenarios()]


@pytest.mark.parametrize("scenario", route_scenarios())
def test_every_scenario_decides_the_same_and_as_expected(scenario: Any, deciders: dict[str, Decider]) -> None:
    route = scenario.route(deciders["regorus"])
    embedded = deciders["regorus"].decide(route, now=scenario.time)
    remote = deciders["opa"].decide(route, now=scenario.time)
    assert comparable(embedded) == comparable(remote)
    assert remote.outcome.value == scenario.expect["outcome"], remote.violations


def example_manifests() -> list[Any]:
    found = []
    for path in sorted((ROOT / "examples").rglob("*.y*ml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and doc.get("kind"):
                found.append(pytest.param(doc, id=f"{path.relative_to(ROOT)}#{index}"))
    return found


@pytest.mark.parametrize("manifest", example_manifests())
def test_every_example_manifest_decides_the_same(
    manifest: dict[str, Any], policy: LoadedPolicy, deciders: dict[str, Decider]
) -> None:
    from policyengine.admission.evaluate import EvaluationContext

    for cluster in policy.cluster_names():
        context = EvaluationContext(now=NOW)
        embedded = evaluate_manifest(manifest, deciders["regorus"], cluster, context)
        remote = evaluate_manifest(manifest, deciders["opa"], cluster, context)
        assert comparable(embedded) == comparable(remote), cluster


# Rego unit tests whose result differs between regorus and real OPA, with the cause (none now). Seen
# before: OPA 1.20 did not let `with data.policyengine.policy.index.transfers as {}` hide a mechanism
# the repo records for that service (regorus did), so the unit tests no longer rely on that mock: they
# use a service without records instead.
KNOWN_DIVERGENT: set[tuple[str, str]] = set()


def test_rego_unit_tests_pass_through_opa(
    policy: LoadedPolicy, engine_factory: Callable[[str], Engine]
) -> None:
    """What `policyengine test --engine opa` does: every module, tests included, run through OPA."""
    results = {}
    for kind in ("regorus", "opa"):
        engine = engine_factory(kind)
        engine.load(policy.modules, policy.data)
        results[kind] = {(r.package, r.name): (r.passed, r.error, r.file, r.row) for r in engine.run_tests()}
    assert len(results["opa"]) >= 20
    assert set(results["opa"]) == set(results["regorus"])
    differing = {k for k in results["opa"] if results["opa"][k] != results["regorus"][k]}
    if differing != KNOWN_DIVERGENT:
        print("regorus and OPA disagree on:", sorted(differing), "known:", sorted(KNOWN_DIVERGENT))
    assert differing == KNOWN_DIVERGENT
    assert all(r[0] for k, r in results["opa"].items() if k not in KNOWN_DIVERGENT)
