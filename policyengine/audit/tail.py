"""The tail of one writer's chain and what extends it: the last (seq, hash), the spool, the database
(a `Sink`) and its state. One committer owns a tail at a time (`loop_commit.LoopCommitter`); the tail is
handed over between committers, never shared, so none of it needs a lock.

`commit(group)` makes a group of rows durable and answers their callers:

- While the database answers and the spool is empty, the group is chained after the head and inserted
  as one statement. A row the database refuses for its data (`Poison`) never blocks the others: the
  group is halved until the refused row is alone; it is answered with an error, the others are chained
  again after the real head and committed.
- On an outage (`Outage`: no connection, no answer in time) the chained rows go to the spool (fsync)
  and are acknowledged from there. From then on every group follows them into the spool until it has
  been shipped, so the database always holds a prefix of the chain and the spool the rest.
- `ship_step` ships spooled rows in order (idempotent: rows already there are skipped), a few thousand
  at a time so that new groups are never held up for long; a row refused for its data is put aside in
  a quarantine file next to the spool (logged) rather than blocking the rows behind it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from policyengine.audit import metrics
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.rowformat import GENESIS, fresh_hash
from policyengine.audit.sinks import ForkedChain, Outage, Poison, Sink
from policyengine.audit.spool import Spool, frame
from policyengine.audit.waiters import Waiter, finish

log = logging.getLogger("policyengine.audit")

Offload = Callable[..., Awaitable[Any]]  # runs a blocking call (spool I/O) where the owner allows it
Answer = Callable[[list[Waiter]], None]  # wakes the callers of a group that is durable

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
SHIP_STEP = 2000  # spooled rows shipped between two groups
SHIP_STATEMENT = 500  # rows per shipping statement


class ChainTail:
    """The end of one chain; driven only by the committer that owns it."""

    def __init__(
        self,
        chain_id: str,
        sink: Sink,
        spool: Spool,
        *,
        url: str,
        head: tuple[int, str],
        head_known: bool = True,
    ) -> None:
        self.chain_id = chain_id
        self.sink = sink
        self.spool = spool
        self.url = url  # for messages (no password)
        self.seq, self.head = head
        self.uncertain = not head_known  # re-read the head (spool, else database) before chaining
        self.durable: tuple[int, str] | None = None  # newest row known to be in the database
        self.db_up = True
        self.db_error: str | None = None
        self.retry_at = 0.0
        self._retry_delay = RETRY_FIRST_S
        self._cursor = 0  # bytes of the spool shipped since it was last emptied
        self._shipped = 0  # rows of the spool shipped since it was last emptied

    # -- state --------------------------------------------------------------------------------------

    def spooled(self) -> int:
        """Rows in the spool not yet shipped."""
        return len(self.spool) - self._shipped

    def spooling(self) -> bool:
        """True while new rows go to the spool (the database is down or the spool holds rows)."""
        return not self.db_up or self.spooled() > 0

    def retry_due(self) -> bool:
        return self.spooling() and time.monotonic() >= self.retry_at

    def database_down(self, reason: str) -> None:
        metrics.OUTAGES.inc()
        if self.db_up:
            log.warning("audit database %s unreachable (%s); spooling to %s", self.url, reason, self.spool.path)
        self.db_up = False
        self.db_error = reason
        self.retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_S)

    def database_answers(self) -> None:
        """The database answered a probe: shipping may start (new rows still follow the spool)."""
        self.db_up = True
        self.db_error = None
        self._retry_delay = RETRY_FIRST_S

    # -- committing -------------------------------------------------------------------------------------

    async def commit(self, group: list[Waiter], offload: Offload, answer: Answer | None = None) -> None:
        """Make the group's rows durable, in the database or the spool, and answer every caller: errors at
        once, success through `answer` (default: at once; a committer may first send its next group)."""
        done = answer or _answer_now
        if self.uncertain and not await self._settle_head():
            metrics.FAILURES.inc(len(group))
            finish(group, AuditStoreError(
                f"audit database {self.url}: the head of chain {self.chain_id} is unknown after an "
                f"interrupted commit and cannot be read ({self.db_error}); retry when the database answers"
            ))
            return
        if self.spooling():
            await self._spool(group, self._chain(group), offload, done, maybe_sent=False)
            return
        rows = self._chain(group)
        try:
            await self.sink.insert(rows)
        except Outage as exc:
            self.database_down(str(exc))
            await self._spool(group, rows, offload, done, maybe_sent=True)
            return
        except ForkedChain as exc:
            metrics.FAILURES.inc(len(group))
            finish(group, AuditStoreError(
                f"audit database {self.url}: chain {self.chain_id} seq {rows[0]['seq']} already exists; "
                f"another writer uses the same chain_id: give each process its own chain_id ({exc})"
            ))
            return
        except Poison as exc:
            if len(group) > 1:
                half = len(group) // 2
                await self.commit(group[:half], offload, answer)
                await self.commit(group[half:], offload, answer)
                return
            metrics.FAILURES.inc()
            log.error(
                "audit database %s refused the row of decision %s for its data (%s); its caller is refused",
                self.url, rows[0]["decision_id"], exc,
            )  # fmt: skip
            finish(group, AuditStoreError(f"audit database {self.url} refused the decision's row: {exc}"))
            return
        self._advance(rows)
        self.durable = (self.seq, self.head)
        metrics.RECORDS_IN_DATABASE.inc(len(rows))
        metrics.BATCH_ROWS.observe(len(rows))
        done(group)

    def _chain(self, group: list[Waiter]) -> list[dict[str, Any]]:
        """The group's rows linked after the head, in place (again, when a retry links them anew)."""
        seq, head, chain_id = self.seq, self.head, self.chain_id
        rows = []
        for waiter in group:
            seq += 1
            row = waiter.content
            row.pop("hash", None)
            row["chain_id"] = chain_id
            row["seq"] = seq
            row["prev_hash"] = head
            head = row["hash"] = fresh_hash(row)
            rows.append(row)
        return rows

    def _advance(self, rows: list[dict[str, Any]]) -> None:
        self.seq, self.head = rows[-1]["seq"], rows[-1]["hash"]

    async def _spool(
        self, group: list[Waiter], rows: list[dict[str, Any]], offload: Offload, done: Answer, *, maybe_sent: bool
    ) -> None:
        try:
            await offload(self.spool.append, rows)
        except AuditStoreError as exc:
            metrics.FAILURES.inc(len(rows))
            if maybe_sent:  # the database may hold them after all: read the head before chaining again
                self.uncertain = True
            finish(group, exc)
            return
        self._advance(rows)
        metrics.SPOOL_ROWS.inc(len(rows))
        metrics.RECORDS_IN_SPOOL.inc(len(rows))
        done(group)

    async def _settle_head(self) -> bool:
        """Re-read the head: the spool's last row, else the database's (False when it cannot be read)."""
        last = self.spool.read()[-1:] if len(self.spool) else []
        if last:
            self.seq, self.head = int(last[0]["seq"]), str(last[0]["hash"])
        else:
            try:
                found = await self.sink.head(self.chain_id)
            except (Outage, Poison) as exc:
                self.database_down(str(exc))
                return False
            self.seq, self.head = found or (0, GENESIS)
            self.durable = found
        self.uncertain = False
        return True

    # -- shipping ---------------------------------------------------------------------------------------

    async def ship_step(self, offload: Offload) -> bool:
        """Ship up to SHIP_STEP spooled rows; True once the spool is empty (and emptied). Raises Outage."""
        rows, offset = await offload(self.spool.read_from, self._cursor, SHIP_STEP)
        if rows:
            await ship(self.sink, rows, self.spool.path.parent, offload)
            self._cursor, self._shipped = offset, self._shipped + len(rows)
            metrics.SPOOL_ROWS.dec(len(rows))
            metrics.SHIPPED.inc(len(rows))
            mine = [r for r in rows if r.get("chain_id") == self.chain_id]
            if mine:
                self.durable = (int(mine[-1]["seq"]), str(mine[-1]["hash"]))
        if rows and offset < await offload(self.spool.size):
            return False
        shipped = self._shipped
        await offload(self.spool.clear)
        self._cursor = self._shipped = 0
        if shipped:
            log.warning("audit spool %s: shipped %d rows to %s", self.spool.path, shipped, self.url)
        return True


def _answer_now(group: list[Waiter]) -> None:
    finish(group, None)


async def ship(sink: Sink, rows: list[dict[str, Any]], quarantine_dir: Path, offload: Offload) -> None:
    """Insert spooled rows, skipping those already there; a row refused for its data is put aside in
    `<chain>.poison` (quarantine_dir) and logged, and the rest go on. Raises Outage."""
    for start in range(0, len(rows), SHIP_STATEMENT):
        await _ship_bisecting(sink, rows[start : start + SHIP_STATEMENT], quarantine_dir, offload)


async def _ship_bisecting(sink: Sink, rows: list[dict[str, Any]], quarantine_dir: Path, offload: Offload) -> None:
    try:
        await sink.ship(rows)
    except Poison as exc:
        if len(rows) > 1:
            half = len(rows) // 2
            await _ship_bisecting(sink, rows[:half], quarantine_dir, offload)
            await _ship_bisecting(sink, rows[half:], quarantine_dir, offload)
            return
        (row,) = rows
        path = quarantine_dir / f"{row['chain_id']}.poison"
        await offload(_append, path, frame(row))
        metrics.FAILURES.inc()
        log.error(
            "audit spool: the database refused chain %s seq %s for its data (%s); the row is kept in %s "
            "and verify will report it missing until it is restored",
            row["chain_id"], row["seq"], exc, path,
        )  # fmt: skip


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
