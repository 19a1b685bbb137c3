"""Audit test databases: a fresh, migrated SQLite file or PostgreSQL database per test.

PostgreSQL is the local server at 127.0.0.1:5432 (`.ci/run` starts it); each test gets its own
database `pe_test_<uuid>`, dropped afterwards, so tests can run in parallel under xdist.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from policyengine.audit.migrate import upgrade

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """A fresh, empty (unmigrated) PostgreSQL database, dropped after the test."""
    name = f"pe_test_{uuid.uuid4().hex}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required (run .ci/run or scripts/system-deps.sh): {exc}")
    try:
        yield PG_BASE + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
