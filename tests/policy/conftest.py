"""Fixtures for the policy repo tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_fixtures import copy_repo


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A private copy of the default policy repo in tmp_path."""
    return copy_repo(tmp_path)
