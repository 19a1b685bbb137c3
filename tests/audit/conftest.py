"""Audit test databases: a fresh, migrated SQLite file or PostgreSQL database per test.

PostgreSQL databases come from `pg_empty_url` in tests/conftest.py (a fresh `pe_test_<uuid>` on
127.0.0.1:5432 per test, dropped afterwards).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from policyengine.audit.migrate import upgrade


@pytest.fixture
def sqlite_empty_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each backend."""
    fixture = "sqlite_empty_url" if request.param == "sqlite" else "pg_empty_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def db_url(empty_url: str) -> str:
    """A migrated database of each backend."""
    upgrade(empty_url)
    return empty_url


@pytest.fixture
def pg_url(pg_empty_url: str) -> str:
    """A migrated PostgreSQL database."""
    upgrade(pg_empty_url)
    return pg_empty_url
