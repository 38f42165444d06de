"""The state database's tables, one :class:`~sqlalchemy.MetaData` for both dialects.

The migrations under ``migrations/versions/`` create exactly this; a test compares the two.
Times are stored in UTC and come back timezone-aware on both dialects.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, DateTime, Dialect, MetaData, String, Table
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
