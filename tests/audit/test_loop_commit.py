"""A PostgreSQL writer attached to an event loop (what the server does): group commits on the loop over
an asyncio connection, sync callers on other threads handed to it, one gapless chain across attach and
detach, and the outage path (spool, then ship) still intact."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

import pytest

from audit.decisions import admission_record, allow, gdpr_denial
from audit.own_postgres import OwnPostgres, stored_ids
from policyengine.audit import AuditStoreError, AuditWriter
from policyengine.audit import waiters as loop_waiters
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify


def _coroutine_name(task: asyncio.Task[object]) -> str:
    coroutine = task.get_coro()
    return str(getattr(coroutine, "__qualname__", ""))


def _verified_rows(url: str) -> int:
    report = verify(make_engine(url))
    assert report.ok, report.findings
    return report.rows


def test_attached_writer_chains_loop_and_thread_callers(pg_url: str, tmp_path: Path) -> None:
    per_thread, per_loop = 40, 300

    async def main(writer: AuditWriter) -> None:
        assert await writer.attach_event_loop()
        assert writer._loop_committer is not None  # the loop path is the one under test

        def work(t: int) -> None:  # sync callers on other threads, handed to the loop
            for n in range(per_thread):
                writer.record(admission_record(gdpr_denial(t * 1000 + n), n))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        await asyncio.gather(*(writer.record_async(admission_record(allow(n), n)) for n in range(per_loop)))
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        assert writer.healthy()
        await writer.detach_event_loop()
        assert writer._loop_committer is None
        await writer.record_async(admission_record(allow(-1)))  # back on the committer thread

    writer = AuditWriter.open(pg_url, spool_dir=tmp_path)
    try:
        writer.record(admission_record(allow(-2)))  # before attaching: the committer thread
        asyncio.run(main(writer))
    finally:
        writer.close()
    assert _verified_rows(pg_url) == 2 + per_loop + 4 * per_thread


def test_attach_is_postgresql_only(sqlite_empty_url: str, tmp_path: Path) -> None:
    """SQLite commits block, so a SQLite writer stays on its committer thread."""
    from policyengine.audit.migrate import upgrade

    upgrade(sqlite_empty_url)

    async def main(writer: AuditWriter) -> None:
        assert not await writer.attach_event_loop()
        await asyncio.gather(*(writer.record_async(admission_record(allow(n), n)) for n in range(20)))

    with AuditWriter.open(sqlite_empty_url, spool_dir=tmp_path) as writer:
        asyncio.run(main(writer))
    assert _verified_rows(sqlite_empty_url) == 20


def test_sync_record_on_the_attached_loop_is_refused(pg_url: str, tmp_path: Path) -> None:
    """Blocking the loop the commits run on would wait forever: a clear error instead."""

    async def main(writer: AuditWriter) -> None:
        await writer.attach_event_loop()
        with pytest.raises(AuditStoreError, match="await record_async"):
            writer.record(admission_record(allow()))
        await writer.record_async(admission_record(allow(1)))
        await writer.detach_event_loop()

    with AuditWriter.open(pg_url, spool_dir=tmp_path) as writer:
        asyncio.run(main(writer))
    assert _verified_rows(pg_url) == 1


def test_close_off_the_loop_commits_what_the_loop_holds(pg_url: str, tmp_path: Path) -> None:
    """close() from another thread while still attached (a server's shutdown path) drains the loop."""
    writer = AuditWriter.open(pg_url, spool_dir=tmp_path)

    async def main() -> None:
        await writer.attach_event_loop()
        pending = [asyncio.ensure_future(writer.record_async(admission_record(allow(n), n))) for n in range(30)]
        await asyncio.to_thread(writer.close)
        await asyncio.gather(*pending)

    asyncio.run(main())
    assert _verified_rows(pg_url) == 30


def test_outage_while_attached_spools_then_ships(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    writer = AuditWriter.open(own_postgres.url, chain_id="loop-outage", spool_dir=tmp_path)
    recorded: list[str] = []

    async def caller(n0: int, stop: asyncio.Event) -> None:
        n = n0
        while not stop.is_set():
            record = admission_record(gdpr_denial(n), n)
            await writer.record_async(record)
            recorded.append(record.decision.decision_id)
            n += 1
            await asyncio.sleep(0.001)

    async def main() -> None:
        assert await writer.attach_event_loop()
        stop = asyncio.Event()
        callers = [asyncio.create_task(caller(k * 100_000, stop)) for k in range(4)]
        while len(recorded) < 200:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(own_postgres.stop)
        deadline = time.monotonic() + 20
        while writer.spool_size() < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert writer.spool_size() >= 200, "rows did not go to the spool while the database was down"
        assert not writer.healthy()
        await asyncio.to_thread(own_postgres.start)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*callers)  # no caller saw an error
        assert await asyncio.to_thread(writer.flush, 30), f"{writer.spool_size()} rows still spooled"
        after = admission_record(allow())
        await writer.record_async(after)  # the loop path again, after the outage
        recorded.append(after.decision.decision_id)
        assert writer.healthy()
        await writer.detach_event_loop()

    try:
        asyncio.run(main())
    finally:
        writer.close()
    stored = stored_ids(own_postgres.url)
    assert len(stored) == len(recorded) and set(stored) == set(recorded)
    assert _verified_rows(own_postgres.url) == len(recorded)


def test_a_second_writer_on_the_same_chain_is_refused_on_either_path(pg_url: str, tmp_path: Path) -> None:
    """Two processes given one chain_id would fork the chain: the database's (chain_id, seq) key refuses
    the second writer's rows, and the caller is told why, on the loop path and on the thread path."""
    first = AuditWriter.open(pg_url, chain_id="shared", spool_dir=tmp_path / "first")
    second = AuditWriter.open(pg_url, chain_id="shared", spool_dir=tmp_path / "second")
    try:
        first.record(admission_record(allow(1)))  # seq 1; `second` also thinks seq 1 comes next

        async def main() -> None:
            assert await second.attach_event_loop()
            with pytest.raises(AuditStoreError, match="another writer uses the same chain_id"):
                await second.record_async(admission_record(allow(2)))
            await second.detach_event_loop()

        asyncio.run(main())
        with pytest.raises(AuditStoreError, match="another writer uses the same chain_id"):
            second.record(admission_record(allow(3)))
        assert second.spool_size() == 0  # refused, not spooled: the rows would never ship
    finally:
        first.close()
        second.close()
    assert _verified_rows(pg_url) == 1


def test_a_stopped_loop_committer_refuses_at_once(pg_url: str, tmp_path: Path) -> None:
    """If the committer task is gone (cancelled with its loop, or a bug), callers get an error at once
    (the server then refuses, fail closed) instead of waiting forever, and the writer reports unhealthy.
    A group cut off mid-commit makes the next commit re-read the chain's head, so nothing forks."""

    async def main(writer: AuditWriter) -> None:
        await writer.attach_event_loop()
        await writer.record_async(admission_record(allow(1)))
        committer = writer._loop_committer
        assert committer is not None
        in_flight = asyncio.ensure_future(writer.record_async(admission_record(allow(9))))
        await asyncio.sleep(0)  # queued, its committer woken
        committer._task.cancel()
        with pytest.raises(AuditStoreError, match="stopped"):
            await in_flight  # told, not left waiting
        await asyncio.sleep(0.01)
        assert not writer.healthy()
        with pytest.raises(AuditStoreError, match="committer on the event loop has stopped"):
            await writer.record_async(admission_record(allow(2)))
        await writer.detach_event_loop()  # the committer thread takes over again
        await writer.record_async(admission_record(allow(3)))

    with AuditWriter.open(pg_url, spool_dir=tmp_path) as writer:
        asyncio.run(main(writer))
    # The cut-off row may have reached the database before the cancellation (its caller was refused
    # all the same); either way the next row follows it and the chain verifies.
    assert _verified_rows(pg_url) in (2, 3)


def test_a_group_cut_off_after_reaching_the_database_is_followed_not_forked(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committer is cancelled after its statement reached the database but before it learned so:
    the writer re-reads the chain's head, so the next row follows the cut-off one (no duplicate seq)."""
    from policyengine.audit import loop_commit

    real_write = loop_commit.write_postgres_async
    reached = asyncio.Event()

    async def write_then_hang(driver: object, rows: list[dict[str, object]]) -> None:
        await real_write(driver, rows)  # type: ignore[arg-type]
        reached.set()
        await asyncio.Event().wait()  # never answers: cut off here

    async def main(writer: AuditWriter) -> None:
        await writer.attach_event_loop()
        await writer.record_async(admission_record(allow(1)))
        monkeypatch.setattr(loop_commit, "write_postgres_async", write_then_hang)
        cut_off = asyncio.ensure_future(writer.record_async(admission_record(allow(2))))
        await reached.wait()
        committer = writer._loop_committer
        assert committer is not None
        committer._task.cancel()
        with pytest.raises(AuditStoreError, match="stopped"):
            await cut_off
        await writer.detach_event_loop()
        await writer.record_async(admission_record(allow(3)))  # the thread path: seq 3, after the cut-off row

    with AuditWriter.open(pg_url, spool_dir=tmp_path) as writer:
        asyncio.run(main(writer))
    assert _verified_rows(pg_url) == 3


def test_the_next_group_is_sent_before_the_last_groups_callers_wake(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 callers that each wait for their row before recording the next would otherwise move in one
    group: the committer sends half, then each group the moment the other returns, before waking the
    returned group's callers (so their next rows are built while the database works)."""
    from policyengine.audit import loop_commit

    real_write = loop_commit.write_postgres_async
    events: list[tuple[str, int]] = []  # ("sent", first seq of a group) / ("woke", the seq a caller waited on)

    async def logged_write(driver: object, rows: list[dict[str, object]]) -> None:
        events.append(("sent", int(rows[0]["seq"])))  # type: ignore[call-overload]
        await real_write(driver, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(loop_commit, "write_postgres_async", logged_write)
    callers, rounds = 32, 6

    async def caller(writer: AuditWriter, k: int) -> None:
        for n in range(rounds):
            await writer.record_async(admission_record(allow(k * 100 + n), n))
            events.append(("woke", k))

    async def main(writer: AuditWriter) -> None:
        await writer.attach_event_loop()
        await asyncio.gather(*(caller(writer, k) for k in range(callers)))
        await writer.detach_event_loop()

    with AuditWriter.open(pg_url, spool_dir=tmp_path) as writer:
        asyncio.run(main(writer))
    assert _verified_rows(pg_url) == callers * rounds
    sends = [n for n, (kind, _) in enumerate(events) if kind == "sent"]
    assert len(sends) >= 2 * rounds  # two alternating groups, not one group of all 32
    for previous, current in itertools.pairwise(sends):
        # Between two sends, only the callers of one group wake: the next group left before them.
        between = [k for kind, k in events[previous + 1 : current] if kind == "woke"]
        assert len(between) <= callers // 2 + 1, (previous, between)


def test_rows_linked_ahead_of_a_failed_group_are_linked_again(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a group is in the database the queued rows are linked after it; when that group fails
    without advancing the chain (here the database refuses it as a duplicate), they are linked again
    after the real head, and their hashes rebuilt, so the rows that do commit form a verifiable chain."""
    import psycopg

    from policyengine.audit import loop_commit

    real_write = loop_commit.write_postgres_async
    refused: list[int] = []

    async def refuse_first_group(driver: object, rows: list[dict[str, object]]) -> None:
        if not refused:
            refused.append(len(rows))
            await asyncio.sleep(0.05)  # in the database long enough for the queue to be linked after it
            raise psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")
        await real_write(driver, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(loop_commit, "write_postgres_async", refuse_first_group)
    links: list[int] = []  # the seq each link starts after

    async def main(writer: AuditWriter) -> list[BaseException | None]:
        real_link = writer.link

        def spy(batch: list[loop_commit.Waiter], seq: int, head: str) -> None:
            links.append(seq)
            real_link(batch, seq, head)

        monkeypatch.setattr(writer, "link", spy)
        await writer.attach_event_loop()
        outcomes = await asyncio.gather(
            *(writer.record_async(admission_record(allow(n), n)) for n in range(32)), return_exceptions=True
        )
        await writer.detach_event_loop()
        return outcomes

    with AuditWriter.open(pg_url, spool_dir=tmp_path) as writer:
        outcomes = asyncio.run(main(writer))
    failed = [o for o in outcomes if isinstance(o, AuditStoreError)]
    assert len(failed) == refused[0] == 16  # the first half was refused, and its callers told so
    assert 16 in links  # the second half was linked ahead, after the refused group...
    assert links[-1] == 0  # ...and again after the real head when its turn came
    assert _verified_rows(pg_url) == 16


def test_a_committer_cancelled_between_sending_and_waiting_stops_its_commit(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled right after a group's commit was started and before the committer waits on it (while
    it links the queue ahead): the commit is cancelled and waited for too, so nothing is left using the
    connection the committer closes, every caller is answered, and the chain goes on after whatever
    reached the database."""
    from policyengine.audit.loop_commit import LoopCommitter

    real_link_ahead = LoopCommitter._link_ahead

    async def cancelled_here(self: LoopCommitter, sending: list[loop_waiters.Waiter]) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await real_link_ahead(self, sending)

    async def main(writer: AuditWriter) -> tuple[list[BaseException | None], list[str]]:
        await writer.attach_event_loop()
        committer = writer._loop_committer
        assert committer is not None
        monkeypatch.setattr(LoopCommitter, "_link_ahead", cancelled_here)
        outcomes = await asyncio.gather(
            *(writer.record_async(admission_record(allow(n), n)) for n in range(32)), return_exceptions=True
        )
        await asyncio.wait({committer._task})
        left = [name for t in asyncio.all_tasks() if (name := _coroutine_name(t)) == "LoopCommitter._commit"]
        monkeypatch.undo()
        await writer.detach_event_loop()
        await writer.record_async(admission_record(allow(99)))  # the thread path, after the real head
        return outcomes, left

    with AuditWriter.open(pg_url, spool_dir=tmp_path) as writer:
        outcomes, left = asyncio.run(main(writer))
    assert left == []  # the commit in flight was not left running on a closed connection
    assert all(o is None or isinstance(o, AuditStoreError) for o in outcomes)
    committed = sum(o is None for o in outcomes)
    assert committed in (0, 16)
    assert _verified_rows(pg_url) in (committed + 1, 16 + 1)  # the cut-off group may have reached it
