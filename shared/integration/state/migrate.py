"""The state database's schema, versioned by Alembic: :func:`upgrade` to the newest revision
(``retailfn db upgrade``, and ``deploy``), :func:`current` to ask where a database is.

The scripts live in ``migrations/`` beside this module; no ``alembic.ini`` is needed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from shared.integration.state.engine import state_errors

MIGRATIONS = Path(__file__).with_name("migrations")

ADVISORY_LOCK = 0x7265_7461_696C_666E  # "retailfn": one lock for every deployer of the schema
"""The PostgreSQL advisory lock :func:`upgrade` holds for its transaction."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision the scripts know."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None  # the folder holds at least 0001
    return revision


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision in one transaction; answers that revision.

    Safe to run twice, and by two deployers at once: on PostgreSQL the second waits on an
    advisory lock and then finds nothing to do; on SQLite the write transaction (``BEGIN
    IMMEDIATE``) serializes them the same way."""
    with state_errors(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK})
        command.upgrade(_config(connection), "head")
        revision = MigrationContext.configure(connection).get_current_revision()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` before the first :func:`upgrade`."""
    with state_errors(engine), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
