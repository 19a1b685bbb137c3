"""The audit tables: one row per decision, hash-chained per writer; prune checkpoints; the signed
registry of chains (`statements.py` defines what its entries say).

The schema is owned by the Alembic migrations in `migrations/`; this module is their model (a test
checks that autogenerate finds no difference on SQLite and PostgreSQL). The decision table's columns
come from the row format (`rowformat.CONTENT`): structured values are stored as their canonical JSON
text, so the bytes the hash chain covers are the bytes stored and nothing is re-encoded on the write
path or when verifying.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from policyengine.audit.rowformat import (
    CHAIN_COLUMNS,
    CONTENT,
    CONTENT_COLUMNS,
    FORMAT_COLUMN,
    JSON_COLUMNS,
    NULLABLE,
    ROW_COLUMNS,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

RowId = BigInteger().with_variant(Integer(), "sqlite")

audit_decision = Table(
    "audit_decision",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    *(Column(name, sql_type, nullable=name in NULLABLE) for name, _, sql_type in CONTENT),
    # The row format its hash was computed in (rowformat.FORMAT); rows from before 0002 read 1.
    Column(FORMAT_COLUMN, SmallInteger, nullable=False, server_default=text("1")),
    Column("chain_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("chain_id", "seq"),
    Index(None, "time", "id"),  # exports stream in (time, id) order
    Index(None, "regimes", "time"),
    Index(None, "decision", "time"),
    Index(None, "cluster", "time"),
)

audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("chain_id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # the last pruned row of the chain
    Column("hash", String(64), nullable=False),  # its hash: the next row's prev_hash
    Column("pruned_rows", BigInteger, nullable=False),
    Column("pruned_before", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False),
)

# The signed registry: entry `number` holds a statement's canonical bytes (as UTF-8 text) and its
# Ed25519 signature (base64). Append-only; verify checks every entry's signature and link.
audit_registry = Table(
    "audit_registry",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("statement", Text, nullable=False),
    Column("signature", String(128), nullable=False),
)

# The row format's column lists, re-exported for the table's readers.
__all__ = [
    "CHAIN_COLUMNS",
    "CONTENT_COLUMNS",
    "JSON_COLUMNS",
    "ROW_COLUMNS",
    "audit_checkpoint",
    "audit_decision",
    "audit_registry",
    "metadata",
]
