"""Dedup and idempotency claims in the state database, one row per claim in ``claims`` (the
object store's marker objects before them had the same interface and semantics), each operation
one statement the database decides.

A claim is taken by ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <= now``: it inserts
a new row, or takes over an expired one, or does nothing, atomically; a replace or a release at a
version is ``UPDATE`` / ``DELETE ... WHERE version = :v``. Nothing is read in Python and then
written, so exactly one of any number of concurrent claimers wins, on either dialect.
Versions are opaque strings (a random hex per write), as an ETag is.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.integration.state.engine import state_errors
from shared.integration.state.schema import claims

DEFAULT_TTL = timedelta(days=7)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_version() -> str:
    return uuid.uuid4().hex


class SqlClaimStore:
    def __init__(self, engine: Engine, ttl: timedelta = DEFAULT_TTL) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"no claim store for {engine.dialect.name}")
        self._engine = engine
        self._ttl = ttl

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with state_errors(self._engine), self._engine.begin() as connection:
            yield connection

    def claim(self, scope: str, key: str, value: dict[str, Any] | None = None) -> bool:
        """Record ``key`` as done; ``False`` if it was already recorded and has not expired."""
        return self.claim_version(scope, key, value) is not None

    def claim_version(
        self, scope: str, key: str, value: dict[str, Any] | None = None
    ) -> str | None:
        """:meth:`claim`, answering the version of the claim written, for a later
        :meth:`replace` or :meth:`release` of exactly this claim; ``None`` if not claimed."""
        now = datetime.now(UTC)
        version = _new_version()
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        row = insert(claims).values(
            scope=scope, key=_digest(key), value=value, version=version, expires_at=now + self._ttl
        )
        statement = row.on_conflict_do_update(
            index_elements=[claims.c.scope, claims.c.key],
            set_={
                "value": row.excluded.value,
                "version": row.excluded.version,
                "expires_at": row.excluded.expires_at,
            },
            where=claims.c.expires_at <= now,  # an expired claim is taken over; a live one stays
        ).returning(claims.c.version)
        with self._transaction() as connection:
            taken: str | None = connection.execute(statement).scalar_one_or_none()
        return taken

    def lookup(self, scope: str, key: str) -> dict[str, Any] | None:
        """The document of a live claim (``key``, ``expires_at``, ``value``), or ``None``."""
        entry = self.lookup_version(scope, key)
        return entry[0] if entry is not None else None

    def lookup_version(self, scope: str, key: str) -> tuple[dict[str, Any], str] | None:
        """The document of a live claim and its version, or ``None``."""
        statement = select(claims.c.value, claims.c.version, claims.c.expires_at).where(
            claims.c.scope == scope,
            claims.c.key == _digest(key),
            claims.c.expires_at > datetime.now(UTC),
        )
        with self._transaction() as connection:
            row = connection.execute(statement).one_or_none()
        if row is None:
            return None
        doc = {"key": key, "expires_at": row.expires_at.isoformat(), "value": row.value}
        return doc, row.version

    def replace(
        self, scope: str, key: str, value: dict[str, Any] | None, *, version: str
    ) -> str | None:
        """Overwrite the value of the claim at ``version`` (its expiry restarts): the new
        version, or ``None`` if the claim changed or went meanwhile."""
        new_version = _new_version()
        statement = (
            update(claims)
            .where(
                claims.c.scope == scope,
                claims.c.key == _digest(key),
                claims.c.version == version,
            )
            .values(
                value=value,
                version=new_version,
                expires_at=datetime.now(UTC) + self._ttl,
            )
        )
        with self._transaction() as connection:
            changed = connection.execute(statement).rowcount
        return new_version if changed == 1 else None

    def is_claimed(self, scope: str, key: str) -> bool:
        return self.lookup(scope, key) is not None

    def release(self, scope: str, key: str, *, version: str | None = None) -> None:
        """Delete the claim; with ``version``, only if it is still that one (else nothing)."""
        statement = delete(claims).where(claims.c.scope == scope, claims.c.key == _digest(key))
        if version is not None:
            statement = statement.where(claims.c.version == version)
        with self._transaction() as connection:
            connection.execute(statement)

    def sweep(self) -> int:
        """Delete the expired claims (a claim expires the TTL after it was last written).
        Returns how many went."""
        statement = delete(claims).where(claims.c.expires_at <= datetime.now(UTC))
        with self._transaction() as connection:
            return connection.execute(statement).rowcount
