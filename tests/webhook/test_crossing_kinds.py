"""The crossing kinds read since issue #11 through the real HTTPS webhook (cluster eu-1): a rewrite from
/mutate, applied, passes /validate while the original is refused; a deny is refused with a remedy; an
allow passes. The objects are tests/fixtures/crossings/kinds (see tests/crossing_kinds.py)."""

from __future__ import annotations

import pytest
from crossing_kinds import Case, cases

from .harness import Server, apply, patch_of

CASES = cases()
REWRITES = [c for c in CASES if c.outcome == "rewrite"]
OTHERS = [c for c in CASES if c.outcome != "rewrite"]


@pytest.mark.parametrize("case", REWRITES, ids=[c.id for c in REWRITES])
def test_rewritten_object_passes_validate(server: Server, case: Case) -> None:
    mutated = server.mutate(case.body)["response"]
    assert mutated["allowed"] is True and mutated["auditAnnotations"]["outcome"] == "rewrite", mutated
    final = apply(case.body, patch_of(server.mutate(case.body)))
    assert final != case.body
    validated = server.validate(final)["response"]
    assert validated["allowed"] is True, validated
    assert patch_of(server.mutate(final)) == []  # reinvocation adds nothing
    refused = server.validate(case.body)["response"]
    assert refused["allowed"] is False and refused["status"]["code"] == 403


@pytest.mark.parametrize("case", OTHERS, ids=[c.id for c in OTHERS])
def test_allow_and_deny_through_validate(server: Server, case: Case) -> None:
    answer = server.validate(case.body)["response"]
    if case.outcome == "allow":
        assert answer["allowed"] is True, answer
    else:
        assert answer["allowed"] is False and answer["status"]["code"] == 403, answer
        assert "Remedy" in answer["status"]["message"]
        assert "patch" not in server.mutate(case.body)["response"]  # a deny is never rewritten
