"""Route scenarios from tests/scenarios/*.yaml, turned into Routes over a loaded policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from policyengine.decide import Decider
from policyengine.route import Route

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
DEFAULT_TIME = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    name: str
    service: str
    source: str
    destination: str
    workload: str | None
    opt_out: bool
    time: datetime
    expect: dict[str, Any]

    def route(self, decider: Decider) -> Route:
        policy = decider.policy
        namespace, name = self.service.split("/", 1)
        source_data = None
        if self.workload:
            wns, wname = self.workload.split("/", 1)
            source_data = policy.classify(wns, wname)
        return Route(
            service=self.service,
            source=decider.endpoint(self.source, workload=self.workload, data=source_data),
            destination=decider.endpoint(
                self.destination, workload=self.service, data=policy.classify(namespace, name)
            ),
            via=f"scenario: {self.name}",
            opt_out=self.opt_out,
        )


def load_scenarios() -> list[Scenario]:
    scenarios: list[Scenario] = []
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8")):
            when = raw.get("time")
            scenarios.append(
                Scenario(
                    name=raw["name"],
                    service=raw["service"],
                    source=raw["from"],
                    destination=raw["to"],
                    workload=raw.get("workload"),
                    opt_out=bool(raw.get("opt_out", False)),
                    time=datetime.fromisoformat(when.replace("Z", "+00:00")) if when else DEFAULT_TIME,
                    expect=raw["expect"],
                )
            )
    return scenarios
