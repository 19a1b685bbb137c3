"""`policyengine serve --audit-signing-key`: a real served instance signs its chain heads while it runs
(every N rows, every T seconds) and its final heads, closed, when it stops gracefully; then
`audit verify --public-key` proves every row. The private key never reaches the log or the database."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner
from webhook.harness import Server, start_server
from webhook.objects import exported_service

from policyengine.audit.schema import audit_registry
from policyengine.audit.signing import SigningKey
from policyengine.audit.store import make_engine
from policyengine.cli.main import app

runner = CliRunner()


def _validate_many(server: Server, count: int) -> None:
    for n in range(count):
        server.validate(exported_service("shop", f"checkout-{n}"))


def _wait_for(server: Server, metric: str, done: Callable[[float], bool], timeout: float = 30) -> float:
    """The metric's value once `done(value)`, or after `timeout` seconds (generous: a loaded machine)."""
    deadline = time.monotonic() + timeout
    value = server.metric(metric)
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = server.metric(metric)
    return value


def test_served_instance_signs_its_heads_and_closes_them(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    server = start_server(
        tmp_path,
        "--workers", "2",
        "--audit-signing-key", str(tmp_path / "audit.key"),
        "--audit-sign-every-rows", "5",
        "--audit-sign-every-seconds", "1",
    )  # fmt: skip
    verify = ["audit", "verify", "--db"]
    try:
        _validate_many(server, 20)  # the first durable head is signed at once ...
        assert _wait_for(server, "policyengine_audit_signed_heads_total", lambda v: v >= 1) >= 1
        _validate_many(server, 20)  # ... then again after every_rows more (all 20 may land before it)
        assert _wait_for(server, "policyengine_audit_signed_heads_total", lambda v: v >= 2) >= 2  # while serving
        _validate_many(server, 3)  # fewer than every_rows: signed once every_seconds has passed
        deadline = time.monotonic() + 30
        while True:
            running = runner.invoke(app, [*verify, server.audit_url, "--public-key", str(tmp_path / "audit.pub")])
            assert running.exit_code == 0, running.output
            if "unsigned" not in running.output or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert "unsigned" not in running.output, running.output  # the last 3 rows were signed by time
        assert "closed" not in running.output  # still serving: open chains
        assert _wait_for(server, "policyengine_audit_unsigned_rows", lambda v: v == 0) == 0
    finally:
        server.stop()  # SIGTERM: a graceful stop signs each worker's final head, closed
    result = runner.invoke(app, [*verify, server.audit_url, "--public-key", str(tmp_path / "audit.pub")])
    assert result.exit_code == 0, result.output
    chains = [line for line in result.output.splitlines() if line.startswith("chain ")]
    assert chains and all("ok, signed through seq" in line and ", closed" in line for line in chains), result.output
    assert "verified: 43 rows in" in result.output
    engine = make_engine(server.audit_url)
    with engine.connect() as connection:
        statements = [json.loads(s) for s in connection.execute(select(audit_registry.c.statement)).scalars()]
    engine.dispose()
    registered = {s["chain_id"] for s in statements if s["kind"] == "chain"}
    closed = {s["chain_id"] for s in statements if s["kind"] == "head" and s["closed"]}
    assert len(registered) == 2 and closed == registered  # each worker's chain, closed (if empty: at seq 0)
    private = (tmp_path / "audit.key").read_text()
    assert private.splitlines()[1] not in server.log.read_text() and "PRIVATE KEY" not in server.log.read_text()
    assert all(private.splitlines()[1] not in json.dumps(s) and s["key_id"] == key.key_id for s in statements)


def test_a_bad_key_file_stops_serve_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "audit.key"
    bad.write_text("not a key")
    try:
        start_server(tmp_path, "--audit-signing-key", str(bad))
    except AssertionError as exc:
        assert "--audit-signing-key" in str(exc) and "audit.key" in str(exc) and "keygen" in str(exc)
        assert "Traceback" not in str(exc)
    else:  # pragma: no cover - the failure path
        raise AssertionError("serve started with a key file that is not a key")
