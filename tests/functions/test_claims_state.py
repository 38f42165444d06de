"""The runtime's claims in the state database: the embedded default sets itself up, a PostgreSQL
gets its schema from the deploy (``db upgrade``, ``deploy``, ``provision``) and says so when it
has none."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cloudevents.http import CloudEvent

from events.deadletter import DeadLetter
from shared.integration.state import SchemaMissing, create_state_engine
from shared.integration.state.migrate import current, head
from shared.platform.adapters import (
    get_bus,
    get_claim_store,
    get_state_engine,
    get_store,
    reset_adapters,
)
from shared.platform.settings import reset_settings
from shared.runtime.app import provision
from shared.runtime.config import Delivery, ScheduleTrigger
from shared.runtime.invoker import Invoker
from shared.runtime.loader import LoadedFunction
from shared.runtime.schedule import ScheduledFunction, Scheduler
from shared.tools.cli import main
from tests.functions.test_deploy import CONFIG, project, required_elsewhere
from tests.servers import free_port

__all__ = ["project"]


def retailfn(*args: str, config: Path = CONFIG) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


@pytest.fixture
def on_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RETAILFN_DATABASE_URL", postgres_url)
    reset_settings()
    return postgres_url


def schema_of(url: str) -> str | None:
    engine = create_state_engine(url)
    try:
        return current(engine)
    finally:
        engine.dispose()


def test_the_embedded_default_creates_its_schema_on_first_use_and_keeps_claims_in_it() -> None:
    claims = get_claim_store()

    assert claims.claim("cos/f", "b\0k\0etag1") is True
    assert claims.claim("cos/f", "b\0k\0etag1") is False

    data = Path(os.environ["RETAILFN_DATA_DIR"])
    assert current(get_state_engine()) == head()
    assert (data / "state.db").is_file()
    assert not (data / "objects").exists()  # no marker objects any more


def test_a_postgresql_without_its_schema_says_to_run_db_upgrade_until_it_is_run(
    on_postgres: str,
) -> None:
    with pytest.raises(SchemaMissing, match=r"run `retailfn db upgrade`") as caught:
        get_claim_store().claim("s", "k")
    assert 'relation "claims" does not exist' in str(caught.value)
    assert schema_of(on_postgres) is None  # nothing was created implicitly

    assert retailfn("db", "upgrade").exit_code == 0

    assert get_claim_store().claim("s", "k") is True
    assert get_claim_store().claim("s", "k") is False


def test_provisioning_the_local_runtime_creates_the_schema_on_postgresql(on_postgres: str) -> None:
    provision(get_bus(), get_store())

    assert schema_of(on_postgres) == head()
    assert get_claim_store().claim("s", "k") is True


def test_a_direct_deploy_upgrades_the_schema_once_and_the_second_changes_nothing(
    on_postgres: str,
) -> None:
    plan = json.loads(retailfn("deploy", "--stage", "local", "--dry-run", "--json").stdout)
    assert (plan["schema"]["action"], plan["schema"]["current"]) == ("upgrade", None)
    assert plan["schema"]["database"] == on_postgres  # (a password would show as ***)
    assert schema_of(on_postgres) is None

    first = retailfn("deploy", "--stage", "local")
    assert first.exit_code == 0, first.output
    assert f"state schema upgraded to {head()}" in first.stdout
    assert schema_of(on_postgres) == head()

    second = json.loads(retailfn("deploy", "--stage", "local", "--json").stdout)
    assert second["changed"] is False and second["summary"].startswith("no changes")
    assert (second["schema"]["action"], second["schema"]["done"]) == ("current", [])


def test_a_terraform_deploy_upgrades_the_stages_postgresql_before_terraform_rolls_the_apps(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    on_postgres: str,
) -> None:
    # The fake terraform records the schema revision the database was at when it ran.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "terraform-calls.jsonl"
    fake = bin_dir / "terraform"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\nimport psycopg\n"
        f"with psycopg.connect({on_postgres.replace('+psycopg', '')!r}) as c:\n"
        "    rev = c.execute('SELECT version_num FROM alembic_version').fetchone()[0]\n"
        f"with open({str(calls)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'schema': rev}) + '\\n')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    required_elsewhere(project, monkeypatch)

    result = retailfn("deploy", "--stage", "prod", config=project / "serverless.yaml")

    assert result.exit_code == 0, result.output
    ran = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [r["argv"][1] for r in ran] == ["init", "plan", "apply"]
    assert {r["schema"] for r in ran} == {head()}
    assert result.stderr.index("$ retailfn --stage prod db upgrade") < result.stderr.index(
        "$ terraform"
    )


def test_a_terraform_deploy_printed_only_lists_the_upgrade_first(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    on_postgres: str,
) -> None:
    result = retailfn(
        "deploy", "--stage", "prod", "--print-only", config=project / "serverless.yaml"
    )

    commands = result.stdout.split("run:\n", 1)[1].splitlines()
    assert commands[0].strip() == "retailfn --stage prod db upgrade"
    assert commands[1].strip().startswith("terraform -chdir=infra init")
    assert schema_of(on_postgres) is None  # printed, not run


# --- a database outage on events: a transient failure, retried, then the dead letter ------------


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """The state database on a closed loopback port: a real client, refused at once."""
    provision(get_bus(), get_store())  # topics and buckets first, on the embedded default
    url = f"postgresql://retailfn@127.0.0.1:{free_port()}/state"
    monkeypatch.setenv("RETAILFN_DATABASE_URL", url)
    monkeypatch.setenv("RETAILFN_DATABASE_CONNECT_TIMEOUT_S", "2")
    reset_settings()
    reset_adapters()
    return url


def test_a_function_whose_claims_are_unreachable_is_retried_then_dead_lettered_as_retryable(
    database_down: str,
) -> None:
    handled: list[str] = []

    def claim_then_record(ce: CloudEvent) -> None:
        if get_claim_store().claim("test/record", ce["id"]):
            handled.append(ce["id"])

    dead: list[tuple[str, DeadLetter]] = []
    invoker = Invoker(
        LoadedFunction("record", "tests:record", claim_then_record, "cloudevent", False),
        Delivery(retry=2, backoffDelay=timedelta(milliseconds=10)),
        "kafka",
        lambda dl_id, dl: dead.append((dl_id, dl)),
    )
    event = CloudEvent({"type": "com.example.t", "source": "/t", "id": "e-1"}, {"n": 1})

    outcome = invoker.deliver(event)

    assert (outcome.status, outcome.attempts) == ("dead_letter", 3)
    [(dl_id, letter)] = dead
    assert dl_id == outcome.dead_letter_id
    assert letter.error.type == "StateUnavailable" and letter.error.retryable is True
    assert "state database" in letter.error.message and "retailfn@" in letter.error.message
    assert handled == []


def test_a_scheduler_whose_claims_are_unreachable_keeps_running_and_fires_nothing(
    database_down: str,
) -> None:
    fired: list[str] = []
    invoker = Invoker(
        LoadedFunction(
            "tick", "tests:tick", lambda ce: fired.append(ce["id"]), "cloudevent", False
        ),
        Delivery(),
        "schedule",
        lambda *_: None,
    )
    stop = threading.Event()
    scheduler = Scheduler(
        [ScheduledFunction("tick", ScheduleTrigger(rate="rate(1 second)"), invoker)],
        get_claim_store(),
        stop,
    )
    scheduler.start()
    time.sleep(2.5)  # two ticks came due, neither could be claimed

    assert scheduler._thread is not None and scheduler._thread.is_alive()
    assert fired == []  # a tick is never fired without its claim
    stop.set()
    scheduler.join(5)
