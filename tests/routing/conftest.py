"""Fixtures of the routing filter tests: the default policy snapshot, and a fresh migrated PostgreSQL
database per test (127.0.0.1:5432, unique name, dropped afterwards) so tests can run under xdist."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from policyengine.audit.migrate import upgrade
from routing.parts import Snapshot, snapshot_of

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@pytest.fixture(scope="session")
def default_snapshot() -> Snapshot:
    return snapshot_of()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh migrated PostgreSQL database, dropped after the test."""
    name = f"pe_routing_{uuid.uuid4().hex}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required (run scripts/system-deps.sh): {exc}")
    try:
        upgrade(PG_BASE + name)
        yield PG_BASE + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
