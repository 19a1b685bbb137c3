"""A PostgreSQL writer attached to an event loop (what the server does): group commits on the loop over
an asyncio connection, sync callers on other threads handed to it, one gapless chain across attach and
detach, and the outage path (spool, then ship) still intact."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from audit.decisions import admission_record, allow, gdpr_denial
from audit.own_postgres import OwnPostgres, stored_ids
from policyengine.audit import AuditStoreError, AuditWriter
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
        assert writer.owner is not writer.home  # the loop path is the one under test

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
        assert writer.owner is writer.home
        await writer.record_async(admission_record(allow(-1)))  # back on the committer thread

    # A generous statement bound: on a loaded machine the default (1 s) can take a slow commit for an
    # outage, and the rows would go through the spool instead of the loop path this test is about.
    writer = AuditWriter.open(pg_url, spool_dir=tmp_path, timeout_s=15)
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


def test_a_cancelled_loop_committer_hands_the_tail_home(pg_url: str, tmp_path: Path) -> None:
    """The server loop's committer is cancelled (its loop torn down without detaching): the group in the
    database finishes, the tail and the queued rows go back to the writer's thread, and later rows
    from this loop and from threads are committed there. Nothing is refused, nothing forks."""

    async def main(writer: AuditWriter) -> None:
        await writer.attach_event_loop()
        await writer.record_async(admission_record(allow(1)))
        committer = writer.owner
        queued = [asyncio.ensure_future(writer.record_async(admission_record(allow(n)))) for n in range(2, 12)]
        await asyncio.sleep(0)
        committer.task.cancel()
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        assert all(o is None for o in outcomes), outcomes
        assert writer.owner is writer.home
        await writer.record_async(admission_record(allow(12)))  # through the writer's thread now
        await asyncio.to_thread(writer.record, admission_record(allow(13)))

    with AuditWriter.open(pg_url, spool_dir=tmp_path) as writer:
        asyncio.run(main(writer))
        assert writer.healthy()
    assert _verified_rows(pg_url) == 13


def test_a_commit_that_reached_the_database_but_never_answered_is_spooled_not_forked(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement reaches the database, then the answer never comes (as with a frozen server): after
    the sink's timeout the rows are spooled and acknowledged, and shipping them later skips the copies
    already there, so the chain neither loses nor repeats a row."""
    from policyengine.audit import sinks

    real_write = sinks.write_postgres_async
    hung: list[int] = []

    async def write_then_hang(driver: object, rows: list[dict[str, object]]) -> None:
        await real_write(driver, rows)  # type: ignore[arg-type]
        if not hung:
            hung.append(len(rows))
            await asyncio.Event().wait()  # never answers

    monkeypatch.setattr(sinks, "write_postgres_async", write_then_hang)

    async def main(writer: AuditWriter) -> None:
        await writer.attach_event_loop()
        await writer.record_async(admission_record(allow(1)))  # hangs, times out, spooled: acknowledged
        assert writer.spool_size() == 1
        assert await asyncio.to_thread(writer.flush, 20)
        await writer.record_async(admission_record(allow(2)))
        await writer.detach_event_loop()

    with AuditWriter.open(pg_url, spool_dir=tmp_path, timeout_s=0.5) as writer:
        asyncio.run(main(writer))
    assert _verified_rows(pg_url) == 2


def test_cancelled_while_the_database_is_frozen_no_caller_hangs(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    """Issue #13 item 7: the loop committer used to wait for a lock shared with the committer thread; if
    it was cancelled while waiting (a loop torn down), the lock stayed taken and every later `record()`
    and `close()` hung. Here the database is frozen (SIGSTOP) so the thread side is busy retrying while
    the loop's committer is cancelled with every other task of its loop (as `asyncio.run` does at
    exit). Then, with the database thawed, `record()` from a thread and `close()` must return, and
    every acknowledged row must be in the database."""
    writer = AuditWriter.open(own_postgres.url, chain_id="item-7", spool_dir=tmp_path)
    acknowledged: list[str] = []

    async def one(n: int) -> None:
        record = admission_record(allow(n))
        await writer.record_async(record)
        acknowledged.append(record.decision.decision_id)

    async def main() -> None:
        assert await writer.attach_event_loop()
        await one(0)
        own_postgres.freeze()
        first = asyncio.ensure_future(one(1))
        await asyncio.sleep(2.5)  # the first row is spooled after the timeout; retries begin
        later = [asyncio.ensure_future(one(n)) for n in range(2, 6)]
        await asyncio.sleep(0.7)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(first, *later, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        own_postgres.thaw()
    done = threading.Event()

    def record_then_close() -> None:
        record = admission_record(allow(99))
        writer.record(record)
        acknowledged.append(record.decision.decision_id)
        writer.flush(30)
        writer.close()
        done.set()

    worker = threading.Thread(target=record_then_close, daemon=True)
    worker.start()
    worker.join(60)
    assert done.is_set(), "record() or close() hung after the loop committer was cancelled"
    stored = set(stored_ids(own_postgres.url))
    assert set(acknowledged) <= stored, f"{len(set(acknowledged) - stored)} acknowledged rows missing"
    assert _verified_rows(own_postgres.url) == len(stored)


def test_the_next_group_is_sent_before_the_last_groups_callers_resume(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that queued while a group was in the database go out as the next group before the callers
    of the group just committed are woken, so the database works while those callers answer (the end
    to end gain of docs/benchmarks.md, "The audit path redesign"). Without it, each group waited for
    the previous group's callers to run first."""
    from policyengine.audit import sinks

    real_write = sinks.write_postgres_async
    events: list[str] = []

    async def logged_write(driver: object, rows: list[dict[str, object]]) -> None:
        events.append(f"send {len(rows)}")
        await real_write(driver, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(sinks, "write_postgres_async", logged_write)

    async def caller(n: int) -> None:
        await writer.record_async(admission_record(allow(n)))
        events.append(f"answered {n}")

    async def main() -> None:
        await writer.attach_event_loop()
        first = asyncio.ensure_future(caller(0))
        while not events:  # the first group (one row) is in the database
            await asyncio.sleep(0)
        rest = [asyncio.ensure_future(caller(n)) for n in (1, 2, 3)]  # queue behind it
        await asyncio.gather(first, *rest)
        await writer.detach_event_loop()

    writer = AuditWriter.open(pg_url, spool_dir=tmp_path, timeout_s=15)
    try:
        asyncio.run(main())
    finally:
        writer.close()
    assert events[:3] == ["send 1", "send 3", "answered 0"], events
    assert _verified_rows(pg_url) == 4
