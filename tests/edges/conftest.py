"""Fixtures of the edge tests: one real HTTPS server per module (tests/webhook/harness.py: `policyengine
serve` in a subprocess, SQLite audit, the default policy repo), its log checked for tracebacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webhook.harness import Server, start_server


def tracebacks(server: Server) -> list[str]:
    """The lines of the server log that start a traceback (each one an unhandled error)."""
    return [line for line in server.log.read_text(errors="replace").splitlines() if "Traceback" in line]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("edges"))
    yield running
    running.stop()


@pytest.fixture
def pg_url(pg_empty_url: str) -> str:
    """A fresh migrated PostgreSQL database (tests/conftest.py drops it after the test)."""
    from policyengine.audit.migrate import upgrade

    upgrade(pg_empty_url)
    return pg_empty_url
