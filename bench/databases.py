"""Audit databases for the benchmarks: a fresh, migrated PostgreSQL database on 127.0.0.1:5432 (dropped
afterwards) or a SQLite file in a temporary directory."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from policyengine.audit.migrate import upgrade

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@contextmanager
def fresh_database(backend: str = "postgresql") -> Iterator[str]:
    """The URL of an empty, migrated audit database of `backend` (postgresql or sqlite)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="pe-bench-") as tmp:
            url = f"sqlite:///{tmp}/audit.db"
            upgrade(url)
            yield url
        return
    name = f"pe_bench_{uuid.uuid4().hex}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_BASE + name
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
