"""A policy reload while the server is busy: requests keep being answered, the log has no traceback
(regorus engines are dropped on the threads that made them) and exactly one line naming the new
revision. A real `policyengine serve` over HTTPS, its log at info level, load from client threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from .conftest import webhook_policies
from .harness import Server, review, ssl_context, start_server
from .objects import http_route

LOAD_THREADS = 3
MAX_REQUESTS_PER_THREAD = 4000
MAX_LOAD_SECONDS = 60.0
SOURCE = "x-policyengine-source"
CHECKOUT = "spiffe://acme.example/ns/shop/sa/checkout"


class Load:
    """Client threads sending /v1/authz and /validate until stopped (bounded in count and time)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.stop = threading.Event()
        self.answered = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)]

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_LOAD_SECONDS
        body = review(http_route("shop", "profile"))
        with httpx.Client(base_url=self.server.base_url, verify=ssl_context(self.server.ca), timeout=10) as c:
            for n in range(MAX_REQUESTS_PER_THREAD):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                if n % 2:
                    answer = c.get("/v1/authz", headers={"host": "catalog.shop", SOURCE: CHECKOUT})
                    ok = answer.status_code in (200, 403)
                else:
                    answer = c.post("/validate", json=body)
                    ok = answer.status_code == 200
                with self._lock:
                    self.answered += 1
                    if not ok:
                        self.failures.append(f"{answer.status_code} {answer.text[:200]}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def wait_until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_reload_under_load_logs_one_line_and_no_traceback(tmp_path: Path) -> None:
    policies = webhook_policies(tmp_path)
    server = start_server(tmp_path, "--policy-check-seconds", "0.3", "--log-level", "info", policies=policies)
    try:
        first = str(server.decide()["policy_revision"])
        with Load(server) as load:
            wait_until(lambda: load.answered >= 200)  # the filter and the webhook are busy
            enforcement = policies / "enforcement.yaml"
            text = enforcement.read_text().replace("[sandbox], action: dryrun", "[sandbox], action: deny")
            enforcement.write_text(text)
            wait_until(lambda: str(server.decide()["policy_revision"]) != first)
            second = str(server.decide()["policy_revision"])
            before = load.answered
            wait_until(lambda: load.answered >= before + 200)  # load on past the swap and table rebuild
        assert not load.failures, load.failures[:5]
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and "unsendable" not in log, log[-4000:]
    naming = [line for line in log.splitlines() if second.removeprefix("sha256:")[:16] in line]
    reloaded = [line for line in naming if "policy reloaded" in line]
    assert len(reloaded) == 1, naming  # one reload line ...
    assert "policy reloaded: serving " + second in reloaded[0]
    tables = [line for line in naming if line not in reloaded]
    assert len(tables) <= 1 and all("routing table" in line and "complete" in line for line in tables), naming
    # ... and at most the routing table's completion line for the new revision (issue 17), nothing else
