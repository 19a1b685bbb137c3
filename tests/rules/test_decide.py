"""The Decider: inputs built from the policy (never the caller), fail-closed engine errors, the RVM
entry point agreeing with the regorus interpreter, decision ids and digests."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import regorus
from scenarios import load_scenarios

from policyengine.decide import DECISION_QUERY, Decider, route_input
from policyengine.decision import Enforcement, Outcome
from policyengine.engine import EngineError
from policyengine.engine.regorus import RegorusEngine
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.resources import default_policies
from policyengine.route import DataProfile, Route

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_endpoint_location_comes_from_the_policy(decider: Decider) -> None:
    end = decider.endpoint("hk-1")
    assert (end.region, end.jurisdiction, end.entity) == ("azure/eastasia", "HK", "acme")
    unknown = decider.endpoint("mars-1")
    assert (unknown.region, unknown.jurisdiction) == (None, None)


def test_route_input_matches_the_contract(decider: Decider, policy: LoadedPolicy) -> None:
    route = Route(
        "shop/profile",
        decider.endpoint("cn-1"),
        decider.endpoint("hk-1", "shop/profile", policy.classify("shop", "profile")),
    )
    doc = route_input(route, NOW)
    assert doc["time"] == "2026-11-26T12:00:00Z"
    assert doc["route"]["namespace"] == "shop"
    dest = doc["route"]["destination"]
    assert dest["regimes"] == ["PIPL"]
    assert dest["pipl"] == {"volume": 250000, "sensitive_volume": 5000, "ciio": False}
    assert doc["route"]["source"]["regimes"] == []


class BrokenEngine:
    """An engine that fails every evaluation, as a crashed or misconfigured engine would."""

    name = "broken"

    def load(self, modules: object, data: object) -> None:
        return None

    def evaluate(self, query: str, input_json: str) -> object:
        raise EngineError("builtin error: boom")

    def run_tests(self) -> list[object]:
        return []


def test_engine_error_is_a_deny_with_the_reason(policy: LoadedPolicy) -> None:
    decider = Decider(policy, BrokenEngine())  # type: ignore[arg-type]
    route = Route("shop/catalog", decider.endpoint("eu-1"), decider.endpoint("eu-2"))
    decision = decider.decide(route, now=NOW)
    assert decision.outcome is Outcome.DENY and decision.enforcement is Enforcement.DENY
    assert decision.enforced
    assert "boom" in decision.violations[0].message
    assert decision.violations[0].rule == "engine-error"


def test_a_bad_module_never_goes_live(policy: LoadedPolicy) -> None:
    engine = RegorusEngine()
    engine.load(policy.modules, policy.data)
    broken = dict(policy.modules, **{"policies/rego/bad.rego": "package policyengine\nx := y +\n"})
    try:
        engine.load(broken, policy.data)
    except EngineError as exc:
        assert "policies/rego/bad.rego" in str(exc)
    else:
        raise AssertionError("a module that does not parse was accepted")
    answer = engine.evaluate("data.policyengine.lib.today", json.dumps({"time": "2026-01-02T00:00:00Z"}))
    assert answer == "2026-01-02"


@pytest.mark.parametrize(
    ("query", "words"),
    [("data.policyengine.lib.source_text", "undefined"), ("data.policyengine.no_such_rule", "not a valid rule path")],
)
def test_undefined_or_unknown_rule_is_an_error(decider: Decider, query: str, words: str) -> None:
    with pytest.raises(EngineError, match=words):
        decider.engine.evaluate(query, "{}")


def test_compiled_entry_point_agrees_with_the_interpreter(policy: LoadedPolicy, decider: Decider) -> None:
    """The decision runs on regorus's RVM; every scenario must give what the tree interpreter gives."""
    interpreter = RegorusEngine(compiled_entry_points=())
    interpreter.load(policy.modules, policy.data)
    for scenario in load_scenarios():
        payload = json.dumps(route_input(scenario.route(decider), scenario.time))
        assert decider.engine.evaluate(DECISION_QUERY, payload) == interpreter.evaluate(DECISION_QUERY, payload), (
            scenario.name
        )


def test_ids_are_unique_and_digests_follow_the_input(decider: Decider) -> None:
    route = Route("shop/catalog", decider.endpoint("eu-1"), decider.endpoint("eu-2"))
    a, b = decider.decide(route, now=NOW), decider.decide(route, now=NOW)
    assert a.decision_id != b.decision_id
    assert a.input_digest == b.input_digest
    later = decider.decide(route, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert later.input_digest != a.input_digest
    assert a.policy_revision == decider.policy.revision and a.engine == "regorus"


def test_threads_each_get_their_own_engine(decider: Decider) -> None:
    """regorus engines are unsendable: deciding from many threads must work and agree."""
    route = Route(
        "shop/checkout",
        decider.endpoint("eu-1"),
        decider.endpoint("us-ca-1", "shop/checkout", DataProfile(("personal",), ("EEA",), ("GDPR",))),
    )
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                results.append(decider.decide(route, now=NOW).outcome.value)
        except BaseException as exc:  # a panic is a BaseException
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(results) == {"rewrite"} and len(results) == 80


def test_a_route_decided_again_comes_from_the_cache_with_its_own_id(policy: LoadedPolicy) -> None:
    decider = Decider(policy, RegorusEngine())
    route = Route(
        "shop/checkout",
        decider.endpoint("eu-1"),
        decider.endpoint("us-1", "shop/checkout", policy.classify("shop", "checkout")),
    )
    first = decider.decide(route, now=NOW)
    again = decider.decide(route, now=NOW.replace(hour=18))  # same day: the rules only read the date
    assert decider.cache.hits == 1 and decider.cache.misses == 1
    assert again.decision_id != first.decision_id
    assert again.input_digest != first.input_digest  # the digest covers the full time
    assert (again.outcome, again.violations, again.permitted_clusters) == (
        first.outcome,
        first.violations,
        first.permitted_clusters,
    )
    next_day = decider.decide(route, now=datetime(2026, 9, 1, tzinfo=UTC))  # before the SCC expired
    assert decider.cache.misses == 2
    assert next_day.outcome is Outcome.ALLOW and first.outcome is Outcome.REWRITE


VIA_FREEZE = """package policyengine

# Routes made by a frozen object may not be created (reads `via`, which the routing keys do not cover).
regime_violations contains v if {
	startswith(input.route.via, "frozen ")
	v := {
		"regime": "RESIDENCY",
		"rule": "frozen-object",
		"article": "acme change freeze",
		"message": sprintf("%s is frozen", [input.route.via]),
		"remedy": "wait for the freeze to end",
		"cluster": input.route.destination.cluster,
		"enforcement": "deny",
	}
}
"""


def test_routes_that_differ_only_in_via_share_an_answer_unless_a_module_reads_it(
    policy: LoadedPolicy, tmp_path: Path
) -> None:
    """`check` over many objects naming the same services: one evaluation, not one per object, since
    the bundled rules never read `via`. A custom module that does keeps `via` in the key (exact)."""
    decider = Decider(policy, RegorusEngine())
    assert not decider.cache_by_via

    def route(d: Decider, via: str) -> Route:
        data = d.policy.classify("shop", "checkout")
        return Route("shop/checkout", d.endpoint("eu-1"), d.endpoint("us-1", "shop/checkout", data), via=via)

    first = decider.decide(route(decider, "HTTPRoute shop/a-1 spec.rules[0]"), now=NOW)
    second = decider.decide(route(decider, "frozen HTTPRoute shop/a-2"), now=NOW)
    assert decider.cache.misses == 1 and decider.cache.hits == 1
    assert (second.outcome, second.violations) == (first.outcome, first.violations)
    assert second.input_digest != first.input_digest  # the digest still covers the whole input

    repo = tmp_path / "policies"
    shutil.copytree(default_policies(), repo)
    (repo / "rego").mkdir(exist_ok=True)
    (repo / "rego" / "via_freeze.rego").write_text(VIA_FREEZE)
    strict = Decider(load_policy(repo), RegorusEngine())
    assert strict.cache_by_via
    plain = strict.decide(route(strict, "HTTPRoute shop/a-1 spec.rules[0]"), now=NOW)
    frozen = strict.decide(route(strict, "frozen HTTPRoute shop/a-2"), now=NOW)
    assert strict.cache.misses == 2
    assert not any(v.rule == "frozen-object" for v in plain.violations)
    assert any(v.rule == "frozen-object" for v in frozen.violations)


def test_cache_keys_on_the_full_time_when_a_module_reads_it(policy: LoadedPolicy) -> None:
    from policyengine.decision_cache import reads_only_the_date

    modules = {"a.rego": "package x\n# input.time is only a date here\nd := substring(input.time, 0, 10)\n"}
    assert reads_only_the_date(modules)
    assert not reads_only_the_date({"b.rego": "package x\nhour := time.clock(time.parse_rfc3339_ns(input.time))\n"})
    assert not reads_only_the_date({"c.rego": "package x\nwhole := input\n"})


def test_the_cache_is_bounded(policy: LoadedPolicy) -> None:
    decider = Decider(policy, RegorusEngine(), cache_size=3)
    for cluster in ("eu-1", "eu-2", "us-1", "cn-1", "hk-1"):
        decider.decide(Route("shop/catalog", decider.endpoint("eu-1"), decider.endpoint(cluster)), now=NOW)
    assert len(decider.cache) == 3 and decider.cache.misses == 5


def test_the_input_sent_is_the_contract_document(decider: Decider, policy: LoadedPolicy) -> None:
    """The fast path that assembles the input JSON sends exactly `route_input`'s document."""
    import hashlib

    route = Route(
        "shop/profile",
        decider.endpoint("cn-1", "shop/ingest", policy.classify("shop", "checkout")),
        decider.endpoint("hk-1", "shop/profile", policy.classify("shop", "profile")),
        via='HTTPRoute shop/x "quoted" é',
        opt_out=True,
    )
    expected = json.dumps(route_input(route, NOW), separators=(",", ":"))
    decision = decider.decide(route, now=NOW)
    assert decision.input_digest == "sha256:" + hashlib.sha256(expected.encode()).hexdigest()


def test_decision_ids_are_version_4_uuids_as_the_uuid_module_writes_them() -> None:
    """`new_decision_id` formats the PRNG's bits itself; the text must be what uuid.UUID would make."""
    import random
    import uuid

    from policyengine.decide import new_decision_id

    state = random.getstate()
    try:
        for seed in range(200):
            random.seed(seed)
            ours = new_decision_id()
            random.seed(seed)
            assert ours == str(uuid.UUID(int=random.getrandbits(128), version=4))
            parsed = uuid.UUID(ours)
            assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    finally:
        random.setstate(state)  # other tests' ids stay unpredictable


# A decision entry point that takes more than the RVM's 25,000 instructions: a comprehension over
# 20,000 numbers (the bundled rules stay far below it since they read the index's sets).
_LONG_DECISION = """package policyengine

decision := {"allowed": count([x | some x in numbers.range(1, 20000); x % 7 == 0]) == 2857, "violations": []}
"""


def test_an_entry_point_over_the_vms_instruction_budget_is_evaluated_by_the_interpreter() -> None:
    """regorus's compiled VM stops at a fixed instruction budget; the engine then evaluates the same
    query with its interpreter instead of failing (a custom module may go that far)."""
    program = regorus.Program.compile_from_modules("{}", [("long.rego", _LONG_DECISION)], [DECISION_QUERY])
    vm = regorus.Rvm()
    vm.load_program(program)
    vm.set_data_json("{}")
    vm.set_input_json("{}")
    with pytest.raises(BaseException, match="instruction limit"):  # the VM alone cannot
        vm.execute_entry_point(DECISION_QUERY)
    engine = RegorusEngine()
    engine.load({"long.rego": _LONG_DECISION}, {})
    assert engine.evaluate(DECISION_QUERY, "{}") == {"allowed": True, "violations": []}
