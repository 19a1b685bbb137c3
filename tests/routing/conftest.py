"""Fixtures of the routing filter tests: the default policy snapshot, and a fresh migrated PostgreSQL
database per test (127.0.0.1:5432, unique name, dropped afterwards) so tests can run under xdist."""

from __future__ import annotations

import pytest

from policyengine.audit.migrate import upgrade
from routing.parts import Snapshot, snapshot_of


@pytest.fixture(scope="session")
def default_snapshot() -> Snapshot:
    return snapshot_of()


@pytest.fixture
def pg_url(pg_empty_url: str) -> str:
    """A fresh migrated PostgreSQL database (tests/conftest.py drops it after the test)."""
    upgrade(pg_empty_url)
    return pg_empty_url
