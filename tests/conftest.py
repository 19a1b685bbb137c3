"""Fixtures shared by every test area: the Rego engines, including OPA through the test OPA server.

`opa_server` is one test OPA REST server per test session (per xdist worker), on a free loopback port.
`pg_empty_url` is a fresh, empty PostgreSQL database on 127.0.0.1:5432 (`.ci/run` starts the server)
per test, with a unique name so tests run in parallel under xdist, dropped afterwards.
`engine_factory(kind)` builds a ready engine of either kind; each "opa" engine gets its own test OPA
server, so engines never see each other's policy revisions. Both are the real evaluators: regorus, and
OPA's Go evaluator behind the REST stand-in (see tests/opa_server.py for what is a stand-in).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from audit.own_postgres import PG_BIN, OwnPostgres
from opa_server import OpaTestServer
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from policyengine.audit.migrate import upgrade
from policyengine.engine import Engine, make_engine

ENGINE_KINDS = ("regorus", "opa")
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
def own_postgres() -> Iterator[OwnPostgres]:
    """A private, migrated PostgreSQL 15 cluster on a free port, to stop, start, freeze and thaw."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb is missing: install postgresql-15 (scripts/system-deps.sh)")
    server = OwnPostgres()
    server.start()
    upgrade(server.url)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaTestServer]:
    """A test OPA server for the whole session (per xdist worker)."""
    server = OpaTestServer().start()
    yield server
    server.close()


@pytest.fixture
def engine_factory() -> Iterator[Callable[[str], Engine]]:
    """`make(kind)`: a fresh engine of `kind` ("regorus" or "opa"), cleaned up after the test."""
    servers: list[OpaTestServer] = []

    def make(kind: str) -> Engine:
        if kind == "opa":
            server = OpaTestServer().start()
            servers.append(server)
            return make_engine("opa", opa_url=server.url, timeout=5.0)
        return make_engine(kind)

    yield make
    for server in servers:
        server.close()
