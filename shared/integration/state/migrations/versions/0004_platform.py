"""platform: API keys, partner source bindings, Kafka seen ids

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.String(128), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=True),
        sa.Column("revoked_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_partner_id"), "api_keys", ["partner_id"])
    op.create_table(
        "partner_sources",
        sa.Column("prefix", sa.String(512), nullable=False),
        sa.Column("partner_id", sa.String(128), nullable=False),
        sa.Column("bound_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_partner_sources")),
    )
    op.create_index(op.f("ix_partner_sources_partner_id"), "partner_sources", ["partner_id"])
    op.create_table(
        "seen_events",
        sa.Column("function", sa.String(128), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("seen_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("function", "key", name=op.f("pk_seen_events")),
    )
    op.create_index(op.f("ix_seen_events_seen_at"), "seen_events", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_seen_events_seen_at"), table_name="seen_events")
    op.drop_table("seen_events")
    op.drop_index(op.f("ix_partner_sources_partner_id"), table_name="partner_sources")
    op.drop_table("partner_sources")
    op.drop_index(op.f("ix_api_keys_partner_id"), table_name="api_keys")
    op.drop_table("api_keys")
