"""``retailfn db upgrade`` and ``retailfn db current`` on the embedded default (SQLite under the
data folder), and the one-line error for a database that cannot be reached."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shared.integration.state.migrate import head
from shared.tools.cli import main
from tests.servers import free_port

CONFIG = Path(__file__).resolve().parents[2] / "tests/e2e/serverless.yaml"


def retailfn(*args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(CONFIG), *args], catch_exceptions=False)


def test_a_new_database_is_at_no_revision() -> None:
    result = retailfn("db", "current")

    assert result.exit_code == 0, result.output
    assert result.stdout == "none\n"


def test_upgrade_creates_the_sqlite_file_and_prints_the_revision_twice_over() -> None:
    first = retailfn("db", "upgrade")
    second = retailfn("db", "upgrade")
    now = retailfn("db", "current")

    assert [r.exit_code for r in (first, second, now)] == [0, 0, 0], first.output
    assert first.stdout == second.stdout == now.stdout == f"{head()}\n"
    assert (Path(os.environ["RETAILFN_DATA_DIR"]) / "state.db").is_file()


def test_upgrade_goes_to_the_database_the_url_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAILFN_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")

    assert retailfn("db", "upgrade").stdout == f"{head()}\n"

    assert (tmp_path / "elsewhere.db").is_file()
    assert not (Path(os.environ["RETAILFN_DATA_DIR"]) / "state.db").exists()


@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_an_unreachable_database_is_one_error_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    port = free_port()
    monkeypatch.setenv(
        "RETAILFN_DATABASE_URL", f"postgresql://app:s3cret-pw@127.0.0.1:{port}/state"
    )
    monkeypatch.setenv("RETAILFN_DATABASE_CONNECT_TIMEOUT_S", "2")

    result = retailfn("db", command)

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"Error: state database postgresql+psycopg://app:***@127.0.0.1:{port}/state: "
    )
    assert line.endswith("; check RETAILFN_DATABASE_URL and that the database is up and reachable")
    assert "s3cret-pw" not in result.output


def test_the_process_engine_is_built_once_and_disposed_by_reset_adapters() -> None:
    from shared.platform.adapters import get_state_engine, reset_adapters

    engine = get_state_engine()

    assert get_state_engine() is engine
    assert engine.url.database == str(Path(os.environ["RETAILFN_DATA_DIR"]).resolve() / "state.db")
    reset_adapters()
    assert get_state_engine() is not engine
