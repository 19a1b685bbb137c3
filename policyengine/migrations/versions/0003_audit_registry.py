"""The signed registry of chains: audit_registry (numbered, linked, signed statements).

Revision ID: 0003_audit_registry
Revises: 0002_row_format
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_audit_registry"
down_revision: str | None = "0002_row_format"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_registry",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_audit_registry"),
    )


def downgrade() -> None:
    op.drop_table("audit_registry")
