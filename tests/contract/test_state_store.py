"""One behaviour suite for the state database on both dialects: SQLite (a file) and a real
PostgreSQL server (tests/servers.py). Each test takes a fresh database: a new file, or a new
database on the session's server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from shared.integration.state import StateUnavailable, create_state_engine, state_errors
from shared.integration.state.claims import SqlClaimStore
from shared.integration.state.migrate import current, head, upgrade
from shared.integration.state.schema import metadata
from tests.servers import free_port

WRITERS = 20
T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    postgres_url: str = request.getfixturevalue("postgres_url")
    return postgres_url


@pytest.fixture
def engines(url: str) -> Iterator[Callable[..., Engine]]:
    """Engines on the test's database (disposed after it), with any pool or timeouts."""
    made: list[Engine] = []

    def make(**options: int) -> Engine:
        made.append(create_state_engine(url, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


@pytest.fixture
def engine(engines: Callable[..., Engine]) -> Engine:
    return engines()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    upgrade(engine)
    return engine


def all_at_once(n: int, work: Callable[[int], T]) -> list[T]:
    """``work(0)`` .. ``work(n - 1)`` on ``n`` threads released together."""
    start = threading.Barrier(n)

    def run(i: int) -> T:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


# --- the schema and its migrations ---------------------------------------------------------------


def test_a_new_database_is_at_no_revision(engine: Engine) -> None:
    assert current(engine) is None


def test_upgrade_reaches_head_and_a_second_upgrade_changes_nothing(engine: Engine) -> None:
    assert upgrade(engine) == head()
    SqlClaimStore(engine).claim("s", "kept")

    assert upgrade(engine) == head()

    assert current(engine) == head()
    assert SqlClaimStore(engine).is_claimed("s", "kept")


def test_two_deployers_upgrading_at_once_both_succeed(engine: Engine) -> None:
    assert all_at_once(2, lambda _: upgrade(engine)) == [head(), head()]
    assert current(engine) == head()


def test_the_migrations_create_exactly_what_the_schema_declares(migrated: Engine) -> None:
    with migrated.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    assert {ix["name"] for ix in inspect(migrated).get_indexes("claims")} == {
        "ix_claims_expires_at"
    }


# --- claims: the contract of shared.platform.dedup.ClaimStore ------------------------------------


def test_a_key_is_claimed_once(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated)

    assert claims.claim("cos/f", "b\0k\0etag1") is True
    assert claims.claim("cos/f", "b\0k\0etag1") is False
    assert claims.claim("cos/f", "b\0k\0etag2") is True
    assert claims.claim("other/f", "b\0k\0etag1") is True  # scopes are apart


def test_a_live_claim_is_looked_up_with_its_value_and_expiry(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated, ttl=timedelta(hours=1))
    before = datetime.now(UTC)
    claims.claim("s", "k", {"n": 1, "tags": ["a"]})

    doc = claims.lookup("s", "k")

    assert doc is not None
    assert doc["key"] == "k" and doc["value"] == {"n": 1, "tags": ["a"]}
    expires = datetime.fromisoformat(doc["expires_at"])
    assert before + timedelta(hours=1) <= expires <= datetime.now(UTC) + timedelta(hours=1)
    assert claims.is_claimed("s", "k") and not claims.is_claimed("s", "absent")
    assert claims.lookup("s", "absent") is None


def test_a_claim_without_a_value_looks_up_as_none_value(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated)
    claims.claim("s", "k")

    doc = claims.lookup("s", "k")

    assert doc is not None and doc["value"] is None


def test_an_expired_claim_can_be_taken_again(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated, ttl=timedelta(milliseconds=100))
    assert claims.claim("s", "k", {"n": 1})
    assert claims.claim("s", "k", {"n": 9}) is False

    time.sleep(0.2)

    assert claims.lookup("s", "k") is None
    assert claims.claim("s", "k", {"n": 2})
    doc = claims.lookup("s", "k")
    assert doc is not None and doc["value"] == {"n": 2}


def test_each_write_answers_a_new_version_that_lookup_reports(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated)

    first = claims.claim_version("s", "k", {"n": 1})
    assert first is not None
    assert claims.claim_version("s", "k", {"n": 1}) is None
    entry = claims.lookup_version("s", "k")
    assert entry is not None and entry[1] == first

    second = claims.replace("s", "k", {"n": 2}, version=first)

    assert isinstance(second, str) and second != first
    assert claims.lookup_version("s", "k") == (claims.lookup("s", "k"), second)


def test_replace_is_refused_at_a_stale_version(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated)
    first = claims.claim_version("s", "k", {"n": 1})
    assert first is not None
    second = claims.replace("s", "k", {"n": 2}, version=first)

    assert claims.replace("s", "k", {"n": 3}, version=first) is None

    doc = claims.lookup("s", "k")
    assert doc is not None and doc["value"] == {"n": 2}
    assert second is not None
    assert claims.replace("s", "absent", {"n": 3}, version=second) is None


def test_replace_restarts_the_expiry(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated, ttl=timedelta(milliseconds=300))
    version = claims.claim_version("s", "k", {"n": 1})
    assert version is not None
    time.sleep(0.2)

    assert claims.replace("s", "k", {"n": 2}, version=version) is not None
    time.sleep(0.2)  # past the first write's expiry, within the replacement's

    assert claims.is_claimed("s", "k")


def test_concurrent_replaces_at_one_version_have_one_winner(engines: Callable[..., Engine]) -> None:
    engine = engines(pool_size=WRITERS)
    upgrade(engine)
    claims = SqlClaimStore(engine)
    version = claims.claim_version("s", "k", {"n": 0})
    assert version is not None

    won = all_at_once(WRITERS, lambda n: claims.replace("s", "k", {"n": n}, version=version))

    winners = [n for n, v in enumerate(won) if v is not None]
    assert len(winners) == 1
    assert claims.lookup_version("s", "k") == (claims.lookup("s", "k"), won[winners[0]])


def test_release_at_a_stale_version_leaves_the_claim(migrated: Engine) -> None:
    claims = SqlClaimStore(migrated)
    first = claims.claim_version("s", "k")
    assert first is not None
    second = claims.replace("s", "k", {"n": 2}, version=first)

    claims.release("s", "k", version=first)
    assert claims.is_claimed("s", "k")

    assert second is not None
    claims.release("s", "k", version=second)
    assert not claims.is_claimed("s", "k")
    assert claims.claim("s", "k")


def test_release_without_a_version_deletes_and_a_missing_claim_is_no_error(
    migrated: Engine,
) -> None:
    claims = SqlClaimStore(migrated)
    claims.claim("s", "k")

    claims.release("s", "k")
    claims.release("s", "k")
    claims.release("s", "never", version="0" * 32)

    assert not claims.is_claimed("s", "k")


def test_sweep_deletes_only_expired_claims(migrated: Engine) -> None:
    short = SqlClaimStore(migrated, ttl=timedelta(milliseconds=50))
    long = SqlClaimStore(migrated, ttl=timedelta(hours=1))
    short.claim("s", "old")
    long.claim("s", "new")
    time.sleep(0.1)

    assert long.sweep() == 1

    assert long.is_claimed("s", "new")
    assert long.lookup_version("s", "old") is None
    assert long.sweep() == 0


def test_twenty_concurrent_claims_of_one_key_have_exactly_one_winner(
    engines: Callable[..., Engine],
) -> None:
    engine = engines(pool_size=WRITERS)
    upgrade(engine)
    claims = SqlClaimStore(engine)

    won = all_at_once(WRITERS, lambda n: claims.claim_version("s", "one-key", {"writer": n}))

    winners = [n for n, v in enumerate(won) if v is not None]
    assert len(winners) == 1
    entry = claims.lookup_version("s", "one-key")
    assert entry is not None
    assert entry[0]["value"] == {"writer": winners[0]} and entry[1] == won[winners[0]]


def test_an_expired_claim_is_taken_over_by_exactly_one_of_many(
    engines: Callable[..., Engine],
) -> None:
    engine = engines(pool_size=WRITERS)
    upgrade(engine)
    claims = SqlClaimStore(engine, ttl=timedelta(milliseconds=50))
    claims.claim("s", "k", {"writer": "dead"})
    time.sleep(0.1)
    takers = SqlClaimStore(engine, ttl=timedelta(hours=1))

    won = all_at_once(WRITERS, lambda n: takers.claim("s", "k", {"writer": n}))

    assert won.count(True) == 1
    doc = takers.lookup("s", "k")
    assert doc is not None and doc["value"] == {"writer": won.index(True)}


# --- connections: failures, timeouts, the dialects' settings -------------------------------------


def test_an_unreachable_postgresql_is_state_unavailable_quickly_without_the_password() -> None:
    url = f"postgresql://retailfn:s3cret-pw@127.0.0.1:{free_port()}/state?sslmode=disable"
    engine = create_state_engine(url, connect_timeout_s=2)
    started = time.monotonic()

    with pytest.raises(StateUnavailable) as caught:
        SqlClaimStore(engine).claim("s", "k")
    with pytest.raises(StateUnavailable):
        current(engine)

    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert f"postgresql+psycopg://retailfn:***@127.0.0.1:{engine.url.port}/state" in message
    engine.dispose()


def test_a_statement_past_its_timeout_is_state_unavailable(postgres_url: str) -> None:
    engine = create_state_engine(postgres_url, statement_timeout_ms=200)
    started = time.monotonic()

    with (
        pytest.raises(StateUnavailable, match="statement timeout"),
        state_errors(engine),
        engine.connect() as connection,
    ):
        connection.execute(text("SELECT pg_sleep(5)"))

    assert time.monotonic() - started < 3
    engine.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_postgresql_url_runs_on_psycopg_with_the_timeouts(
    postgres_url: str, scheme: str
) -> None:
    url = postgres_url.replace("postgresql+psycopg://", f"{scheme}://")
    engine = create_state_engine(url, statement_timeout_ms=1234)

    with engine.connect() as connection:
        timeout = connection.exec_driver_sql("SHOW statement_timeout").scalar()
        name = connection.exec_driver_sql("SHOW application_name").scalar()

    assert engine.dialect.driver == "psycopg"
    assert (timeout, name) == ("1234ms", "retailfn")
    engine.dispose()


def test_sqlite_runs_in_wal_with_full_sync_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path}/new/folder/state.db")

    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }

    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 10000,
    }
    assert (tmp_path / "new/folder/state.db").is_file()
    engine.dispose()


def test_sqlite_transactions_that_read_then_write_queue_instead_of_failing(tmp_path: Path) -> None:
    # A deferred transaction would fail with "database is locked" when its read lock cannot be
    # upgraded; every transaction begins as a writer, so they wait for each other instead.
    engine = create_state_engine(f"sqlite:///{tmp_path}/state.db", pool_size=WRITERS)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (n INTEGER NOT NULL)")
        connection.exec_driver_sql("INSERT INTO counter VALUES (0)")

    def increment(_: int) -> None:
        with engine.begin() as connection:
            n = connection.exec_driver_sql("SELECT n FROM counter").scalar_one()
            time.sleep(0.005)
            connection.exec_driver_sql("UPDATE counter SET n = ?", (n + 1,))

    all_at_once(WRITERS, increment)

    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT n FROM counter").scalar_one() == WRITERS
    engine.dispose()


def test_an_unsupported_database_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"mysql://app:\*\*\*@db/x"):
        create_state_engine("mysql://app:pw@db/x")
