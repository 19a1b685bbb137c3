"""docs/audit.md advises giving the server's database role INSERT and SELECT on the audit tables, not
UPDATE or DELETE: a server-like writer with its head signer works under such a role on PostgreSQL,
and the role cannot change what it wrote."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, text
from sqlalchemy.exc import ProgrammingError

from audit.signed_trail import write_signed_chain
from policyengine.audit.registry import read_entries, replay
from policyengine.audit.schema import audit_decision, audit_registry
from policyengine.audit.signing import SigningKey
from policyengine.audit.store import make_engine


@pytest.fixture
def insert_only_url(pg_url: str) -> Iterator[str]:
    """`pg_url` as a new login role that may only SELECT and INSERT (dropped afterwards)."""
    role = f"pe_writer_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    database = pg_url.rsplit("/", 1)[1]
    with admin.connect() as c:
        c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        c.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
        c.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
        c.execute(text(f'GRANT INSERT ON audit_decision, audit_registry TO "{role}"'))
        c.execute(text(f'GRANT USAGE ON SEQUENCE audit_decision_id_seq TO "{role}"'))
    try:
        yield pg_url.replace("postgres@", f"{role}@", 1)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP OWNED BY "{role}"'))
            c.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_the_server_needs_only_insert_and_select(insert_only_url: str, tmp_path: Path) -> None:
    key = SigningKey.generate()
    write_signed_chain(insert_only_url, "least", 25, key, tmp_path / "spool", every_rows=10)
    engine = make_engine(insert_only_url)
    try:
        registry = replay(read_entries(engine), [key.public])
        assert registry.findings == [] and registry.chains["least"].closed
        assert registry.chains["least"].signed_seq == 25
        for table in (audit_decision, audit_registry):
            with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as c:
                c.execute(delete(table))
    finally:
        engine.dispose()
