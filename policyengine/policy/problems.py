"""Problems found in a policy repo: each one says where (file:line), what is wrong and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of the loader. `line` is 1-based; None when the problem is about the whole file."""

    file: str
    line: int | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    @property
    def location(self) -> str:
        """`file:line`, or `file` for a problem with the whole file."""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "message": self.message, "severity": self.severity}


class PolicyError(Exception):
    """The policy repo has errors. `problems` lists every one (errors first, then warnings)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def __str__(self) -> str:
        return "\n".join(
            f"{p.location}: warning: {p.message}" if p.severity == "warning" else str(p)
            for p in self.problems
        )
