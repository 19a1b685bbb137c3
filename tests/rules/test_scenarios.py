"""Every route scenario (tests/scenarios/*.yaml) gets its expected decision from the embedded engine."""

from __future__ import annotations

import pytest
from scenarios import Scenario, load_scenarios

from policyengine.decide import Decider
from policyengine.decision import Outcome

SCENARIOS = load_scenarios()


def test_there_are_scenarios_for_every_regime() -> None:
    services = {s.service for s in SCENARIOS}
    assert {"shop/checkout", "shop/profile", "shop/billing", "shop/catalog"} <= services
    assert len(SCENARIOS) >= 20


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(decider: Decider, scenario: Scenario) -> None:
    decision = decider.decide(scenario.route(decider), now=scenario.time)
    expect = scenario.expect
    assert decision.outcome is Outcome(expect["outcome"]), decision.violations
    assert {v.rule for v in decision.violations} == set(expect.get("rules", [])), decision.violations
    if "enforcement" in expect:
        assert decision.enforcement.value == expect["enforcement"]
    if "permitted" in expect:
        assert list(decision.permitted_clusters) == expect["permitted"]
    if "articles" in expect:
        assert sorted({v.article for v in decision.violations}) == sorted(expect["articles"])
    if "remedy" in expect:
        assert all(expect["remedy"] in v.remedy for v in decision.violations), decision.violations
    for violation in decision.violations:
        assert violation.article and violation.remedy and violation.message
        assert violation.cluster in (scenario.source, scenario.destination)
