"""Helpers for the policy repo tests: a private copy of the default repo to break, and problem lookups."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from policyengine.policy import PolicyError, Problem, load_policy
from policyengine.resources import default_policies

DEFAULT_REPO = default_policies()
TODAY = dt.date(2026, 11, 26)  # expiry checks are dated, so the tests do not change with the calendar


def copy_repo(tmp_path: Path) -> Path:
    """A copy of policies/ (YAML files only) in tmp_path that a test may edit."""
    target = tmp_path / "policies"
    target.mkdir()
    for path in DEFAULT_REPO.glob("*.yaml"):
        shutil.copy(path, target / path.name)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first `old` with `new` in the file; returns the 1-based line where `new` starts."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    start = text.index(old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[:start].count("\n") + 1


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first occurrence of `needle` in the file."""
    text = path.read_text(encoding="utf-8")
    assert needle in text, f"{needle!r} not in {path.name}"
    return text[: text.index(needle)].count("\n") + 1


def errors_of(directory: Path) -> list[Problem]:
    """Load the repo expecting failure; returns the error problems."""
    with pytest.raises(PolicyError) as caught:
        load_policy(directory, today=TODAY, bundled_rego=None)
    return caught.value.errors


def find(problems: list[Problem], *words: str) -> Problem:
    """The one problem whose message contains every word (fails listing all problems otherwise)."""
    hits = [p for p in problems if all(w in p.message for w in words)]
    assert len(hits) == 1, f"expected one problem with {words}, got:\n" + "\n".join(map(str, problems))
    return hits[0]
