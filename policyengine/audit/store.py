"""Connecting to the audit database: URL defaults, SQLite durability settings, the migration gate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from policyengine.audit.errors import AuditStoreError

DEFAULT_URL = "sqlite:///./var/audit.db"
URL_ENV = "POLICYENGINE_AUDIT_DB"


def resolve_url(url: str | None) -> str:
    """The database URL to use: the argument, else $POLICYENGINE_AUDIT_DB, else ./var/audit.db."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (verify, export) run beside the writer; synchronous=FULL fsyncs the WAL on every
    # commit, so a committed row survives power loss, not only a process crash.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str | None = None, *, connect_timeout: int = 5, pre_ping: bool = True) -> Engine:
    """An engine for `url` (SQLite: the parent directory is created, WAL + synchronous=FULL)."""
    resolved = resolve_url(url)
    try:
        parsed = make_url(resolved)
    except ArgumentError as exc:
        raise AuditStoreError(
            f"audit database URL {resolved!r} is not a valid URL: {exc}; use e.g. "
            f"'sqlite:///./var/audit.db' or 'postgresql+psycopg://postgres@127.0.0.1:5432/audit'"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        return create_engine(
            parsed,
            pool_pre_ping=pre_ping,
            pool_size=4,
            connect_args={"connect_timeout": connect_timeout},
        )
    raise AuditStoreError(
        f"audit database {display_url(resolved)}: backend {backend!r} is not supported; "
        f"use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
    )


def require_migrated(engine: Engine) -> None:
    """Raise AuditStoreError unless the database is at the newest migration."""
    from policyengine.audit.migrate import current_revision, head_revision

    url = display_url(engine.url.render_as_string(hide_password=False))
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise AuditStoreError(
            f"audit database {url} is unreachable: {_first_line(exc)}; check the URL and that the server is up"
        ) from exc
    head = head_revision()
    if current != head:
        state = "has no audit schema" if current is None else f"is at migration {current}"
        raise AuditStoreError(
            f"audit database {url} {state}, this version needs {head}: run `policyengine db upgrade --db {url}` first"
        )


def has_audit_tables(engine: Engine) -> bool:
    """True when the audit tables exist (whatever their migration)."""
    return "audit_decision" in inspect(engine).get_table_names()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def check_audit_store(url: str | None) -> bool:
    """Raise AuditStoreError for a bad URL or a database that answers but is not migrated; False (with
    nothing raised) when it does not answer now, True when it is ready."""
    engine = make_engine(url, connect_timeout=2, pre_ping=False)
    try:
        require_migrated(engine)
    except AuditStoreError as exc:
        if "unreachable" in str(exc):
            return False
        raise
    finally:
        engine.dispose()
    return True
