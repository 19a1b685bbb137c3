"""The audit trail: audit_decision (hash-chained rows) and audit_checkpoint (prune checkpoints).

Revision ID: 0001_audit_trail
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_audit_trail"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_decision",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("cluster", sa.String(128), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("api_version", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(128), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("service", sa.String(512), nullable=False),
        sa.Column("source_cluster", sa.String(128), nullable=False),
        sa.Column("destination_cluster", sa.String(128), nullable=False),
        sa.Column("regimes", sa.String(256), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("enforcement", sa.String(16), nullable=False),
        sa.Column("violations", sa.Text(), nullable=False),
        sa.Column("patch", sa.Text(), nullable=False),
        sa.Column("permitted_clusters", sa.Text(), nullable=False),
        sa.Column("warnings", sa.Text(), nullable=False),
        sa.Column("policy_revision", sa.String(80), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("latency_us", sa.BigInteger(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("user", sa.String(512), nullable=False),
        sa.Column("input_digest", sa.String(80), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("chain_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_decision"),
        sa.UniqueConstraint("chain_id", "seq", name="uq_audit_decision_chain_id_seq"),
    )
    op.create_index("ix_audit_decision_time_id", "audit_decision", ["time", "id"])
    op.create_index("ix_audit_decision_regimes_time", "audit_decision", ["regimes", "time"])
    op.create_index("ix_audit_decision_decision_time", "audit_decision", ["decision", "time"])
    op.create_index("ix_audit_decision_cluster_time", "audit_decision", ["cluster", "time"])
    op.create_table(
        "audit_checkpoint",
        sa.Column("chain_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("pruned_rows", sa.BigInteger(), nullable=False),
        sa.Column("pruned_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name="pk_audit_checkpoint"),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoint")
    op.drop_index("ix_audit_decision_cluster_time", table_name="audit_decision")
    op.drop_index("ix_audit_decision_decision_time", table_name="audit_decision")
    op.drop_index("ix_audit_decision_regimes_time", table_name="audit_decision")
    op.drop_index("ix_audit_decision_time_id", table_name="audit_decision")
    op.drop_table("audit_decision")
