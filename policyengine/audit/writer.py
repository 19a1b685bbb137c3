"""The audit writer: chains rows per writer and commits them in groups; `record` returns once durable.

One background thread (the committer) takes every record waiting at that moment, chains them
(`seq`, `prev_hash`, `hash`) and commits them in one transaction. Callers block until that commit (or
the spool fsync) has returned. If the database is unreachable the rows go to the chain's spool file and
are shipped, in order and idempotently, when it is back; while the spool holds rows, new rows follow
them into the spool so the chain stays in order.

A server attaches a PostgreSQL writer to its event loop (`attach_event_loop`): group commits then run
on the loop itself over an asyncio connection (`loop_commit.LoopCommitter`), with no thread hand-off on
the answer's path. Chaining and persisting hold one lock in either mode, so the chain stays gapless.
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
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from policyengine.audit import metrics
from policyengine.audit.chain import GENESIS, new_row_hash
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.inserts import insert_ignoring_duplicates, insert_rows, write_postgres
from policyengine.audit.loop_commit import LoopCommitter
from policyengine.audit.record import DEFAULT_MASK_PATHS, AuditRecord, content_of
from policyengine.audit.schema import audit_checkpoint, audit_decision
from policyengine.audit.spool import DEFAULT_SPOOL_DIR, Spool
from policyengine.audit.store import display_url, make_engine, require_migrated, resolve_url
from policyengine.audit.waiters import Waiter, finish

log = logging.getLogger("policyengine.audit")

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
SHIP_BATCH = 5000


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
        self._pending: list[Waiter] = []
        self._closing = False
        self._db_ok = True
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST_S
        self._postgres = engine.dialect.name == "postgresql"
        self._pg: psycopg.Connection[Any] | None = None  # the committer's own autocommit connection
        self._commit_lock = threading.Lock()  # chaining + persisting: one group at a time, either mode
        self._head_uncertain = False  # a group was cut off mid-commit: re-read the head before chaining
        self._loop_committer: LoopCommitter | None = None
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
        waiter = Waiter(content_of(record, self.mask_paths))
        committer = self._loop_committer
        if committer is not None:
            committer.submit_threadsafe(waiter)
        else:
            self._submit(waiter)
        assert waiter.done is not None
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    def record_async(self, record: AuditRecord) -> asyncio.Future[None]:
        """`record` for asyncio callers: `await writer.record_async(r)` returns once the row is durable,
        without blocking the event loop (raises AuditStoreError as `record` does).

        A plain function returning the future its caller awaits, not a coroutine: one frame less to
        create and resume per row."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = Waiter(content_of(record, self.mask_paths), loop, future)
        committer = self._loop_committer
        if committer is not None and committer.loop is loop:
            committer.submit(waiter)
        else:
            self._submit(waiter)
        return future

    async def attach_event_loop(self) -> bool:
        """Commit on the running event loop from now on (PostgreSQL only; True when attached).

        Callers on this loop then wait for one asyncio round trip to the database, not for a thread;
        callers on other threads or loops are handed to it. `detach_event_loop` undoes it.
        """
        if not self._postgres or self._loop_committer is not None:
            return self._loop_committer is not None
        self._loop_committer = LoopCommitter(self, asyncio.get_running_loop())
        return True

    async def detach_event_loop(self) -> None:
        """Commit what the loop holds, close its connection and go back to the committer thread."""
        committer, self._loop_committer = self._loop_committer, None
        if committer is not None:
            await committer.stop()

    def spool_size(self) -> int:
        """Rows waiting in the spool for the database."""
        return len(self._spool)

    def healthy(self) -> bool:
        """True when the last commit reached the database and the spool is empty."""
        committer = self._loop_committer
        loop_ok = committer is None or committer.alive
        return self._db_ok and len(self._spool) == 0 and self._thread.is_alive() and loop_ok

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
        """Commit what is pending, stop the committer, release connections. Spooled rows stay on disk.

        Detach from an event loop first (`detach_event_loop`); close does it when called off that loop.
        """
        committer = self._loop_committer
        if committer is not None:
            committer.stop_threadsafe()
            self._loop_committer = None
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

    def _submit(self, waiter: Waiter) -> None:
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
                with self._commit_lock:
                    self._try_ship()
            if stop:
                if len(self._spool):
                    with self._commit_lock:
                        self._try_ship()
                return

    def _chained(self, batch: list[Waiter], ready: int = 0) -> list[dict[str, Any]]:
        """The group's rows, linked after the chain's head. Each waiter's content is its own dict (built
        by `record` for this call), so it becomes the row; a retry after a failure rewrites the same
        chain fields. The first `ready` rows were linked ahead (`link`, while the group before them was
        in the database): kept when they follow the head, linked again when they do not."""
        seq, head = self._seq, self._head
        if ready and batch[0].content["seq"] == seq + 1 and batch[0].content["prev_hash"] == head:
            last = batch[ready - 1].content
            seq, head = last["seq"], last["hash"]
        else:
            ready = 0
        self.link(batch[ready:], seq, head)
        return [waiter.content for waiter in batch]

    def link(self, batch: list[Waiter], seq: int, head: str) -> None:
        """Chain the rows of `batch` after (`seq`, `head`), in place (again, if they were linked before)."""
        chain_id = self.chain_id
        for waiter in batch:
            seq += 1
            row = waiter.content
            row.pop("hash", None)  # linked before: the hash covers every other field
            row["chain_id"] = chain_id
            row["seq"] = seq
            row["prev_hash"] = head
            head = row["hash"] = new_row_hash(row)

    def _commit(self, batch: list[Waiter]) -> None:
        with self._commit_lock:
            error = self._commit_locked(batch)
        finish(batch, error)

    def _commit_locked(self, batch: list[Waiter]) -> BaseException | None:
        """Chain and persist one group (the commit lock held); the error to hand its callers, if any."""
        if self._head_uncertain:
            try:
                self._resync_head()
            except AuditStoreError as exc:
                metrics.FAILURES.inc(len(batch))
                return exc
        rows = self._chained(batch)
        error: BaseException | None = None
        try:
            self._persist(rows)
            self._advance(rows)
        except AuditStoreError as exc:
            metrics.FAILURES.inc(len(rows))
            error = exc
        except BaseException as exc:  # never leave a caller waiting
            metrics.FAILURES.inc(len(rows))
            error = AuditStoreError(f"audit writer for chain {self.chain_id} failed: {exc!r}")
        metrics.BATCH_ROWS.observe(len(rows))
        return error

    def _resync_head(self) -> None:
        """Re-read the chain's head (spool, else database) after a group was cut off mid-commit, so the
        next row follows whatever reached the database. Raises AuditStoreError when it cannot be read."""
        try:
            self._seq, self._head = self._chain_head()
        except SQLAlchemyError as exc:
            raise AuditStoreError(
                f"audit database {self._url}: cannot read the head of chain {self.chain_id} "
                f"after an interrupted commit ({type(exc).__name__}); retry when the database answers"
            ) from exc
        self._head_uncertain = False

    def _advance(self, rows: list[dict[str, Any]]) -> None:
        self._seq, self._head = rows[-1]["seq"], rows[-1]["hash"]

    def _duplicate_chain(self, rows: list[dict[str, Any]]) -> AuditStoreError:
        return AuditStoreError(
            f"audit database {self._url}: chain {self.chain_id} seq {rows[0]['seq']} already exists; "
            f"another writer uses the same chain_id: give each process its own chain_id"
        )

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
            raise self._duplicate_chain(rows) from exc
        except (SQLAlchemyError, psycopg.Error) as exc:
            self._drop_postgres_connection()
            self._database_down(exc)
            self._to_spool(rows)
            return
        self._persisted(rows)

    def _persisted(self, rows: list[dict[str, Any]]) -> None:
        self._db_ok = True
        metrics.RECORDS_IN_DATABASE.inc(len(rows))

    def postgres_url(self) -> str:
        """The database URL as psycopg takes it (with the password: never log it)."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _postgres_connection(self) -> psycopg.Connection[Any]:
        if self._pg is None or self._pg.closed:
            self._pg = psycopg.connect(self.postgres_url(), autocommit=True, connect_timeout=2)
        return self._pg

    def _wake_shipper(self) -> None:
        """Tell the committer thread the spool has rows to retry (they were spooled on the loop)."""
        with self._cond:
            self._cond.notify_all()

    def _drop_postgres_connection(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(psycopg.Error):
                self._pg.close()
            self._pg = None

    def _to_spool(self, rows: list[dict[str, Any]]) -> None:
        self._spool.append(rows)
        metrics.SPOOL_ROWS.inc(len(rows))
        metrics.RECORDS_IN_SPOOL.inc(len(rows))

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
                        insert_ignoring_duplicates(connection.dialect.name), rows[start : start + SHIP_BATCH]
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
