"""catalog: products (with the partner-SKU mapping) and the regions' catalogs

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.String(40), nullable=False),
        sa.Column("partner_id", sa.String(128), nullable=False),
        sa.Column("partner_sku", sa.String(64), nullable=False),
        sa.Column("category", sa.String(200), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_products")),
        sa.UniqueConstraint("partner_id", "partner_sku", name="uq_products_partner_sku"),
    )
    op.create_index("ix_products_category_sku", "products", ["category", "sku"])
    op.create_table(
        "product_regions",
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("sku", sa.String(40), nullable=False),
        sa.Column("category", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("region", "sku", name=op.f("pk_product_regions")),
    )
    op.create_index(
        "ix_product_regions_region_category_sku", "product_regions", ["region", "category", "sku"]
    )


def downgrade() -> None:
    op.drop_index("ix_product_regions_region_category_sku", table_name="product_regions")
    op.drop_table("product_regions")
    op.drop_index("ix_products_category_sku", table_name="products")
    op.drop_table("products")
