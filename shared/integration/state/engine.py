"""The state database's engine: SQLAlchemy Core on SQLite (the embedded default) or PostgreSQL.

:func:`create_state_engine` knows no settings; :mod:`shared.platform.adapters` builds the
process's engine from them. Every failure to reach the database, or a statement that ran out of
time, surfaces as :class:`StateUnavailable` through :func:`state_errors`, so that callers can
answer 503 or retry without knowing the driver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import URL, Connection, Engine, create_engine, event, exc, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

POOL_RECYCLE_S = 1800
"""Connections older than this are replaced: managed PostgreSQL and the NAT between may drop
idle connections silently (``pool_pre_ping`` catches the rest)."""


class StateUnavailable(Exception):
    """The state database cannot be reached, or a statement ran out of time. The message names
    the database without its password."""


class SchemaMissing(StateUnavailable):
    """The database answers but lacks a table this code needs: its schema was never created or
    is older than the code (``retailfn db upgrade`` brings it to the newest revision). Callers
    treat it as an outage (503, retry): it lasts until the operator runs the upgrade."""


def create_state_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 0,
    connect_timeout_s: float = 5,
    statement_timeout_ms: int = 10_000,
    echo: bool = False,
) -> Engine:
    """An engine on ``sqlite:///path`` or ``postgresql[+psycopg]://...`` (``postgres://``, as
    IBM Cloud Databases writes it, too). TLS settings (``sslmode``, ``sslrootcert``) stay in
    the URL's query and go to libpq as they are. Nothing connects until first use."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            busy_timeout_ms=statement_timeout_ms,
            pool_timeout_s=connect_timeout_s + statement_timeout_ms / 1000,
            echo=echo,
        )
    if backend in ("postgresql", "postgres"):
        return _postgres_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_ms=statement_timeout_ms,
            echo=echo,
        )
    raise ValueError(
        f"unsupported state database {parsed.render_as_string(hide_password=True)}: "
        "use sqlite:///<path> or postgresql://..."
    )


def _sqlite_engine(
    url: URL,
    *,
    pool_size: int,
    max_overflow: int,
    busy_timeout_ms: int,
    pool_timeout_s: float,
    echo: bool,
) -> Engine:
    if not url.database or url.database == ":memory:":
        raise ValueError("the SQLite state database must be a file: sqlite:///<path>")
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        echo=echo,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        connection = cast(sqlite3.Connection, dbapi_connection)  # pysqlite, by the URL
        # sqlite3 would BEGIN (deferred) only before DML, and a deferred transaction that reads
        # and then writes can fail at once with "database is locked" when it upgrades its lock;
        # with the driver's own transaction handling off, _on_begin below starts every
        # transaction as a writer, and writers queue on busy_timeout instead.
        connection.isolation_level = None
        for pragma in (
            f"busy_timeout = {int(busy_timeout_ms)}",  # first: the next one may wait for a lock
            "journal_mode = WAL",
            "synchronous = FULL",  # a committed transaction survives a power cut
            "foreign_keys = ON",
        ):
            connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgres_engine(
    url: URL,
    *,
    pool_size: int,
    max_overflow: int,
    connect_timeout_s: float,
    statement_timeout_ms: int,
    echo: bool,
) -> Engine:
    import psycopg

    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername != "postgresql+psycopg":
        raise ValueError(f"the PostgreSQL state database needs psycopg 3, not {url.drivername}")
    options = f"-c statement_timeout={int(statement_timeout_ms)}"
    if "options" in url.query:  # the URL's own server options come after ours and win
        options = f"{options} {url.query['options']}"
        url = url.difference_update_query(["options"])
    connect_args: dict[str, Any] = {
        # libpq counts whole seconds, at least 2.
        "connect_timeout": max(2, round(connect_timeout_s)),
        "options": options,
    }
    if "application_name" not in url.query:
        connect_args["application_name"] = "retailfn"
    return create_engine(
        url,
        module=psycopg,  # named, so that a packaged function's requirements carry psycopg
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=POOL_RECYCLE_S,
        pool_timeout=connect_timeout_s + statement_timeout_ms / 1000,
        echo=echo,
        connect_args=connect_args,
    )


def describe(engine: Engine) -> str:
    """The engine's URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def state_errors(engine: Engine) -> Iterator[None]:
    """Raise :class:`StateUnavailable` for the database being unreachable, a connection lost,
    the pool exhausted or a statement timed out, inside the block; :class:`SchemaMissing` for a
    table that is not there."""
    try:
        yield
    except (exc.OperationalError, exc.ProgrammingError) as error:
        if _missing_table(error):
            raise SchemaMissing(
                f"state database {describe(engine)}: {_reason(error)}: its schema is missing or "
                "older than this code; run `retailfn db upgrade`"
            ) from error
        if isinstance(error, exc.ProgrammingError):
            raise
        raise StateUnavailable(f"state database {describe(engine)}: {_reason(error)}") from error
    except (exc.InterfaceError, exc.TimeoutError) as error:
        raise StateUnavailable(f"state database {describe(engine)}: {_reason(error)}") from error


def _missing_table(error: exc.DBAPIError) -> bool:
    # PostgreSQL says undefined_table (SQLSTATE 42P01); SQLite has no codes, only the message.
    cause = error.orig
    return getattr(cause, "sqlstate", None) == "42P01" or str(cause).startswith("no such table")


def _reason(error: Exception) -> str:
    # The driver's own message, first line: SQLAlchemy's str() adds the statement and its
    # parameters, which are not the operator's business here.
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__
