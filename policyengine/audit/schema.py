"""The audit tables: one row per decision, hash-chained per writer, plus prune checkpoints.

The schema is owned by the Alembic migrations in `migrations/`; this module is their model (a test
checks that autogenerate finds no difference on SQLite and PostgreSQL). Structured values (violations,
patch, permitted clusters, warnings, input) are stored as their canonical JSON text (sorted keys,
compact, UTF-8): the bytes the hash chain covers are the bytes stored, so nothing is re-encoded on the
write path or when verifying.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    Column("time", DateTime(timezone=True), nullable=False),
    Column("decision_id", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("cluster", String(128), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("api_version", String(128), nullable=False),
    Column("kind", String(128), nullable=False),
    Column("namespace", String(253), nullable=False),
    Column("name", String(253), nullable=False),
    Column("service", String(512), nullable=False),
    Column("source_cluster", String(128), nullable=False),
    Column("destination_cluster", String(128), nullable=False),
    Column("regimes", String(256), nullable=False),  # sorted, comma-joined: "GDPR,PIPL"
    Column("decision", String(16), nullable=False),  # allow | deny | rewrite
    Column("enforcement", String(16), nullable=False),
    Column("violations", Text, nullable=False),  # canonical JSON text
    Column("patch", Text, nullable=False),  # canonical JSON text
    Column("permitted_clusters", Text, nullable=False),  # canonical JSON text
    Column("warnings", Text, nullable=False),  # canonical JSON text
    Column("policy_revision", String(80), nullable=False),
    Column("engine", String(32), nullable=False),
    Column("latency_us", BigInteger, nullable=False),  # whole microseconds
    Column("dry_run", Boolean, nullable=False),
    Column("user", String(512), nullable=False),
    Column("input_digest", String(80), nullable=False),
    Column("input", Text, nullable=True),  # canonical JSON text, masked
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

# The columns a chained row's hash covers, in the order exports print them.
CONTENT_COLUMNS: tuple[str, ...] = (
    "time",
    "decision_id",
    "source",
    "cluster",
    "operation",
    "api_version",
    "kind",
    "namespace",
    "name",
    "service",
    "source_cluster",
    "destination_cluster",
    "regimes",
    "decision",
    "enforcement",
    "violations",
    "patch",
    "permitted_clusters",
    "warnings",
    "policy_revision",
    "engine",
    "latency_us",
    "dry_run",
    "user",
    "input_digest",
    "input",
)
CHAIN_COLUMNS: tuple[str, ...] = ("chain_id", "seq", "prev_hash", "hash")
ROW_COLUMNS: tuple[str, ...] = CONTENT_COLUMNS + CHAIN_COLUMNS
# Content columns holding canonical JSON text.
JSON_COLUMNS: tuple[str, ...] = ("violations", "patch", "permitted_clusters", "warnings", "input")
