"""The Alembic migrations and the SQLAlchemy models agree, and unmigrated databases are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from audit.decisions import admission_record, allow
from policyengine.audit import AuditStoreError, AuditWriter
from policyengine.audit.migrate import current_revision, head_revision, upgrade
from policyengine.audit.schema import metadata
from policyengine.audit.store import make_engine


def test_autogenerate_finds_no_difference(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(db_url: str) -> None:
    before, after = upgrade(db_url)
    assert before == after == head_revision()


def test_writer_refuses_unmigrated_database(empty_url: str, tmp_path: Path) -> None:
    with pytest.raises(AuditStoreError) as caught:
        AuditWriter.open(empty_url, spool_dir=tmp_path)
    message = str(caught.value)
    assert "has no audit schema" in message
    assert "policyengine db upgrade --db" in message


def test_unreachable_database_is_a_clear_error_when_required(tmp_path: Path) -> None:
    with pytest.raises(AuditStoreError) as caught:
        AuditWriter.open("postgresql+psycopg://postgres@127.0.0.1:1/none", spool_dir=tmp_path, require_database=True)
    assert "unreachable" in str(caught.value)


def test_a_new_chain_starts_without_the_database(tmp_path: Path) -> None:
    """A server must start while its database is down: a new chain needs nothing from it, so the writer
    opens degraded and spools (an existing chain, whose head is in the database, cannot)."""
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    with AuditWriter.open(url, spool_dir=tmp_path) as writer:
        assert writer.status().state == "degraded"
        writer.record(admission_record(allow()))
        assert writer.spool_size() == 1
        assert writer.durable_head() is None
    with pytest.raises(AuditStoreError, match="unreachable"):
        AuditWriter.open(url, chain_id="existing", spool_dir=tmp_path / "other")


def test_bad_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditStoreError) as caught:
        AuditWriter.open("mysql://x@y/z", spool_dir=tmp_path)
    assert "not supported" in str(caught.value)
