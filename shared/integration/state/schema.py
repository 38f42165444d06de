"""The state database's tables, one :class:`~sqlalchemy.MetaData` for both dialects.

The migrations under ``migrations/versions/`` create exactly this; a test compares the two.
Times are stored in UTC and come back timezone-aware on both dialects.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names are derived, so that a migration can name what it alters."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware time, stored in UTC: ``timestamptz`` on PostgreSQL, and on SQLite (which
    keeps no zone) text that sorts in time order; read back with ``tzinfo=UTC`` on both."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no place in the state database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


claims = Table(
    "claims",
    metadata,
    Column("scope", String(200), primary_key=True),
    # The SHA-256 of the caller's key, in hex: a key is any text, NUL bytes (which PostgreSQL
    # text refuses) and lengths past what a btree entry holds included; the digest is neither.
    Column("key", String(64), primary_key=True),
    Column("value", JSON(none_as_null=True), nullable=True),
    Column("version", String(32), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)
"""Dedup and idempotency claims (:class:`~shared.integration.state.claims.SqlClaimStore`)."""


# --- stock (issue 12): the availability view and the outbox ------------------------------------
# Revision 0002. Owned by shared.inventory.availability and shared.platform.outbox.

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("sku", String(40), primary_key=True),
    Column("partner_id", String(128), primary_key=True),
    Column("location_id", String(128), primary_key=True),
    Column("region", String(8), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("incoming", BigInteger, nullable=False),
    Column("available", BigInteger, nullable=False),
    Column("reported_at", UtcDateTime(), nullable=False),
    Column("sequence", BigInteger, nullable=True),
    Column("applied_at", UtcDateTime(), nullable=False),
    Column("event_id", Text, nullable=True),
    Column("previous_available", BigInteger, nullable=True),
    Column("announced", Boolean, nullable=False),
    Index("ix_stock_levels_region_sku", "region", "sku"),
    Index("ix_stock_levels_partner_id_sku", "partner_id", "sku"),
    Index("ix_stock_levels_location_id_sku", "location_id", "sku"),
)
"""One row per catalog SKU x partner x location (:class:`shared.inventory.rules.StockLevel`)."""

stock_units = Table(
    "stock_units",
    metadata,
    Column("sku", String(40), primary_key=True),
    Column("unit", String(8), nullable=False),
)
"""The base unit a SKU is counted in, fixed by its first report (insert-or-nothing, so two
first reports in different units cannot both win)."""

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("event", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False, index=True),
)
"""Events written in the transaction that decided them, published after commit and then
deleted; a row still there after ``due_at`` (its writer died) is published by the next relay."""

file_checkpoints = Table(
    "file_checkpoints",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("etag", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("lines_done", BigInteger, nullable=False),
    Column("lines_published", BigInteger, nullable=False),
    Column("lines_rejected", BigInteger, nullable=False),
    Column("error", Text, nullable=True),
    Column("run_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
"""Partner file ingestion progress, one row per file version (:mod:`shared.inventory.drops`)."""


# --- catalog (issue 12) ------------------------------------------------------------------------
# Revision 0003. Owned by shared.inventory.catalog and shared.inventory.query.

products = Table(
    "products",
    metadata,
    Column("sku", String(40), primary_key=True),
    Column("partner_id", String(128), nullable=False),
    Column("partner_sku", String(64), nullable=False),
    Column("category", String(200), nullable=False),
    Column("document", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("partner_id", "partner_sku", name="uq_products_partner_sku"),
    Index("ix_products_category_sku", "category", "sku"),
)
"""The catalog: the ProductIntroduced payload per SKU; (partner, partner SKU) is unique, which
is the partner-SKU mapping."""

product_regions = Table(
    "product_regions",
    metadata,
    Column("region", String(8), primary_key=True),
    Column("sku", String(40), primary_key=True),
    Column("category", String(200), nullable=False),
    Index("ix_product_regions_region_category_sku", "region", "category", "sku"),
)
"""Which regions' catalogs hold a SKU, with its category, for keyset search by region."""


# --- platform (issue 12): API keys, partner source bindings, Kafka seen ids --------------------
# Revision 0004. Owned by shared.platform.auth, shared.inventory.partners, shared.platform.dedup.

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("partner_id", String(128), nullable=False, index=True),
    Column("scopes", JSON, nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
"""Partner API keys; only the SHA-256 of a secret is kept."""

partner_sources = Table(
    "partner_sources",
    metadata,
    Column("prefix", String(512), primary_key=True),
    Column("partner_id", String(128), nullable=False, index=True),
    Column("bound_at", UtcDateTime(), nullable=False),
)
"""CloudEvents source prefixes bound to the partner whose Kafka producers use them."""

seen_events = Table(
    "seen_events",
    metadata,
    Column("function", String(128), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("seen_at", UtcDateTime(), nullable=False, index=True),
)
"""Kafka events a function processed (SHA-256 of source and id), written with the batch's
offsets; read back when a worker starts, swept after the TTL."""
