"""The relational state store: one SQLAlchemy Core schema and query layer on SQLite (the
embedded default, a file under the data folder) and PostgreSQL (IBM Cloud Databases in
production), migrations by Alembic. Knows no settings: :mod:`shared.platform.adapters` builds
the process's engine from them."""

from __future__ import annotations

from shared.integration.state.engine import (
    SchemaMissing,
    StateUnavailable,
    create_state_engine,
    describe,
    state_errors,
)

__all__ = ["SchemaMissing", "StateUnavailable", "create_state_engine", "describe", "state_errors"]
