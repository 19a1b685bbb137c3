"""The crossing-kind fixtures (tests/fixtures/crossings/kinds): each object says, in its
`expect.policyengine.io/outcome` and `expect.policyengine.io/routes` annotations, what it must be
decided as in eu-1 under the default policy repo. Shared by the extractor tests and the webhook tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyengine.admission.manifests import read_manifests

KINDS = Path(__file__).resolve().parent / "fixtures" / "crossings" / "kinds"
OUTCOME = "expect.policyengine.io/outcome"
ROUTES = "expect.policyengine.io/routes"


@dataclass(frozen=True)
class Case:
    """One annotated object, the objects of its file (applied together) and what it must be decided as."""

    file: str
    body: Mapping[str, Any]
    together: tuple[Mapping[str, Any], ...]
    outcome: str
    routes: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.body['kind']}/{self.body['metadata']['name']}"


def cases() -> list[Case]:
    out = []
    for path in sorted(KINDS.glob("*.yaml")):
        manifests = read_manifests([path])
        assert manifests.problems == [], manifests.problems
        together = tuple(manifests.bodies)
        for body in together:
            annotations = body.get("metadata", {}).get("annotations", {})
            if OUTCOME in annotations:
                routes = frozenset(r for r in annotations[ROUTES].split(",") if r)
                out.append(Case(path.name, body, together, annotations[OUTCOME], routes))
    return out
