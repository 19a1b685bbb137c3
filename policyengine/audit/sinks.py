"""Where a committer writes chained rows: PostgreSQL over an asyncio connection, every call bounded by a
timeout, or SQLite; and what each failure means.

A failure is one of three things, and only the first is an outage:

- `Outage`: the database cannot be reached or does not answer in time (connection refused or lost, a
  frozen server, a timeout, a server shutting down, a missing or older schema). The rows go to the spool.
- `Poison`: the database refused these rows for their data (SQLSTATE classes 22 and 23, and 54). Only
  the rows are at fault; the connection and the database are fine.
- `ForkedChain`: the (chain_id, seq) exists already: another writer uses the same chain_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from policyengine.audit.inserts import insert_rows, ship_sql, write_postgres_async
from policyengine.audit.schema import audit_checkpoint, audit_decision

DEFAULT_TIMEOUT_S = 1.0  # connect, and each statement: a frozen database is an outage after this long


class Outage(Exception):
    """The database cannot take rows now (the message says why)."""


class Poison(Exception):
    """The database refused the rows for their data."""


class ForkedChain(Exception):
    """The database holds this chain's seq already: two writers use one chain_id."""


_POISON_CLASSES = ("22", "23", "54")
_ADAPTATION = (UnicodeError, ValueError, TypeError, OverflowError)  # the driver could not send a value


def postgres_fault(exc: BaseException) -> Exception:
    """What a PostgreSQL failure means (`Outage`, `Poison`, `ForkedChain`)."""
    if isinstance(exc, TimeoutError):
        return Outage("no answer in time (a frozen or overloaded server)")
    state = getattr(exc, "sqlstate", None) or ""
    if state == "23505":
        return ForkedChain(_first_line(exc))
    if isinstance(exc, psycopg.DataError) or state[:2] in _POISON_CLASSES:
        return Poison(f"{state or type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, psycopg.Error | OSError):
        return Outage(_first_line(exc))
    if isinstance(exc, _ADAPTATION):
        return Poison(f"{type(exc).__name__}: {exc}")
    return Outage(f"{type(exc).__name__}: {_first_line(exc)}")


def sqlite_fault(exc: BaseException) -> Exception:
    """What a SQLite failure means (`Outage`, `Poison`, `ForkedChain`)."""
    if isinstance(exc, IntegrityError) and "UNIQUE" in str(exc.orig):
        return ForkedChain(_first_line(exc))
    if isinstance(exc, IntegrityError | sqlite3.DataError | sqlite3.InterfaceError | sqlite3.IntegrityError):
        return Poison(f"{type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, DBAPIError) and isinstance(exc.orig, sqlite3.DataError | sqlite3.InterfaceError):
        return Poison(f"{type(exc.orig).__name__}: {_first_line(exc)}")
    if isinstance(exc, _ADAPTATION):
        return Poison(f"{type(exc).__name__}: {exc}")
    return Outage(_first_line(exc))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Sink(Protocol):
    """What a committer needs of a database."""

    async def insert(self, rows: list[dict[str, Any]]) -> None: ...  # all or none; raises a fault
    async def ship(self, rows: list[dict[str, Any]]) -> None: ...  # idempotent: rows present are skipped
    async def head(self, chain_id: str) -> tuple[int, str] | None: ...  # the chain's last (seq, hash)
    async def ping(self) -> None: ...  # raises Outage unless the database answers
    async def close(self) -> None: ...


class PostgresSink:
    """PostgreSQL over one asyncio autocommit connection of its own, reconnected after an outage.

    Each connect and each statement is bounded by `timeout_s` on the client side (a SIGSTOPped server
    never answers, and TCP still looks healthy), and by `statement_timeout` on the server side. A new
    connection first checks that the schema is at `revision`."""

    def __init__(self, conninfo: str, revision: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._conninfo = conninfo
        self._revision = revision
        self.timeout_s = timeout_s
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=max(2, int(self.timeout_s + 0.999)),
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            tcp_user_timeout=int(self.timeout_s * 1000) + 1000,
        )
        try:
            await connection.execute(f"SET statement_timeout = {int(self.timeout_s * 1000)}")
            found = await (await connection.execute("SELECT version_num FROM alembic_version")).fetchone()
        except psycopg.errors.UndefinedTable:
            found = None
        except BaseException:
            await _close_quietly(connection)
            raise
        if self._revision is not None and (found is None or found[0] != self._revision):
            await _close_quietly(connection)
            state = "has no audit schema" if found is None else f"is at migration {found[0]}"
            raise Outage(f"the database {state}, this version needs {self._revision}: run `policyengine db upgrade`")
        return connection

    async def _run(self, statement: Any) -> Any:
        try:
            if self._connection is None or self._connection.closed:
                async with asyncio.timeout(self.timeout_s):
                    self._connection = await self._connect()
            return await self._bounded(self._connection, statement(self._connection))
        except (Outage, Poison, ForkedChain):
            raise
        except Exception as exc:
            fault = postgres_fault(exc)
            if isinstance(fault, Outage):
                await self.close()
            raise fault from exc

    async def _bounded(self, connection: psycopg.AsyncConnection[Any], work: Any) -> Any:
        """Await `work` for at most `timeout_s`, watched by a timer rather than run in a task of its own
        (awaited right here, a statement goes out in the very step that asks for it). Past the time the
        connection's socket is shut down rather than the statement cancelled: psycopg would ask the
        (frozen) server to cancel it and wait for that. The shut socket makes psycopg fail at once; if it
        still has not returned half a second later, it is cancelled."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        state = {"cut": False, "cancelled": False}
        handles: list[asyncio.TimerHandle] = []

        def cancel() -> None:
            state["cancelled"] = True
            if task is not None:
                task.cancel()

        def cut_off() -> None:
            state["cut"] = True
            self._connection = None
            with contextlib.suppress(OSError):
                socket.socket(fileno=os.dup(connection.pgconn.socket)).shutdown(socket.SHUT_RDWR)
            handles.append(loop.call_later(0.5, cancel))

        handles.append(loop.call_later(self.timeout_s, cut_off))
        try:
            return await work
        except asyncio.CancelledError:
            if not state["cancelled"] or task is None or task.uncancel() > 0:
                raise  # cancelled by someone else (too)
            raise Outage(f"no answer within {self.timeout_s:g} s (a frozen or overloaded server)") from None
        except Exception as exc:
            if state["cut"]:
                raise Outage(f"no answer within {self.timeout_s:g} s (a frozen or overloaded server)") from exc
            raise
        finally:
            for handle in handles:
                handle.cancel()

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        await self._run(lambda connection: write_postgres_async(connection, rows))

    async def ship(self, rows: list[dict[str, Any]]) -> None:
        async def run(connection: psycopg.AsyncConnection[Any]) -> None:
            async with psycopg.AsyncRawCursor(connection) as raw:
                await raw.execute(*ship_sql(rows))

        await self._run(run)

    async def head(self, chain_id: str) -> tuple[int, str] | None:
        async def run(connection: psycopg.AsyncConnection[Any]) -> tuple[int, str] | None:
            cursor = await connection.execute(
                "SELECT seq, hash FROM audit_decision WHERE chain_id = %s ORDER BY seq DESC LIMIT 1", (chain_id,)
            )
            row = await cursor.fetchone()
            if row is None:
                cursor = await connection.execute(
                    "SELECT seq, hash FROM audit_checkpoint WHERE chain_id = %s", (chain_id,)
                )
                row = await cursor.fetchone()
            return None if row is None else (int(row[0]), str(row[1]))

        result: tuple[int, str] | None = await self._run(run)
        return result

    async def ping(self) -> None:
        """Connect (and check the schema) on a connection of its own, then close it."""
        try:
            async with asyncio.timeout(self.timeout_s):
                connection = await self._connect()
        except Outage:
            raise
        except Exception as exc:
            raise Outage(_first_line(exc)) from exc
        await _close_quietly(connection)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await _close_quietly(connection)


async def _close_quietly(connection: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await connection.close()


class SqliteSink:
    """SQLite through the writer's SQLAlchemy engine. Its calls block: it is only driven from the writer's
    own committer thread, never from a server's event loop."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _guarded(self, fn: Any) -> Any:
        try:
            return fn()
        except (SQLAlchemyError, *_ADAPTATION, sqlite3.Error) as exc:
            raise sqlite_fault(exc) from exc

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        def run() -> None:
            with self._engine.begin() as connection:
                insert_rows(connection, rows)

        self._guarded(run)

    async def ship(self, rows: list[dict[str, Any]]) -> None:
        def run() -> None:
            with self._engine.begin() as connection:
                insert_rows(connection, rows, ignore_duplicates=True)

        self._guarded(run)

    async def head(self, chain_id: str) -> tuple[int, str] | None:
        t, c = audit_decision, audit_checkpoint

        def run() -> tuple[int, str] | None:
            with self._engine.connect() as connection:
                row = connection.execute(
                    select(t.c.seq, t.c.hash).where(t.c.chain_id == chain_id).order_by(t.c.seq.desc()).limit(1)
                ).first()
                if row is None:
                    row = connection.execute(select(c.c.seq, c.c.hash).where(c.c.chain_id == chain_id)).first()
            return None if row is None else (int(row[0]), str(row[1]))

        result: tuple[int, str] | None = self._guarded(run)
        return result

    async def ping(self) -> None:
        def run() -> None:
            with self._engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")

        self._guarded(run)

    async def close(self) -> None:
        return None
