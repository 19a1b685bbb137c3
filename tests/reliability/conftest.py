"""Fixtures of the reliability suite: audit databases a served instance writes to (SQLite, or a fresh
PostgreSQL database on the shared server; `own_postgres`, a private cluster to stop and freeze, comes
from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyengine.audit.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated audit database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = str(request.getfixturevalue("pg_empty_url"))
    upgrade(url)
    return url
