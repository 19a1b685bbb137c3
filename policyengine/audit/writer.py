"""The audit writer: chains rows per writer and commits them in groups; `record` returns once durable.

Each writer has a committer thread running an event loop of its own, whose committer
(`loop_commit.LoopCommitter`) owns the chain's tail (`tail.ChainTail`: seq, head hash, the spool, the
database). A server attaches the writer to its own loop (PostgreSQL): the tail is then handed to a
committer there, and group commits run on the server's loop with no thread hand-off on the answer's
path; detaching hands it back. Every caller, from any thread or loop, hands its row to the current owner
(`call_soon_threadsafe` when it lives elsewhere) and waits: a thread on an Event, a task on a future of
its own loop. No lock is shared between threads and loops; the tail is driven by its owner only.

If the database is unreachable, or does not answer within the sink's timeout (a frozen server), the
rows go to the chain's spool file (fsync'd) and are shipped, in order and idempotently, once a probe
finds the database again; while the spool holds rows, new rows follow them into it. On open, spools
of earlier processes found in the spool directory (crashed, or stopped during an outage) are shipped
too, by a task of their own. A new chain needs no database to start: a server starts and serves while
the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from policyengine.audit import metrics
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.loop_commit import LoopCommitter
from policyengine.audit.migrate import head_revision
from policyengine.audit.record import DEFAULT_MASK_PATHS, AuditRecord, content_of
from policyengine.audit.rowformat import GENESIS
from policyengine.audit.schema import audit_checkpoint, audit_decision
from policyengine.audit.sinks import DEFAULT_TIMEOUT_S, Outage, PostgresSink, Sink, SqliteSink
from policyengine.audit.spool import DEFAULT_MIN_FREE_BYTES, DEFAULT_SPOOL_DIR, Spool, orphans
from policyengine.audit.store import display_url, make_engine, require_migrated, resolve_url
from policyengine.audit.tail import RETRY_MAX_S, SHIP_STEP, ChainTail, ship
from policyengine.audit.waiters import Waiter, finish

log = logging.getLogger("policyengine.audit")

STOP_TIMEOUT_S = 30.0
ATTACH_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class AuditStatus:
    """Whether the writer can make rows durable now (`/readyz`, `/healthz`).

    `ok`: the database takes rows. `degraded`: rows go to the spool (the database is down, or the spool
    is being shipped), which has room. `failed`: rows can be made durable nowhere (the database is down
    and the spool is full or cannot be written, or the committer is gone)."""

    state: Literal["ok", "degraded", "failed"]
    database: str
    spool_rows: int
    spool_free_bytes: int
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "database": self.database,
            "spool_rows": self.spool_rows,
            "spool_free_bytes": self.spool_free_bytes,
            "problem": self.problem,
        }


class AuditWriter:
    """Records decisions into one hash chain. Safe to call from any thread and any event loop."""

    def __init__(
        self,
        engine: Engine,
        chain_id: str,
        spool: Spool,
        *,
        head: tuple[int, str] | None,
        mask_paths: Sequence[str] = DEFAULT_MASK_PATHS,
        max_batch: int = 2000,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        earlier_spools: Sequence[Spool] = (),
        database_up: bool = True,
        durable: tuple[int, str] | None = None,
    ) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.mask_paths = tuple(mask_paths)
        self.max_batch = max_batch
        self._timeout_s = timeout_s
        self._url = display_url(engine.url.render_as_string(hide_password=False))
        self._postgres = engine.dialect.name == "postgresql"
        self._revision = head_revision()
        self._spool = spool
        self._earlier = list(earlier_spools)
        self._earlier_rows = sum(len(s) for s in self._earlier)
        self._tail = ChainTail(
            chain_id, self._make_sink(), spool, url=self._url, head=head or (0, GENESIS), head_known=head is not None
        )
        self._tail.durable = durable
        if not database_up:
            self._tail.database_down("not reachable when the writer opened")
        self._closed = False
        metrics.SPOOL_ROWS.inc(len(spool) + self._earlier_rows)
        self.home: LoopCommitter
        self.owner: LoopCommitter
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name=f"audit-committer-{chain_id[:8]}", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise AuditStoreError(f"audit writer could not start: {self._start_error!r}")

    @classmethod
    def open(
        cls,
        url: str | None = None,
        chain_id: str | None = None,
        spool_dir: str | Path | None = None,
        *,
        new_chain: bool | None = None,
        require_database: bool = False,
        mask_paths: Sequence[str] = DEFAULT_MASK_PATHS,
        max_batch: int = 2000,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        spool_min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    ) -> AuditWriter:
        """A writer on `url` (default ./var/audit.db), and its spool in `spool_dir`.

        A new chain (`chain_id` None, or `new_chain=True`) needs no database to start: when it does not
        answer, the writer starts spooling (unless `require_database`). Reopening an existing chain_id
        continues that chain after its spooled rows or its last row in the database, which must then
        answer. A database that answers but is not migrated is refused either way.
        """
        engine = make_engine(resolve_url(url), connect_timeout=max(2, int(timeout_s + 0.999)), pre_ping=False)
        spool: Spool | None = None
        try:
            fresh = chain_id is None if new_chain is None else new_chain
            chain = chain_id or str(uuid.uuid4())
            directory = Path(spool_dir) if spool_dir is not None else DEFAULT_SPOOL_DIR
            reachable = True
            try:
                require_migrated(engine)
            except AuditStoreError as exc:
                if "unreachable" not in str(exc) or require_database or not fresh:
                    raise
                reachable = False
                log.warning("%s; starting anyway: rows are spooled in %s until it answers", exc, directory)
            spool = Spool(directory, chain, min_free_bytes=spool_min_free_bytes)
            head: tuple[int, str] | None = (0, GENESIS) if fresh and not len(spool) else None
            durable = None
            if head is None and not len(spool):
                durable = _database_head(engine, chain)
                head = durable or (0, GENESIS)
            earlier = orphans(directory, own=spool.path)
            return cls(
                engine,
                chain,
                spool,
                head=head,
                mask_paths=mask_paths,
                max_batch=max_batch,
                timeout_s=timeout_s,
                earlier_spools=earlier,
                database_up=reachable,
                durable=durable,
            )
        except BaseException:
            if spool is not None:
                spool.close(remove_if_empty=True)
            engine.dispose()
            raise

    # -- public API ------------------------------------------------------------------------------

    def record(self, record: AuditRecord) -> None:
        """Record one decision; returns once its row is committed or fsync'd in the spool.

        Raises AuditStoreError when it could be written nowhere (the decision is then NOT recorded).
        """
        waiter = Waiter(self._content(record))
        owner = self.owner
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is owner.loop:
                raise AuditStoreError(
                    "AuditWriter.record() was called on the event loop the writer is attached to; "
                    "await record_async() there instead"
                )
        self._send(owner, waiter)
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
        self._send(self.owner, Waiter(self._content(record), loop, future))
        return future

    def durable_head(self) -> tuple[int, str] | None:
        """(seq, hash) of the newest row of this writer's chain known to be in the database, as this
        writer wrote it (None before any). Safe to call from any thread or loop."""
        return self._tail.durable

    async def attach_event_loop(self) -> bool:
        """Commit on the running event loop from now on (PostgreSQL only; True when attached).

        The tail is handed to a committer on this loop; callers on this loop then wait for one asyncio
        round trip to the database, callers on other threads or loops are passed to it.
        `detach_event_loop` hands it back."""
        loop = asyncio.get_running_loop()
        if self.owner is not self.home:
            return self.owner.loop is loop
        if not self._postgres or self._closed:
            return False
        committer = LoopCommitter(self, blocking_ok=False)
        self.owner = committer
        self._call(self.home, self.home.wake)
        with contextlib.suppress(TimeoutError):  # still busy (shipping a step): rows queue meanwhile
            async with asyncio.timeout(ATTACH_WAIT_S):
                await asyncio.shield(committer.has_tail)
        return True

    async def detach_event_loop(self) -> None:
        """Commit what this loop's committer holds and hand the tail back to the committer thread."""
        committer = self.owner
        if committer is self.home or committer.loop is not asyncio.get_running_loop():
            return
        self.owner = self.home
        committer.stop()
        await asyncio.shield(committer.task)

    def spool_size(self) -> int:
        """Rows waiting in spools (this chain's and earlier processes') for the database."""
        return self._tail.spooled() + self._earlier_rows

    def status(self) -> AuditStatus:
        """Whether rows can be made durable now, and where they go."""
        tail = self._tail
        spooled = self.spool_size()
        free = self._spool.free_bytes()
        database = "up" if tail.db_up else f"unreachable: {tail.db_error}"
        if self._closed:
            return AuditStatus("failed", database, spooled, free, "the writer is closed")
        if not self._thread.is_alive() or not self.home.alive:
            return AuditStatus("failed", database, spooled, free, "the audit committer has stopped")
        if tail.spooling():
            if not self._spool.has_room():
                why = self._spool.last_error or f"{free} bytes free, below {self._spool.min_free_bytes}"
                return AuditStatus("failed", database, spooled, free, f"the spool {self._spool.path} is full ({why})")
            return AuditStatus("degraded", database, spooled, free, "rows are spooled until the database answers")
        if self._earlier_rows:
            return AuditStatus("degraded", database, spooled, free, "shipping spools of earlier processes")
        return AuditStatus("ok", database, spooled, free)

    def healthy(self) -> bool:
        """True when rows reach the database and nothing is waiting in a spool."""
        return self.status().state == "ok"

    def flush(self, timeout: float = 30.0) -> bool:
        """Try to ship the spools now; True when they are empty afterwards."""
        deadline = time.monotonic() + timeout
        while self.spool_size() and time.monotonic() < deadline:
            owner = self.owner
            self._call(owner, owner.retry_now)
            time.sleep(0.05)
        return self.spool_size() == 0

    def close(self) -> None:
        """Commit what is pending, try to ship the spool, stop the committer, release connections.

        Rows still spooled stay on disk, and the next process on this spool directory ships them.
        Detach from an event loop first (`detach_event_loop`); close does it when called off that loop.
        """
        if self._closed:
            return
        owner = self.owner
        if owner is not self.home:
            loop = owner.loop
            with contextlib.suppress(RuntimeError):
                if asyncio.get_running_loop() is loop:
                    raise AuditStoreError(
                        "AuditWriter.close() was called on the event loop the writer is attached to; "
                        "await detach_event_loop() first"
                    )
            if loop.is_running() and not loop.is_closed():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(self.detach_event_loop(), loop).result(STOP_TIMEOUT_S)
            self.owner = self.home
        self._closed = True
        self._call(self.home, self.home.stop)
        self._thread.join(STOP_TIMEOUT_S + 10)
        metrics.SPOOL_ROWS.dec(self.spool_size())
        if self._tail.spooled():
            log.warning("audit spool %s keeps %d rows for the next process", self._spool.path, self._tail.spooled())
        self._spool.close(remove_if_empty=True)
        for earlier in self._earlier:
            earlier.close(remove_if_empty=True)
        self.engine.dispose()

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- routing rows to the owner ----------------------------------------------------------------

    def _content(self, record: AuditRecord) -> dict[str, Any]:
        if self._closed:
            raise AuditStoreError(f"audit writer for chain {self.chain_id} is closed; open a new one")
        try:
            return content_of(record, self.mask_paths)
        except Exception as exc:
            raise AuditStoreError(f"audit row of decision {record.decision.decision_id!r} not built: {exc}") from exc

    def _send(self, target: LoopCommitter, waiter: Waiter) -> None:
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if target.loop is here:
            target.receive(waiter)
            return
        try:
            target.loop.call_soon_threadsafe(target.receive, waiter)
        except RuntimeError:  # that loop is closed
            if target is not self.home:
                self._send(self.home, waiter)
            else:
                finish([waiter], AuditStoreError(f"audit writer for chain {self.chain_id} is closed"))

    def _call(self, target: LoopCommitter, fn: Any, *args: Any) -> bool:
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if target.loop is here:
            fn(*args)
            return True
        try:
            target.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            return False
        return True

    def hand_to_owner(self, waiter: Waiter, *, avoid: LoopCommitter) -> None:
        """Pass a row on to the current owner (from a committer that does not hold the tail)."""
        target = self.owner
        self._send(self.home if target is avoid else target, waiter)

    def give_tail(self, tail: ChainTail) -> bool:
        """Hand the tail to the current owner; False when its loop is gone (the caller keeps it)."""
        target = self.owner
        if self._call(target, target.take_tail, tail, []):
            return True
        self.owner = self.home
        return target is not self.home and self._call(self.home, self.home.take_tail, tail, [])

    def home_takes(self, tail: ChainTail, waiters: list[Waiter]) -> None:
        """A committer that is going away sends the tail (and rows it still held) home."""
        if self.owner is not self.home:
            self.owner = self.home
        if not self._call(self.home, self.home.take_tail, tail, waiters):
            finish(waiters, AuditStoreError(f"audit writer for chain {self.chain_id} is closed"))

    # -- the committer thread ---------------------------------------------------------------------

    def _make_sink(self) -> Sink:
        if self._postgres:
            conninfo = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            return PostgresSink(conninfo, self._revision, self._timeout_s)
        return SqliteSink(self.engine)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._home_main())
        except BaseException as exc:  # pragma: no cover - reported by status() as a dead committer
            log.exception("audit committer of chain %s stopped", self.chain_id)
            self._start_error = self._start_error or exc
            self._started.set()

    async def _home_main(self) -> None:
        try:
            self.home = LoopCommitter(self, blocking_ok=True)
            self.owner = self.home
            self.home.take_tail(self._tail, [])
            earlier = asyncio.create_task(self._ship_earlier()) if self._earlier else None
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            raise
        self._started.set()
        try:
            await self.home.task
        finally:
            if earlier is not None:
                earlier.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await earlier

    async def _ship_earlier(self) -> None:
        """Ship the spools of earlier processes, each in chain order, retrying while the database is down."""
        sink = self._make_sink()

        async def inline(fn: Any, *args: Any) -> Any:
            return fn(*args)

        delay = 0.2
        try:
            for spool in list(self._earlier):
                cursor = shipped = 0
                while True:
                    rows, offset = spool.read_from(cursor, SHIP_STEP)
                    if not rows:
                        break
                    try:
                        await ship(sink, rows, spool.path.parent, inline)
                    except Outage:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, RETRY_MAX_S)
                        continue
                    delay = 0.2
                    cursor, shipped = offset, shipped + len(rows)
                    self._earlier_rows -= len(rows)
                    metrics.SPOOL_ROWS.dec(len(rows))
                    metrics.SHIPPED.inc(len(rows))
                left = len(spool) - shipped
                spool.clear()
                self._earlier_rows -= max(0, left)  # a torn tail: never acknowledged
                spool.close(remove_if_empty=True)
                self._earlier.remove(spool)
                log.warning("audit spool %s of an earlier process: shipped %d rows", spool.path, shipped)
        finally:
            await sink.close()


def _database_head(engine: Engine, chain_id: str) -> tuple[int, str] | None:
    """(seq, hash) of the chain's last row in the database, or of its prune checkpoint."""
    t, c = audit_decision, audit_checkpoint
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(t.c.seq, t.c.hash).where(t.c.chain_id == chain_id).order_by(t.c.seq.desc()).limit(1)
            ).first()
            if row is None:
                row = connection.execute(select(c.c.seq, c.c.hash).where(c.c.chain_id == chain_id)).first()
    except SQLAlchemyError as exc:
        raise AuditStoreError(
            f"audit database {display_url(str(engine.url))}: cannot read the head of chain {chain_id}: {exc}"
        ) from exc
    return None if row is None else (int(row[0]), str(row[1]))
