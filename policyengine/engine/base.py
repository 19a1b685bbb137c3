"""The one interface every Rego evaluator implements (embedded regorus, OPA server)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

DECISION_QUERY = "data.policyengine.decision"


class EngineError(Exception):
    """The engine could not evaluate (parse error, builtin error, unreachable server, ...).

    Callers turn it into a deny with this message as the reason; never into an allow.
    """


@dataclass(frozen=True, slots=True)
class RegoTestResult:
    """One `test_*` rule run, like a line of `opa test -v`."""

    file: str
    package: str
    name: str
    passed: bool
    error: str = ""
    duration_us: float = 0.0
    row: int = 0


class Engine(Protocol):
    """Load Rego modules and policy data once, then evaluate queries against many inputs."""

    name: str

    def load(self, modules: Mapping[str, str], data: Mapping[str, Any]) -> None:
        """Replace all modules and data. Raises EngineError (with file:line) on a bad module."""

    def evaluate(self, query: str, input_json: str) -> Any:
        """Evaluate a rule reference such as `data.policyengine.decision` for a JSON input.

        Returns the JSON value (sets as sorted lists); raises EngineError on any evaluation error or
        when the rule is undefined.
        """

    def run_tests(self) -> list[RegoTestResult]:
        """Run every `test_*` rule of the loaded modules."""
