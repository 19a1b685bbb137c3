"""Row format 2: a `format` column (the format each row's hash was computed in; existing rows read 1),
and unbounded text for every column a request can fill, so no value a request carries is refused.

Revision ID: 0002_row_format
Revises: 0001_audit_trail
Create Date: 2026-05-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_row_format"
down_revision: str | None = "0001_audit_trail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns that were bounded in 0001: (name, length). PostgreSQL changes varchar to text in place
# (no rewrite); SQLite's batch mode copies the table.
WIDENED = (
    ("cluster", 128),
    ("operation", 32),
    ("api_version", 128),
    ("kind", 128),
    ("namespace", 253),
    ("name", 253),
    ("service", 512),
    ("source_cluster", 128),
    ("destination_cluster", 128),
    ("regimes", 256),
    ("policy_revision", 80),
    ("user", 512),
    ("input_digest", 80),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_decision") as batch:
        batch.add_column(sa.Column("format", sa.SmallInteger(), nullable=False, server_default=sa.text("1")))
        for name, length in WIDENED:
            batch.alter_column(name, existing_type=sa.String(length), type_=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_decision") as batch:
        for name, length in WIDENED:
            batch.alter_column(name, existing_type=sa.Text(), type_=sa.String(length), existing_nullable=False)
        batch.drop_column("format")
