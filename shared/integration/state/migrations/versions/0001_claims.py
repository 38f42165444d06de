"""claims: dedup and idempotency claims

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_claims")),
    )
    op.create_index(op.f("ix_claims_expires_at"), "claims", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_claims_expires_at"), table_name="claims")
    op.drop_table("claims")
