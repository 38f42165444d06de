"""Alembic's environment: always given a connection by :func:`shared.integration.state.migrate.upgrade`
(inside its transaction, after the deployers' lock), never a URL of its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shared.integration.state.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise TypeError("run the state migrations through shared.integration.state.migrate")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
