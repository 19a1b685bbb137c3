"""Group commit on an asyncio event loop, for a PostgreSQL audit writer attached to a server's loop.

The thread committer costs every caller two thread hand-offs (loop -> committer thread -> loop), about
0.1 ms per answer on a 2-core machine. Here one task on the loop takes the rows waiting at that moment,
chains them and sends one INSERT (or COPY) over an asyncio autocommit connection; callers' futures are
settled on the same loop. One group is in the database at a time; when it returns, the next group is
sent before the returned group's callers are woken, so their next rows are built (and linked ahead)
while the database works. The writer's commit lock is held across chaining and persisting, exactly as
in the thread committer, so rows recorded through either path form one gapless chain.

Only the healthy path runs on the loop. While the database is down or the spool holds rows, each group
goes through the writer's thread-side logic (ship the spool first, else spool the rows, fsync'd) in a
worker thread, and the writer's committer thread keeps retrying the spool in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

import psycopg

from policyengine.audit import metrics
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.inserts import write_postgres_async
from policyengine.audit.waiters import Waiter, finish_on_loop

if TYPE_CHECKING:
    from policyengine.audit.writer import AuditWriter

log = logging.getLogger("policyengine.audit")

STOP_TIMEOUT_S = 30.0
SPLIT_FROM = 8  # with nothing in flight, the committer splits a queue of this many rows or more


def group_size(waiting: int, max_batch: int, *, idle: bool) -> int:
    """How many of the `waiting` rows a committer takes as its next group.

    All of them (up to `max_batch`), but only half when nothing is in flight: the other half goes the
    moment that one returns, and from then on one group's callers build their next rows while the other
    group is in the database. Callers that each wait for their own row would otherwise all wait on one
    group, leaving the database idle while they run and themselves idle while it commits."""
    if idle and waiting >= SPLIT_FROM:
        waiting = (waiting + 1) // 2
    return min(waiting, max_batch)


class LoopCommitter:
    """The group committer of one writer on one event loop (created by `AuditWriter.attach_event_loop`)."""

    def __init__(self, writer: AuditWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self.loop = loop
        self._pending: list[Waiter] = []
        self._ready = 0  # the first rows of `_pending` that are linked ahead (`_link_ahead`)
        self._wake = asyncio.Event()
        self._stopping = False
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._loop_thread = threading.get_ident()
        self._task = loop.create_task(self._run(), name=f"audit-loop-committer-{writer.chain_id[:8]}")

    @property
    def alive(self) -> bool:
        return not self._task.done()

    # -- submitting ----------------------------------------------------------------------------------

    def submit(self, waiter: Waiter) -> None:
        """Queue a row from a caller on this loop; refused at once when nothing would commit it."""
        if self._stopping:
            raise AuditStoreError(f"audit writer for chain {self.writer.chain_id} is closing")
        if self._task.done():  # cancelled or crashed: a queued row would wait forever
            raise AuditStoreError(
                f"audit writer for chain {self.writer.chain_id}: its committer on the event loop has stopped"
            )
        self._pending.append(waiter)
        self._wake.set()

    def submit_threadsafe(self, waiter: Waiter) -> None:
        """Queue a row from a thread that is not the loop's; the caller waits on `waiter.done`."""
        if threading.get_ident() == self._loop_thread:
            raise AuditStoreError(
                "AuditWriter.record() was called on the event loop the writer is attached to; "
                "await record_async() there instead"
            )
        try:
            self.loop.call_soon_threadsafe(self._submit_from_thread, waiter)
        except RuntimeError as exc:  # the loop is closed
            raise AuditStoreError(
                f"audit writer for chain {self.writer.chain_id}: its event loop is closed ({exc})"
            ) from None

    def _submit_from_thread(self, waiter: Waiter) -> None:
        try:
            self.submit(waiter)
        except AuditStoreError as exc:
            finish_on_loop([waiter], exc)

    # -- stopping ------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Commit every queued row, then close the connection (on the loop)."""
        self._stopping = True
        self._wake.set()
        if not self._task.done():  # a committer that was cancelled or crashed has nothing left to do
            await asyncio.shield(self._task)

    def stop_threadsafe(self) -> None:
        """`stop` from another thread; waits for it."""
        if threading.get_ident() == self._loop_thread:
            raise AuditStoreError(
                "AuditWriter.close() was called on the event loop the writer is attached to; "
                "await detach_event_loop() first"
            )
        if self.loop.is_closed() or not self.loop.is_running():
            if self._pending:
                log.warning("audit writer: %d rows queued on a stopped event loop", len(self._pending))
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self.loop).result(STOP_TIMEOUT_S)

    # -- committing ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        batch: list[Waiter] = []  # the group in the database
        sending: asyncio.Task[BaseException | None] | None = None  # its commit
        try:
            while True:
                if not batch:
                    if not self._pending:
                        if self._stopping:
                            return
                        await self._wake.wait()
                        self._wake.clear()
                        continue
                    batch, ready = self._take(idle=True)
                    sending = self.loop.create_task(self._commit(batch, ready))
                    await self._link_ahead(batch)
                assert sending is not None  # set with batch
                error = await self._outcome(sending, batch)
                done, batch = batch, []
                if self._pending:
                    # Send the next group before waking this one's callers: their next rows are built
                    # (and linked) while it travels, so the database is not left waiting on them.
                    batch, ready = self._take(idle=False)
                    sending = self.loop.create_task(self._commit(batch, ready))
                finish_on_loop(done, error)
                if batch:
                    await self._link_ahead(batch)
        finally:
            # Cancelled (the loop is being torn down): nobody will commit these rows; their callers are
            # told so rather than left waiting (a group in flight may still have reached the database).
            if batch and sending is not None:
                if not sending.done():
                    sending.cancel()
                    await asyncio.wait({sending})  # it releases the commit lock and the connection
                if not sending.cancelled() and sending.exception() is None:  # it finished first
                    finish_on_loop(batch, sending.result())
                    batch = []
            stranded = batch + self._pending
            self._pending = []
            self._ready = 0
            if batch:  # it may have reached the database: the next commit re-reads the chain's head first
                self.writer._head_uncertain = True
            if stranded:
                metrics.FAILURES.inc(len(stranded))
                finish_on_loop(stranded, AuditStoreError(f"audit writer for chain {self.writer.chain_id} stopped"))
            await self._close_connection()

    def _take(self, *, idle: bool) -> tuple[list[Waiter], int]:
        """The next group from the queue (`group_size`: half of it when nothing is in flight) and how
        many of its first rows are linked ahead."""
        count = group_size(len(self._pending), self.writer.max_batch, idle=idle)
        batch = self._pending[:count]
        del self._pending[:count]
        ready = min(self._ready, count)
        self._ready -= ready
        return batch, ready

    async def _link_ahead(self, sending: list[Waiter]) -> None:
        """Once the callers just woken have queued their next rows, chain the queue after the group in
        the database, so the next group is sent as soon as that one returns. Only a guess: `_commit`
        keeps these links only if they still follow the chain's head (the group may fail, or a thread
        commit come first)."""
        await asyncio.sleep(0)  # the woken callers run first (they were scheduled before this task)
        tail = sending[-1].content
        if self._ready or not self._pending or "hash" not in tail:  # linked already / nothing / not chained yet
            return
        self.writer.link(self._pending, tail["seq"], tail["hash"])
        self._ready = len(self._pending)

    async def _outcome(self, sending: asyncio.Task[BaseException | None], batch: list[Waiter]) -> BaseException | None:
        try:
            return await sending
        except Exception as exc:  # never leave a caller waiting
            metrics.FAILURES.inc(len(batch))
            return AuditStoreError(f"audit writer for chain {self.writer.chain_id} failed: {exc!r}")

    async def _commit(self, batch: list[Waiter], ready: int) -> BaseException | None:
        writer = self.writer
        lock = writer._commit_lock
        if not lock.acquire(blocking=False):  # the committer thread is shipping the spool, say
            await asyncio.to_thread(lock.acquire)
        try:
            if writer._head_uncertain:
                await asyncio.to_thread(writer._resync_head)
            if len(writer._spool) or not writer._db_ok:
                # The outage path: ship the spool first, else append to it (fsync), off the loop.
                return await asyncio.to_thread(writer._commit_locked, batch)
            rows = writer._chained(batch, ready)
            metrics.BATCH_ROWS.observe(len(rows))
            try:
                await write_postgres_async(await self._connect(), rows)
            except psycopg.IntegrityError as exc:
                metrics.FAILURES.inc(len(rows))
                error = writer._duplicate_chain(rows)
                error.__cause__ = exc
                return error
            except psycopg.Error as exc:
                await self._close_connection()
                writer._database_down(exc)
                try:
                    await asyncio.to_thread(writer._to_spool, rows)
                except AuditStoreError as spool_error:
                    metrics.FAILURES.inc(len(rows))
                    return spool_error
                writer._advance(rows)
                writer._wake_shipper()
                return None
            writer._persisted(rows)
            writer._advance(rows)
            return None
        finally:
            lock.release()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(
                self.writer.postgres_url(), autocommit=True, connect_timeout=2
            )
        return self._connection

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                await connection.close()
