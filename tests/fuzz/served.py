"""The served instance the fuzzers hit: `policyengine serve` (tests/webhook/harness.py) with its audit in
a fresh PostgreSQL database, and what to check after a run: its log for tracebacks, the audit rows of
the good requests, and `policyengine audit verify`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from webhook.harness import Server, start_server

from fuzz.wire_client import Tally
from policyengine.audit.signing import SigningKey

SCALE_ENV = "POLICYENGINE_FUZZ_SCALE"


def scale() -> int:
    """How many times the default number of requests a fuzz test sends (`POLICYENGINE_FUZZ_SCALE`)."""
    return max(1, int(os.environ.get(SCALE_ENV, "1")))


KEY_FILE = "audit.key"
PUBLIC_KEY_FILE = "audit.pub"


def serve(tmp_path: Path, audit_url: str, *extra: str) -> Server:
    """The server, signing its audit heads with a key made for the run (its public half beside it in
    `tmp_path`, for `verify`)."""
    key = tmp_path / KEY_FILE
    if not key.exists():
        SigningKey.generate().save(key, tmp_path / PUBLIC_KEY_FILE)
    return start_server(tmp_path, "--audit-signing-key", str(key), *extra, audit_url=audit_url)


def tracebacks(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]


def decision_ids(tally: Tally) -> list[str]:
    """The decision id every good request was answered with (header, AdmissionReview or Decision)."""
    ids = []
    for outcome in tally.good:
        assert outcome.status == 200, (outcome.request.good, outcome.status, outcome.body[:300])
        if outcome.request.good == "authz":
            ids.append(outcome.headers["x-policyengine-decision-id"])
        elif outcome.request.good == "review":
            ids.append(json.loads(outcome.body)["response"]["auditAnnotations"]["decision_id"])
        else:
            ids.append(json.loads(outcome.body)["decision_id"])
    return ids


def recorded(audit_url: str, ids: list[str]) -> set[str]:
    """Which of `ids` have an audit row."""
    engine = sa.create_engine(audit_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT decision_id FROM audit_decision")).scalars().all()
    finally:
        engine.dispose()
    return set(ids) & {str(r) for r in rows}


def verify(audit_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`policyengine audit verify --db URL --public-key ...`, as an operator runs it, with the public key
    of the key `serve` signed with."""
    public = tmp_path / PUBLIC_KEY_FILE
    command = [sys.executable, "-m", "policyengine.cli.main", "audit", "verify", "--db", audit_url]
    return subprocess.run(
        [*command, "--public-key", str(public)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary(tally: Tally) -> str:
    codes = ", ".join(f"{code}: {count}" for code, count in sorted(tally.statuses.items()))
    return f"{tally.requests} requests ({len(tally.good)} good); status codes {codes}"
