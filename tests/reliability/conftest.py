"""Fixtures of the reliability suite: audit databases a served instance writes to (SQLite, a fresh
PostgreSQL database on the shared server, or a private PostgreSQL cluster to stop and freeze)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from audit.own_postgres import PG_BIN, OwnPostgres

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


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb is missing: install postgresql-15 (scripts/system-deps.sh)")
    server = OwnPostgres()
    server.start()
    upgrade(server.url)
    try:
        yield server
    finally:
        server.destroy()
