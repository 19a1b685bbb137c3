"""A served instance whose private PostgreSQL goes away (issue #13 items 3 and 5).

- Stopped: requests go on being answered (decided, not the failure answer) while rows are spooled;
  `/readyz` stays 200 and says `degraded`; when the database is back the spool is shipped.
- Frozen (SIGSTOP: connections stay open, nothing answers): the same, within the webhook's deadline,
  because every connect and statement is bounded by a timeout.
- Killed with -9 during an outage, then a NEW process (a new chain) is started while the database is
  still down: it starts, serves, and once the database is back ships the dead process's spool too.

Each test asserts that every decision id given out is in the database afterwards (0 acknowledged rows
lost) and that verify agrees with every chain.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from audit.own_postgres import OwnPostgres

from reliability.served import Served, httproute_review, lost, serve, verified

WEBHOOK_TIMEOUT_S = 3.0  # the validating webhook's timeoutSeconds in deploy/


def _load(server: Served, stop: threading.Event, answers: list[tuple[float, int, bool]]) -> None:
    """Post reviews until `stop`; record (seconds taken, HTTP status, decided rather than failed)."""
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            answer = server.validate(httproute_review(10_000 + n), timeout=15)
        except Exception:
            answers.append((time.monotonic() - started, 0, False))
            continue
        body = answer.json()["response"] if answer.status_code == 200 else {}
        decided = "auditAnnotations" in body
        answers.append((time.monotonic() - started, answer.status_code, decided))
        n += 1


def _during(server: Served, seconds: float) -> list[tuple[float, int, bool]]:
    answers: list[tuple[float, int, bool]] = []
    stop = threading.Event()
    worker = threading.Thread(target=_load, args=(server, stop, answers))
    worker.start()
    time.sleep(seconds)
    stop.set()
    worker.join(30)
    return answers


def _readiness(server: Served) -> dict[str, object]:
    answer = server.ready()
    assert answer.status_code == 200, answer.text
    assert server.live().status_code == 200
    audit: dict[str, object] = answer.json()["checks"]["audit"]
    return audit


def test_stopped_database_spools_stays_ready_and_ships(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    server = serve(tmp_path, own_postgres.url, tmp_path / "spool")
    try:
        before = _during(server, 1.0)
        own_postgres.stop()
        down = _during(server, 4.0)
        assert _readiness(server).get("state") == "degraded"
        own_postgres.start()
        after = _during(server, 3.0)
        for label, answers in (("before", before), ("during", down), ("after", after)):
            assert answers and all(status == 200 and decided for _, status, decided in answers), (label, answers[:5])
    finally:
        server.stop()
    _nothing_lost(own_postgres.url, server.given)


def test_frozen_database_is_an_outage_within_the_deadline(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    server = serve(tmp_path, own_postgres.url, tmp_path / "spool")
    try:
        _during(server, 1.0)
        own_postgres.freeze()
        try:
            frozen = _during(server, 6.0)
            audit = _readiness(server)
        finally:
            own_postgres.thaw()
        assert audit.get("state") == "degraded", audit
        assert len(frozen) >= 20, f"only {len(frozen)} answers in 6 s with the database frozen"
        slowest = max(seconds for seconds, _, _ in frozen)
        assert slowest < WEBHOOK_TIMEOUT_S, f"an answer took {slowest:.2f} s, past the webhook timeout"
        assert all(status == 200 and decided for _, status, decided in frozen), frozen[:5]
        _during(server, 2.0)
    finally:
        server.stop()
    _nothing_lost(own_postgres.url, server.given)


def test_killed_during_an_outage_a_new_process_ships_its_spool(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = serve(tmp_path, own_postgres.url, spool, name="first")
    own_postgres.stop()
    try:
        answers = _during(first, 3.0)
        assert answers and all(status == 200 and decided for _, status, decided in answers)
    finally:
        first.kill()
    assert any(p.stat().st_size for p in spool.glob("*.spool")), "nothing was spooled"
    second = serve(tmp_path, own_postgres.url, spool, name="second")  # the database is still down
    try:
        assert _readiness(second).get("state") == "degraded"
        _during(second, 1.0)
        own_postgres.start()
        _during(second, 2.0)
        _shipped(second)  # every spool, the dead process's too, before this one stops
    finally:
        second.stop()
    _nothing_lost(own_postgres.url, first.given + second.given)
    assert not [p for p in spool.glob("*.spool") if p.stat().st_size], "a spool was left unshipped"


def _shipped(server: Served, within: float = 90.0) -> None:
    """Wait until the server's audit state is `ok` again (its spools shipped); a loaded machine may
    take a while, and a server stopped before then leaves the rest on disk for the next one."""
    deadline = time.monotonic() + within
    while (state := _readiness(server).get("state")) != "ok":
        assert time.monotonic() < deadline, f"spools not shipped within {within:g} s (audit state {state})"
        time.sleep(0.5)


def _nothing_lost(url: str, given: list[str]) -> None:
    missing = lost(url, given)
    assert not missing, f"{len(missing)} of {len(given)} acknowledged decisions lost"
    assert verified(url) >= len(given)
