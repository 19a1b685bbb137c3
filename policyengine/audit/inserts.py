"""Writing chained rows straight through the database driver: COPY or a multi-row INSERT on
PostgreSQL (sync and asyncio connections), one prepared INSERT per row on SQLite, and the idempotent
INSERT that ships a spool (rows already present are skipped)."""

from __future__ import annotations

import functools
from typing import Any

import psycopg
from sqlalchemy import Connection

from policyengine.audit.chain import as_utc
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.schema import audit_decision

_COPY_COLUMNS = tuple(c.name for c in audit_decision.columns if c.name != "id")
_COPY_SQL = "COPY audit_decision ({}) FROM STDIN".format(", ".join(f'"{name}"' for name in _COPY_COLUMNS))


# Up to this many rows a group is one multi-row INSERT (one round trip); a COPY above (measured: the
# INSERT is faster to 16 rows, COPY from 32).
SMALL_GROUP = 16
_PG_INSERT = "INSERT INTO audit_decision ({}) VALUES".format(", ".join(f'"{name}"' for name in _COPY_COLUMNS))
_SQLITE_INSERT = "INSERT INTO audit_decision ({}) VALUES ({})".format(
    ", ".join(f'"{name}"' for name in _COPY_COLUMNS), ", ".join("?" for _ in _COPY_COLUMNS)
)
_SQLITE_SHIP = _SQLITE_INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
_PG_SHIP_SUFFIX = " ON CONFLICT (chain_id, seq) DO NOTHING"
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's SQLite DateTime stores a (UTC) time


def _sqlite_value(name: str, value: Any) -> Any:
    if name == "time":
        return as_utc(value).strftime(_SQLITE_TIME)
    if name == "dry_run":
        return 1 if value else 0
    return value


def insert_rows(connection: Connection, rows: list[dict[str, Any]], *, ignore_duplicates: bool = False) -> None:
    """Insert a group of chained rows in the caller's transaction, straight through the driver: COPY on
    PostgreSQL, one prepared INSERT run for every row on SQLite (values stored exactly as SQLAlchemy
    stores them, so the models read them back); `ignore_duplicates` skips rows already there (SQLite)."""
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - SQLAlchemy always has one inside a transaction
        raise AuditStoreError("no database connection inside the audit transaction")
    if connection.dialect.name == "sqlite":
        driver.executemany(
            _SQLITE_SHIP if ignore_duplicates else _SQLITE_INSERT,
            [tuple(_sqlite_value(name, row[name]) for name in _COPY_COLUMNS) for row in rows],
        )
        return
    if connection.dialect.name != "postgresql":
        connection.execute(audit_decision.insert(), rows)
        return
    try:
        write_postgres(driver, rows)
    except psycopg.OperationalError:
        connection.invalidate()  # the server went away: never reuse this connection
        raise


def write_postgres(driver: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> None:
    """One multi-row INSERT for a small group (one round trip), a COPY for a bigger one."""
    if len(rows) <= SMALL_GROUP:
        with psycopg.RawCursor(driver) as raw:
            raw.execute(*small_group_insert(rows))
        return
    with driver.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
        for row in rows:
            copy.write_row([row[name] for name in _COPY_COLUMNS])


async def write_postgres_async(driver: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]]) -> None:
    """`write_postgres` on an asyncio connection."""
    if len(rows) <= SMALL_GROUP:
        async with psycopg.AsyncRawCursor(driver) as raw:
            await raw.execute(*small_group_insert(rows))
        return
    async with driver.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
        for row in rows:
            await copy.write_row([row[name] for name in _COPY_COLUMNS])


def small_group_insert(rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The multi-row INSERT for a few rows, with PostgreSQL's own `$n` placeholders, and its parameters.

    Run through a raw cursor, the SQL goes to the server as written: psycopg's `%s` conversion parses the
    query on every call once it has more than 50 parameters (two rows), about 40 µs a row here."""
    return _insert_sql(len(rows)), [row[name] for row in rows for name in _COPY_COLUMNS]


@functools.cache
def _insert_sql(rows: int) -> str:
    width = len(_COPY_COLUMNS)
    values = ("(" + ", ".join(f"${row * width + column + 1}" for column in range(width)) + ")" for row in range(rows))
    return f"{_PG_INSERT} {', '.join(values)}"


def ship_sql(rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """`small_group_insert` of any number of rows that skips those already present (shipping a spool)."""
    return _insert_sql(len(rows)) + _PG_SHIP_SUFFIX, [row[name] for row in rows for name in _COPY_COLUMNS]
