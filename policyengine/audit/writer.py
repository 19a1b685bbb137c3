"""The audit writer: chains rows per writer and commits them in groups; `record` returns once durable.

One background thread (the committer) takes every record waiting at that moment, chains them
(`seq`, `prev_hash`, `hash`) and commits them in one transaction. Callers block until that commit (or
the spool fsync) has returned. If the database is unreachable the rows go to the chain's spool file and
are shipped, in order and idempotently, when it is back; while the spool holds rows, new rows follow
them into the spool so the chain stays in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from policyengine.audit import metrics
from policyengine.audit.chain import GENESIS, as_utc, row_hash
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.record import DEFAULT_MASK_PATHS, AuditRecord, content_of
from policyengine.audit.schema import audit_checkpoint, audit_decision
from policyengine.audit.spool import DEFAULT_SPOOL_DIR, Spool
from policyengine.audit.store import display_url, make_engine, require_migrated, resolve_url

log = logging.getLogger("policyengine.audit")

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
SHIP_BATCH = 5000


class _Waiter:
    """One caller waiting for its row to be durable: a thread (an Event) or an asyncio future."""

    __slots__ = ("content", "done", "error", "future", "loop")

    def __init__(
        self,
        content: dict[str, Any],
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.content = content
        self.done = threading.Event() if future is None else None
        self.error: BaseException | None = None
        self.loop = loop
        self.future = future


def _finish(batch: Sequence[_Waiter], error: BaseException | None) -> None:
    """Wake every caller of a group: threads directly, asyncio futures with one call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in batch:
        waiter.error = error
        if waiter.done is not None:
            waiter.done.set()
        elif waiter.loop is not None and waiter.future is not None:
            by_loop.setdefault(waiter.loop, []).append(waiter.future)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, futures, error)
        except RuntimeError:  # the loop was closed while its callers waited: nobody is left to wake
            log.warning("audit writer: an event loop closed with %d callers waiting", len(futures))


class AuditWriter:
    """Records decisions into one hash chain. Thread-safe; share one writer per process."""

    def __init__(
        self,
        engine: Engine,
        chain_id: str,
        spool: Spool,
        *,
        mask_paths: Sequence[str] = DEFAULT_MASK_PATHS,
        max_batch: int = 2000,
    ) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.mask_paths = tuple(mask_paths)
        self.max_batch = max_batch
        self._spool = spool
        self._url = display_url(engine.url.render_as_string(hide_password=False))
        self._cond = threading.Condition()
        self._pending: list[_Waiter] = []
        self._closing = False
        self._db_ok = True
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST_S
        self._postgres = engine.dialect.name == "postgresql"
        self._pg: psycopg.Connection[Any] | None = None  # the committer's own autocommit connection
        self._seq, self._head = self._chain_head()
        metrics.SPOOL_ROWS.inc(len(spool))
        self._thread = threading.Thread(target=self._run, name=f"audit-committer-{chain_id[:8]}", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        chain_id: str | None = None,
        spool_dir: str | Path | None = None,
        *,
        mask_paths: Sequence[str] = DEFAULT_MASK_PATHS,
        max_batch: int = 2000,
    ) -> AuditWriter:
        """A writer on `url` (default ./var/audit.db). Refuses an unmigrated or unreachable database.

        `chain_id` defaults to a new uuid; reopening with an existing chain_id continues that chain
        (after the rows of its spool, which are shipped first).
        """
        # No pre-ping: the committer's own errors detect a lost connection (it is invalidated and the
        # rows spooled), and a ping would cost a round trip on every group commit.
        engine = make_engine(resolve_url(url), connect_timeout=2, pre_ping=False)
        try:
            require_migrated(engine)
            chain = chain_id or str(uuid.uuid4())
            spool = Spool(Path(spool_dir) if spool_dir is not None else DEFAULT_SPOOL_DIR, chain)
            return cls(engine, chain, spool, mask_paths=mask_paths, max_batch=max_batch)
        except BaseException:
            engine.dispose()
            raise

    # -- public API ------------------------------------------------------------------------------

    def record(self, record: AuditRecord) -> None:
        """Record one decision; returns once its row is committed or fsync'd in the spool.

        Raises AuditStoreError when it could be written nowhere (the decision is then NOT recorded).
        """
        waiter = self._enqueue(record)
        assert waiter.done is not None
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    async def record_async(self, record: AuditRecord) -> None:
        """`record` for asyncio callers: awaits durability without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._submit(_Waiter(content_of(record, self.mask_paths), loop, future))
        await future

    def spool_size(self) -> int:
        """Rows waiting in the spool for the database."""
        return len(self._spool)

    def healthy(self) -> bool:
        """True when the last commit reached the database and the spool is empty."""
        return self._db_ok and len(self._spool) == 0 and self._thread.is_alive()

    def flush(self, timeout: float = 30.0) -> bool:
        """Try to ship the spool now; True when it is empty afterwards."""
        deadline = time.monotonic() + timeout
        while len(self._spool) and time.monotonic() < deadline:
            with self._cond:
                self._retry_at = 0.0
                self._cond.notify_all()
            time.sleep(0.05)
        return len(self._spool) == 0

    def close(self) -> None:
        """Commit what is pending, stop the committer, release connections. Spooled rows stay on disk."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        metrics.SPOOL_ROWS.dec(len(self._spool))
        self._drop_postgres_connection()
        self.engine.dispose()

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _enqueue(self, record: AuditRecord) -> _Waiter:
        waiter = _Waiter(content_of(record, self.mask_paths))
        self._submit(waiter)
        return waiter

    def _submit(self, waiter: _Waiter) -> None:
        with self._cond:
            if self._closing:
                raise AuditStoreError(f"audit writer for chain {self.chain_id} is closed; open a new one")
            self._pending.append(waiter)
            if len(self._pending) == 1:
                self._cond.notify()

    def _chain_head(self) -> tuple[int, str]:
        """(seq, hash) of the chain's last row: from the spool when it holds rows, else the database."""
        spooled = self._spool.read()
        if spooled:
            last = spooled[-1]
            return int(last["seq"]), str(last["hash"])
        t, c = audit_decision, audit_checkpoint
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.c.seq, t.c.hash).where(t.c.chain_id == self.chain_id).order_by(t.c.seq.desc()).limit(1)
            ).first()
            if row is not None:
                return int(row.seq), str(row.hash)
            mark = connection.execute(select(c.c.seq, c.c.hash).where(c.c.chain_id == self.chain_id)).first()
            if mark is not None:
                return int(mark.seq), str(mark.hash)
        return 0, GENESIS

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    if len(self._spool):
                        wait = max(0.0, self._retry_at - time.monotonic())
                        if wait == 0.0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                stop = self._closing and not self._pending
            if batch:
                self._commit(batch)
            elif len(self._spool):
                self._try_ship()
            if stop:
                if len(self._spool):
                    self._try_ship()
                return

    def _chained(self, batch: list[_Waiter]) -> list[dict[str, Any]]:
        seq, head = self._seq, self._head
        rows = []
        for waiter in batch:
            seq += 1
            row = dict(waiter.content)
            row["chain_id"] = self.chain_id
            row["seq"] = seq
            row["prev_hash"] = head
            head = row["hash"] = row_hash(row)
            rows.append(row)
        return rows

    def _commit(self, batch: list[_Waiter]) -> None:
        rows = self._chained(batch)
        error: BaseException | None = None
        try:
            self._persist(rows)
            self._seq, self._head = rows[-1]["seq"], rows[-1]["hash"]
        except AuditStoreError as exc:
            metrics.FAILURES.inc(len(rows))
            error = exc
        except BaseException as exc:  # never leave a caller waiting
            metrics.FAILURES.inc(len(rows))
            error = AuditStoreError(f"audit writer for chain {self.chain_id} failed: {exc!r}")
        metrics.BATCH_ROWS.observe(len(rows))
        _finish(batch, error)

    def _persist(self, rows: list[dict[str, Any]]) -> None:
        if len(self._spool) and not self._try_ship():
            self._to_spool(rows)
            return
        try:
            if self._postgres:
                # PostgreSQL: one statement (a multi-row INSERT, or a COPY for bigger groups) in
                # autocommit is its own durable transaction, on a connection the committer keeps: one
                # or two round trips per group instead of a pool checkout, BEGIN, INSERT and COMMIT.
                write_postgres(self._postgres_connection(), rows)
            else:
                with self.engine.begin() as connection:
                    insert_rows(connection, rows)
        except (IntegrityError, psycopg.IntegrityError) as exc:
            raise AuditStoreError(
                f"audit database {self._url}: chain {self.chain_id} seq {rows[0]['seq']} already exists; "
                f"another writer uses the same chain_id: give each process its own chain_id"
            ) from exc
        except (SQLAlchemyError, psycopg.Error) as exc:
            self._drop_postgres_connection()
            self._database_down(exc)
            self._to_spool(rows)
            return
        self._db_ok = True
        metrics.RECORDS.labels(store="database").inc(len(rows))

    def _postgres_connection(self) -> psycopg.Connection[Any]:
        if self._pg is None or self._pg.closed:
            url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg = psycopg.connect(url, autocommit=True, connect_timeout=2)
        return self._pg

    def _drop_postgres_connection(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(psycopg.Error):
                self._pg.close()
            self._pg = None

    def _to_spool(self, rows: list[dict[str, Any]]) -> None:
        self._spool.append(rows)
        metrics.SPOOL_ROWS.inc(len(rows))
        metrics.RECORDS.labels(store="spool").inc(len(rows))

    def _database_down(self, exc: SQLAlchemyError | psycopg.Error) -> None:
        metrics.OUTAGES.inc()
        if self._db_ok:
            log.warning(
                "audit database %s unreachable (%s); spooling to %s",
                self._url,
                str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else exc,
                self._spool.path,
            )
        self._db_ok = False
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_S)

    def _try_ship(self) -> bool:
        """Ship the whole spool in order (idempotent: rows already there are skipped). True if emptied."""
        if time.monotonic() < self._retry_at:
            return False
        rows = self._spool.read()
        if not rows:
            self._spool.clear()
            return True
        try:
            with self.engine.begin() as connection:
                for start in range(0, len(rows), SHIP_BATCH):
                    connection.execute(
                        _insert_ignoring_duplicates(connection.dialect.name), rows[start : start + SHIP_BATCH]
                    )
        except SQLAlchemyError as exc:
            self._database_down(exc)
            log.warning("audit spool %s: %d rows waiting for the database", self._spool.path, len(rows))
            return False
        self._spool.clear()
        metrics.SPOOL_ROWS.dec(len(rows))
        metrics.SHIPPED.inc(len(rows))
        self._db_ok = True
        self._retry_delay = RETRY_FIRST_S
        log.warning("audit spool %s: shipped %d rows to %s", self._spool.path, len(rows), self._url)
        return True


_COPY_COLUMNS = tuple(c.name for c in audit_decision.columns if c.name != "id")
_COPY_SQL = "COPY audit_decision ({}) FROM STDIN".format(", ".join(f'"{name}"' for name in _COPY_COLUMNS))


SMALL_GROUP = 8
_PG_INSERT = "INSERT INTO audit_decision ({}) VALUES".format(", ".join(f'"{name}"' for name in _COPY_COLUMNS))
_PG_ROW = "(" + ", ".join("%s" for _ in _COPY_COLUMNS) + ")"
_SQLITE_INSERT = "INSERT INTO audit_decision ({}) VALUES ({})".format(
    ", ".join(f'"{name}"' for name in _COPY_COLUMNS), ", ".join("?" for _ in _COPY_COLUMNS)
)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's SQLite DateTime stores a (UTC) time


def _sqlite_value(name: str, value: Any) -> Any:
    if name == "time":
        return as_utc(value).strftime(_SQLITE_TIME)
    if name == "dry_run":
        return 1 if value else 0
    return value


def insert_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert a group of chained rows in the caller's transaction, straight through the driver: COPY on
    PostgreSQL, one prepared INSERT run for every row on SQLite (values stored exactly as SQLAlchemy
    stores them, so the models read them back)."""
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - SQLAlchemy always has one inside a transaction
        raise AuditStoreError("no database connection inside the audit transaction")
    if connection.dialect.name == "sqlite":
        driver.executemany(
            _SQLITE_INSERT, [tuple(_sqlite_value(name, row[name]) for name in _COPY_COLUMNS) for row in rows]
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
    with driver.cursor() as cursor:
        if len(rows) <= SMALL_GROUP:
            values = ", ".join([_PG_ROW] * len(rows))
            cursor.execute(f"{_PG_INSERT} {values}", [row[name] for row in rows for name in _COPY_COLUMNS])
            return
        with cursor.copy(_COPY_SQL) as copy:
            for row in rows:
                copy.write_row([row[name] for name in _COPY_COLUMNS])


def _insert_ignoring_duplicates(dialect: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(audit_decision).on_conflict_do_nothing(index_elements=["chain_id", "seq"])
    return sqlite.insert(audit_decision).on_conflict_do_nothing(index_elements=["chain_id", "seq"])


def _settle_all(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the caller was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
