"""The server's head signer: signs its writer's durable head into the registry as a checkpoint.

It registers the chain at start, signs the first durable row's head at once, then the head every
`every_rows` rows and every `every_seconds` seconds (when rows were added), and at a graceful stop the
final head, `closed` when nothing is left in the spool. What it signs is `writer.durable_head()`: the
newest row the writer itself put in the database, never a head read back from it.

One asyncio task of the server runs `run()`; the database work of each checkpoint runs in a daemon
thread of its own, one at a time (a thread the interpreter does not wait for at exit, unlike the
loop's executor: a checkpoint stuck on a frozen database must not keep the process alive). The
signer's state is touched only by that task, then by `close()` once the task has ended: nothing is
shared, so no lock. A checkpoint that fails (the database is down) is logged once per outage, counted,
and retried at the next tick; it never stops the server. A stop waits at most `stop_seconds` for the
checkpoint in flight and for the final one: a frozen database (a checkpoint that never returns)
leaves the final head unsigned, says so in the log, and never holds up the shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from policyengine.audit import metrics
from policyengine.audit.chain import GENESIS
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.sealer import Sealer

log = logging.getLogger("policyengine.audit")

DEFAULT_EVERY_ROWS = 10_000
DEFAULT_EVERY_SECONDS = 60.0
POLL_SECONDS = 0.5
STOP_SECONDS = 10.0  # below deploy/'s 30 s termination grace period


class DurableChain(Protocol):
    """What the signer reads from the writer."""

    @property
    def chain_id(self) -> str: ...

    def durable_head(self) -> tuple[int, str] | None: ...

    def spool_size(self) -> int: ...


class HeadSigner:
    """Checkpoints of one writer's chain. `new_chain`: the writer started the chain (so an empty chain
    is known first-hand to be at (0, GENESIS))."""

    def __init__(
        self,
        writer: DurableChain,
        sealer: Sealer,
        *,
        every_rows: int = DEFAULT_EVERY_ROWS,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        new_chain: bool = True,
        poll_seconds: float = POLL_SECONDS,
        stop_seconds: float = STOP_SECONDS,
    ) -> None:
        if every_rows < 1 or every_seconds <= 0:
            raise ValueError("sign every >= 1 rows and every > 0 seconds")
        self.writer = writer
        self.sealer = sealer
        self.every_rows = every_rows
        self.every_seconds = every_seconds
        self.poll_seconds = poll_seconds
        self.stop_seconds = stop_seconds
        self._stuck = False  # a checkpoint still waits for the database: `close` must not sign beside it
        self._start: tuple[int, str] | None = (0, GENESIS) if new_chain else None
        self._registered = False
        self._signed: tuple[int, str] | None = None
        self._signed_at = time.monotonic()
        self._failing = False

    @property
    def signed(self) -> tuple[int, str] | None:
        """The newest head signed (None before the first)."""
        return self._signed

    def due(self, head: tuple[int, str] | None, now: float) -> bool:
        """Whether `head` is to be signed now: the first one at once, then every N rows or T seconds."""
        if head is None or head == self._signed:
            return False
        if self._signed is None:
            return True
        return head[0] - self._signed[0] >= self.every_rows or now - self._signed_at >= self.every_seconds

    def tick(self) -> None:
        """Register the chain if not yet done, and sign the durable head if due (blocking: a thread)."""
        chain_id = self.writer.chain_id
        if not self._registered:
            self.sealer.opened(chain_id)
            self._registered = True
        head = self.writer.durable_head()
        if self.due(head, time.monotonic()):
            assert head is not None
            self.sealer.head(chain_id, *head)
            self._signed, self._signed_at = head, time.monotonic()
            metrics.SIGNED_HEADS.inc()
        self._report(head)

    async def run(self) -> None:
        """Tick every `poll_seconds` until cancelled."""
        while True:
            if not self._registered or self.due(self.writer.durable_head(), time.monotonic()):
                checkpoint = _in_daemon_thread(self._safe_tick, f"audit-checkpoint-{self.writer.chain_id[:16]}")
                try:
                    await asyncio.shield(checkpoint)
                except asyncio.CancelledError:  # finish the one in flight: `close` takes over after it
                    done, _ = await asyncio.wait({checkpoint}, timeout=self.stop_seconds)
                    self._stuck = not done
                    raise
            else:
                self._report(self.writer.durable_head())
            await asyncio.sleep(self.poll_seconds)

    def close(self) -> None:
        """The final checkpoint, after the writer closed (its durable head is then final): closed when its
        spool is empty, so no row can follow. Then the sealer's connections are released. Waits at most
        `stop_seconds` (the database may not answer)."""
        chain_id = self.writer.chain_id
        if self._stuck:
            log.warning(
                "audit head signer: the final head of chain %s is not signed: the database did not "
                "answer a checkpoint within %g s",
                chain_id,
                self.stop_seconds,
            )
            return
        final = threading.Thread(target=self._final, name=f"audit-final-head-{chain_id[:16]}", daemon=True)
        final.start()
        final.join(self.stop_seconds)
        if final.is_alive():
            log.warning(
                "audit head signer: the final head of chain %s is not signed: the database did not answer within %g s",
                chain_id,
                self.stop_seconds,
            )

    def _final(self) -> None:
        try:
            head = self.writer.durable_head() or self._start
            if head is None:
                return  # a reopened chain this writer added nothing to: nothing known first-hand
            closed = self.writer.spool_size() == 0
            if not self._registered:
                self.sealer.opened(self.writer.chain_id)
                self._registered = True
            self.sealer.head(self.writer.chain_id, *head, closed=closed)
            self._signed = head
            metrics.SIGNED_HEADS.inc()
            self._report(head)
        except AuditStoreError as exc:
            metrics.SIGNING_FAILURES.inc()
            log.warning(
                "audit head signer: the final head of chain %s is not signed (%s); "
                "its rows after the last checkpoint stay unsigned",
                self.writer.chain_id,
                exc,
            )
        finally:
            self.sealer.close()
            metrics.UNSIGNED_ROWS.set(0)

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except AuditStoreError as exc:
            metrics.SIGNING_FAILURES.inc()
            if not self._failing:
                log.warning("audit head signer: cannot sign chain %s (%s); retrying", self.writer.chain_id, exc)
            self._failing = True
            return
        except Exception:  # a bug must not stop the checkpoints for good
            metrics.SIGNING_FAILURES.inc()
            log.exception("audit head signer failed; retrying")
            return
        if self._failing:
            log.warning("audit head signer: signing chain %s again", self.writer.chain_id)
        self._failing = False

    def _report(self, head: tuple[int, str] | None) -> None:
        signed = self._signed[0] if self._signed is not None else 0
        metrics.UNSIGNED_ROWS.set(max(0, (head[0] if head is not None else 0) - signed))


def _in_daemon_thread(work: Callable[[], None], name: str) -> asyncio.Future[None]:
    """Run `work` in a new daemon thread; a future of the running loop settles when it returns."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
