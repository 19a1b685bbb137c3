"""The one interface every Rego evaluator implements (embedded regorus, OPA server)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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


_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\s*(?:if\b|\{|:=|=|contains\b)", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)


def package_of(source: str) -> str | None:
    """The package a Rego module declares, or None."""
    match = _PACKAGE.search(source)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class RegoTestCase:
    """A `test_*` rule found in a module: where it is and how to query it."""

    file: str
    package: str
    name: str
    row: int

    @property
    def query(self) -> str:
        return f"data.{self.package}.{self.name}"


def discover_tests(modules: Mapping[str, str]) -> Iterator[RegoTestCase]:
    """Every `test_*` rule of the modules, once per name and package, in file order (like `opa test`)."""
    for path, source in sorted(modules.items()):
        package = package_of(source)
        if package is None:
            continue
        seen: set[str] = set()
        for match in _TEST_RULE.finditer(source):
            name = match.group(1)
            if name not in seen:
                seen.add(name)
                yield RegoTestCase(path, package, name, source.count("\n", 0, match.start()) + 1)


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
