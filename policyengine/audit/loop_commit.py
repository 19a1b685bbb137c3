"""Group commit on an asyncio event loop: the one committer that owns a chain's tail at a time.

Every writer has a home committer on an event loop of its own, in the writer's committer thread. A
server attaches the writer to its loop (`AuditWriter.attach_event_loop`, PostgreSQL only): a second
committer is made on that loop and the home committer hands it the tail (`tail.ChainTail`: seq, head,
spool, database) once the rows it holds are committed; detaching hands it back. Whoever does not hold
the tail passes every row it is given on to the writer's current owner (`call_soon_threadsafe`), so
callers on any thread or loop just hand their row to whoever they think owns it.

The owner takes every row waiting at that moment (up to `max_batch`) as one group and commits it
(`ChainTail.commit`): one INSERT or COPY when the database is up, the spool otherwise. New rows queue
while a group is in the database and form the next group, which is sent before the callers of the
group just committed are woken: the database works on one group while the server answers the other's
callers and reads their next requests (measured end to end: docs/benchmarks.md, "The audit path").
A group's commit is never cut short: if the committer is cancelled (its loop is shutting down) it
waits for the group, then hands the tail and the rows still queued back home, where they are committed.

While the database is down, a probe (a connection of its own, bounded by the sink's timeout) runs
beside the groups, so a frozen database never holds up the answers; once it answers, the spool is
shipped a few thousand rows at a time between groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from policyengine.audit import metrics
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.sinks import Outage
from policyengine.audit.tail import ChainTail
from policyengine.audit.waiters import Waiter, finish

if TYPE_CHECKING:
    from policyengine.audit.writer import AuditWriter

log = logging.getLogger("policyengine.audit")
T = TypeVar("T")

CLOSE_SHIP_S = 5.0  # how long a closing writer tries to ship its spool before leaving it on disk


class LoopCommitter:
    """The committer of one writer on one event loop. Create and drive it on that loop only."""

    def __init__(self, writer: AuditWriter, *, blocking_ok: bool) -> None:
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.tail: ChainTail | None = None
        self.has_tail = self.loop.create_future()  # set once it first holds the tail
        self._blocking_ok = blocking_ok  # its own thread's loop: spool I/O may block it
        self._pending: list[Waiter] = []
        self._durable: list[list[Waiter]] = []  # committed groups whose callers are not woken yet
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: asyncio.Task[Any] | None = None
        self._probe: asyncio.Task[str | None] | None = None
        self._task = self.loop.create_task(self._run(), name=f"audit-committer-{writer.chain_id[:8]}")

    @property
    def alive(self) -> bool:
        return not self._task.done()

    @property
    def task(self) -> asyncio.Task[None]:
        return self._task

    # -- rows in --------------------------------------------------------------------------------------

    def receive(self, waiter: Waiter) -> None:
        """Take a row (on this loop): queued when this committer holds or awaits the tail, else passed on."""
        if self.tail is not None or (self.writer.owner is self and not self._task.done()):
            self._pending.append(waiter)
            self._wake.set()
        else:
            self.writer.hand_to_owner(waiter, avoid=self)

    def take_tail(self, tail: ChainTail, waiters: list[Waiter]) -> None:
        """Become the owner's tail holder (on this loop), with rows queued by the previous holder."""
        if self._task.done():  # too late: pass it home again
            self.writer.home_takes(tail, waiters)
            return
        self.tail = tail
        self._pending[:0] = waiters
        if not self.has_tail.done():
            self.has_tail.set_result(None)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def retry_now(self) -> None:
        """Try the database (and ship the spool) now rather than at the next retry time."""
        if self.tail is not None:
            self.tail.retry_at = 0.0
        self._wake.set()

    def stop(self) -> None:
        """Commit what is queued, hand the tail on (or, at home, try to ship the spool) and end."""
        self._stopping = True
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                tail = self.tail
                if tail is not None and self._pending:
                    group = self._pending[: self.writer.max_batch]
                    del self._pending[: len(group)]
                    await self._commit(tail, group)  # wakes the previous group's callers once it is sent
                    continue
                self._answer()
                if tail is not None:
                    if self.writer.owner is not self:
                        await self._release(tail)
                        continue
                    if self._probe is not None and self._probe.done():
                        self._probed(tail, self._probe)
                        continue
                    if tail.retry_due():
                        if tail.db_up:
                            await self._ship_step(tail)
                            continue  # queued groups first, then the next step
                        if self._probe is None:
                            self._probe = self.loop.create_task(_probe(tail))
                            self._probe.add_done_callback(lambda _: self._wake.set())
                    if self._stopping and self is self.writer.home:
                        await self._close_home(tail)
                        return
                elif self._pending and self.writer.owner is not self:
                    pending, self._pending = self._pending, []
                    for waiter in pending:  # queued while the tail was on its way, then detached
                        self.writer.hand_to_owner(waiter, avoid=self)
                    continue
                elif self._stopping and not self._pending:
                    return
                await self._sleep(tail)
        finally:
            await self._wind_down()

    async def _sleep(self, tail: ChainTail | None) -> None:
        timeout = None
        if tail is not None and tail.spooling():
            timeout = max(0.0, tail.retry_at - time.monotonic()) if self._probe is None else None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    async def _commit(self, tail: ChainTail, group: list[Waiter]) -> None:
        """Commit one group; cancelling the committer does not cut it short. The callers of the group
        committed before are woken after this group's first step (its rows chained and sent)."""
        task = self.loop.create_task(self._guarded(tail, group))
        self._inflight = task
        self.loop.call_soon(self._answer)  # runs after the task's first step, before the callers resume
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight = None

    def _committed(self, group: list[Waiter]) -> None:
        self._durable.append(group)

    def _answer(self) -> None:
        """Wake the callers of the groups committed so far."""
        durable, self._durable = self._durable, []
        for group in durable:
            finish(group, None)

    async def _guarded(self, tail: ChainTail, group: list[Waiter]) -> None:
        try:
            await tail.commit(group, self.offload, self._committed)
        except asyncio.CancelledError:  # the whole loop is being torn down: the rows may have landed
            tail.uncertain = True
            finish([w for w in group if not _answered(w)], AuditStoreError("audit commit cut off by shutdown"))
            raise
        except Exception as exc:  # a bug: never leave a caller waiting, never trust the head after it
            log.exception("audit writer for chain %s: a commit failed", tail.chain_id)
            tail.uncertain = True
            metrics.FAILURES.inc(len(group))
            finish([w for w in group if not _answered(w)], AuditStoreError(f"audit commit failed: {exc!r}"))

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (spool I/O): inline on the committer's own thread, else in a worker thread."""
        if self._blocking_ok:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _ship_step(self, tail: ChainTail) -> None:
        try:
            await self._shielded(tail.ship_step(self.offload))
        except Outage as exc:
            tail.database_down(str(exc))

    def _probed(self, tail: ChainTail, probe: asyncio.Task[str | None]) -> None:
        self._probe = None
        problem = probe.result() if not probe.cancelled() else "probe cancelled"
        if problem is None:
            tail.database_answers()
        else:
            tail.database_down(problem)

    async def _shielded(self, work: Coroutine[Any, Any, T]) -> T:
        task = self.loop.create_task(work)
        self._inflight = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight = None

    async def _release(self, tail: ChainTail) -> None:
        """Hand the tail to the writer's owner (this committer is no longer it). Its database connection
        belongs to this loop: closed first (the new holder opens its own)."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        await tail.sink.close()
        self.tail = None
        if not self.writer.give_tail(tail):
            self.tail = tail  # the owner's loop is gone: keep it (the writer points back here)

    async def _close_home(self, tail: ChainTail) -> None:
        """At close: ship what the spool holds while the database answers (a while), then close."""
        deadline = time.monotonic() + CLOSE_SHIP_S
        try:
            while tail.spooled() and time.monotonic() < deadline:
                if not tail.db_up:
                    problem = await _probe(tail)
                    if problem is not None:
                        break
                    tail.database_answers()
                try:
                    if await tail.ship_step(self.offload):
                        break
                except Outage as exc:
                    tail.database_down(str(exc))
                    break
        finally:
            await tail.sink.close()

    async def _wind_down(self) -> None:
        """Whatever ended the loop: let a group in the database finish, then pass the tail and the queue
        on, so no row is left without an answer."""
        if self._probe is not None:
            self._probe.cancel()
        inflight = self._inflight
        while inflight is not None and not inflight.done():
            try:
                await asyncio.wait({inflight})
            except asyncio.CancelledError:
                continue  # the group must finish first: it holds the tail
        self._answer()
        pending, self._pending = self._pending, []
        tail, self.tail = self.tail, None
        if self is self.writer.home:
            if pending:
                finish(pending, AuditStoreError(f"audit writer for chain {self.writer.chain_id} is closed"))
            self.tail = tail
            return
        if tail is not None:
            await tail.sink.close()
            self.writer.home_takes(tail, pending)
        else:
            for waiter in pending:
                self.writer.hand_to_owner(waiter, avoid=self)


def _answered(waiter: Waiter) -> bool:
    if waiter.done is not None:
        return waiter.done.is_set()
    return waiter.future is not None and waiter.future.done()


async def _probe(tail: ChainTail) -> str | None:
    """None when the database answers a connection of its own (schema checked), else why not."""
    try:
        await tail.sink.ping()
    except Outage as exc:
        return str(exc)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
