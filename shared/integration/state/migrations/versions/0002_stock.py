"""stock: the availability view, SKU units, the outbox, file checkpoints

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stock_levels",
        sa.Column("sku", sa.String(40), nullable=False),
        sa.Column("partner_id", sa.String(128), nullable=False),
        sa.Column("location_id", sa.String(128), nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("incoming", sa.BigInteger(), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("reported_at", _TIME, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("applied_at", _TIME, nullable=False),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("previous_available", sa.BigInteger(), nullable=True),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("sku", "partner_id", "location_id", name=op.f("pk_stock_levels")),
    )
    op.create_index("ix_stock_levels_region_sku", "stock_levels", ["region", "sku"])
    op.create_index("ix_stock_levels_partner_id_sku", "stock_levels", ["partner_id", "sku"])
    op.create_index("ix_stock_levels_location_id_sku", "stock_levels", ["location_id", "sku"])
    op.create_table(
        "stock_units",
        sa.Column("sku", sa.String(40), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_stock_units")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("due_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_due_at"), "outbox", ["due_at"])
    op.create_table(
        "file_checkpoints",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lines_done", sa.BigInteger(), nullable=False),
        sa.Column("lines_published", sa.BigInteger(), nullable=False),
        sa.Column("lines_rejected", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_file_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("file_checkpoints")
    op.drop_index(op.f("ix_outbox_due_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("stock_units")
    op.drop_index("ix_stock_levels_location_id_sku", table_name="stock_levels")
    op.drop_index("ix_stock_levels_partner_id_sku", table_name="stock_levels")
    op.drop_index("ix_stock_levels_region_sku", table_name="stock_levels")
    op.drop_table("stock_levels")
