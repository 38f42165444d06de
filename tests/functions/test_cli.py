"""The `retailfn` command line, driven in-process through click's CliRunner."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result

import shared.tools.cli
from events.registry import EVENT_TYPES
from events.samples import load_sample
from shared.platform.observability import _StderrHandler
from shared.tools.cli import main
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests/e2e/serverless.yaml"

COMMANDS = [
    [],
    ["up"],
    ["worker"],
    ["invoke"],
    ["validate"],
    ["provision"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "replay"],
    ["schema"],
    ["schema", "export"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["keys", "dev"],
    ["partners"],
    ["partners", "bind"],
    ["partners", "unbind"],
    ["partners", "list"],
    ["token"],
    ["demo"],
    ["deploy"],
    ["package"],
    ["infra"],
    ["infra", "generate"],
    ["experiments"],
    ["experiments", "report"],
    ["experiments", "assign"],
    ["crosssell"],
    ["crosssell", "rebuild"],
    ["crosssell", "show"],
    ["crosssell", "prune"],
    ["db"],
    ["db", "upgrade"],
    ["db", "current"],
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Logging setup is process-wide; the tests here look at the commands' own output, so the
    # JSON log handler an earlier test may have installed (it writes to whatever sys.stderr is
    # at the time, here the runner's) is taken off for the test.
    monkeypatch.setattr(shared.tools.cli, "configure_logging", lambda *args, **kwargs: None)
    root = logging.getLogger()
    json_handlers = [h for h in root.handlers if isinstance(h, _StderrHandler)]
    for handler in json_handlers:
        root.removeHandler(handler)
    # The runtime exports a function's environment into os.environ; let monkeypatch undo it.
    monkeypatch.setenv("FLAKY_SWITCH", "/nonexistent")
    yield
    for handler in json_handlers:
        root.addHandler(handler)


def retailfn(*args: str, config: Path = CONFIG) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def write_event(path: Path, event: dict) -> Path:
    path.write_text(json.dumps(event), encoding="utf-8")
    return path


@pytest.fixture
def bad_order(tmp_path: Path) -> Path:
    """The order sample with a negative quantity: a well-formed CloudEvent with invalid data."""
    event = load_sample("order-completed")
    event["data"]["lines"][0]["quantity"] = "-1"
    return write_event(tmp_path / "bad-order.json", event)


def dead_letter_ids() -> list[str]:
    listing = retailfn("dlq", "list")
    assert listing.exit_code == 0, listing.output
    return [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]


# --- help ----------------------------------------------------------------------------------


def _command_paths(group: click.Group, prefix: list[str]) -> list[list[str]]:
    paths = [prefix]
    for name, cmd in group.commands.items():
        paths += (
            _command_paths(cmd, [*prefix, name])
            if isinstance(cmd, click.Group)
            else [[*prefix, name]]
        )
    return paths


def test_help_list_covers_every_command() -> None:
    assert sorted(_command_paths(main, [])) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "retailfn")
def test_help_works_on_every_command(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")


# --- validate ------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The e2e service beside a copy of the repository's infra/ (validate reads infra/ there)."""
    shutil.copytree(ROOT / "infra", tmp_path / "infra")
    shutil.copy(CONFIG, tmp_path / "serverless.yaml")
    return tmp_path


def test_validate_accepts_the_e2e_service_beside_the_infra(project: Path) -> None:
    config = project / "serverless.yaml"

    result = retailfn("validate", config=config)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{config}: 6 functions OK (stage local)\n"


def test_validate_looks_for_infra_beside_the_config_file() -> None:
    result = retailfn("validate")

    assert result.exit_code == 1
    assert f"error: infra/: not found under {CONFIG.parent}\n" in result.stderr


def test_validate_rejects_a_misspelled_topic_with_its_problem_line(project: Path) -> None:
    bad = project / "serverless.yaml"
    bad.write_text(
        CONFIG.read_text(encoding="utf-8").replace(
            "topic: sales.order-completed", "topic: sales.order-complete"
        ),
        encoding="utf-8",
    )

    result = retailfn("validate", config=bad)

    assert result.exit_code == 1
    assert (
        "functions.record_order.events[0].kafka.topic: unknown topic "
        "'sales.order-complete'; known: "
    ) in result.stderr


def test_validate_reports_infra_drift_one_error_line_each(project: Path) -> None:
    topics = project / "infra/generated/topics.tf.json"
    doc = json.loads(topics.read_text(encoding="utf-8"))
    doc["resource"]["ibm_event_streams_topic"]["inventory_stock_reported"]["partitions"] = 4
    topics.write_text(json.dumps(doc), encoding="utf-8")
    config = project / "serverless.yaml"

    result = retailfn("validate", config=config)

    assert result.exit_code == 1
    assert (
        "error: infra/generated/topics.tf.json: topic 'inventory.stock-reported' has 4 "
        "partitions; events/catalog.py says 12\n"
    ) in result.stderr
    assert f"1 problem(s) in {config}" in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = retailfn("validate", config=tmp_path / "nope.yaml")

    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.yaml'}: cannot read" in result.stderr


# --- invoke and the dead letters -----------------------------------------------------------


def test_invoke_runs_a_function_once_on_a_sample_event() -> None:
    result = retailfn(
        "invoke",
        "record_order",
        "--json",
        "--event",
        str(ROOT / "events/samples/order-completed.json"),
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "function": "record_order",
        "event_id": load_sample("order-completed")["id"],
        "outcome": "ok",
        "attempts": 1,
        "dead_letter_id": None,
    }


def test_invoke_with_invalid_data_dead_letters_it_at_once(bad_order: Path) -> None:
    result = retailfn("invoke", "record_order", "--json", "--event", str(bad_order))

    assert result.exit_code == 1
    outcome = json.loads(result.stdout)
    assert (outcome["outcome"], outcome["attempts"]) == ("dead_letter", 1)
    assert outcome["dead_letter_id"]


def test_invoke_of_an_http_function_is_refused() -> None:
    result = retailfn(
        "invoke", "echo", "--event", str(ROOT / "events/samples/order-completed.json")
    )

    assert result.exit_code == 2
    assert "echo is an HTTP function" in result.stderr


def test_invoke_with_a_file_that_is_not_a_cloudevent_is_refused(tmp_path: Path) -> None:
    result = retailfn(
        "invoke",
        "record_order",
        "--event",
        str(write_event(tmp_path / "x.json", {"hello": "world"})),
    )

    assert result.exit_code == 2
    assert "not a structured-mode CloudEvent" in result.stderr


def test_dlq_list_shows_the_dead_lettered_event(bad_order: Path) -> None:
    dl_id = json.loads(
        retailfn("invoke", "record_order", "--json", "--event", str(bad_order)).stdout
    )["dead_letter_id"]

    listing = retailfn("dlq", "list")

    assert listing.exit_code == 0, listing.output
    [line] = listing.stdout.splitlines()
    assert line.split()[:4] == [
        dl_id,
        "record_order",
        "com.retailfn.sales.order-completed.v1",
        load_sample("order-completed")["id"],
    ]
    assert "InvalidEvent" in line


def test_dlq_list_is_empty_without_dead_letters() -> None:
    retailfn("provision")

    assert dead_letter_ids() == []


def test_dlq_list_before_anything_is_provisioned_says_the_bucket_is_missing() -> None:
    result = retailfn("dlq", "list")

    assert result.exit_code == 1
    assert "bucket 'dead-letters' does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_dlq_show_by_id_prefix_prints_the_dead_letter_naming_the_bad_field(bad_order: Path) -> None:
    retailfn("invoke", "record_order", "--event", str(bad_order))
    [dl_id] = dead_letter_ids()

    result = retailfn("dlq", "show", dl_id[:8])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["id"], shown["status"], shown["function"]) == (dl_id, "pending", "record_order")
    assert shown["error"]["type"] == "InvalidEvent"
    assert shown["error"]["retryable"] is False
    assert "lines[0].quantity" in shown["error"]["message"]


def test_dlq_show_of_an_unknown_id_is_an_error() -> None:
    retailfn("provision")

    result = retailfn("dlq", "show", "deadbeef")

    assert result.exit_code == 1
    assert "no dead letter with id 'deadbeef'" in result.stderr


def test_dlq_replay_of_a_still_invalid_event_fails_and_keeps_it_pending(bad_order: Path) -> None:
    retailfn("invoke", "record_order", "--event", str(bad_order))
    [dl_id] = dead_letter_ids()

    result = retailfn("dlq", "replay", dl_id)

    assert result.exit_code == 1
    assert result.stdout == f"{dl_id}  record_order  dead_letter\n"
    assert dead_letter_ids() == [dl_id]


def test_dlq_replay_refuses_a_dead_letter_whose_data_was_cut_and_keeps_it_pending(
    bad_order: Path,
) -> None:
    from shared.platform.adapters import get_store
    from shared.runtime.deadletter import DeadLetterStore

    retailfn("invoke", "record_order", "--event", str(bad_order))
    [dl_id] = dead_letter_ids()
    letters = DeadLetterStore(get_store(), "dead-letters")
    stored = letters.get(dl_id).dead_letter
    cut = stored.model_copy(
        update={
            "event": stored.event.model_copy(
                update={
                    "data": '{"order_id"',
                    "data_truncated": True,
                    "data_size": 5_000_000,
                    "data_sha256": "ab" * 32,
                    "topic": "sales.order-completed",
                    "partition": 3,
                    "offset": 41,
                }
            )
        }
    )
    letters.save(dl_id, cut)

    result = retailfn("dlq", "replay", dl_id)

    assert result.exit_code == 1
    assert result.stdout == (
        f"{dl_id}  record_order  refused: not replayed: only the first 11 of 5000000 bytes "
        f"were kept (sha256 {'ab' * 32}); replay the original from topic "
        "sales.order-completed partition 3 offset 41\n"
    )
    assert letters.get(dl_id).dead_letter.event.data_size == 5_000_000  # still pending, intact
    assert dead_letter_ids() == [dl_id]


def test_dlq_replay_needs_an_id_or_all() -> None:
    result = retailfn("dlq", "replay")

    assert result.exit_code == 2
    assert "give a dead letter id or --all" in result.stderr


# --- schema and provision ------------------------------------------------------------------


def test_schema_export_writes_one_file_per_event_type(tmp_path: Path) -> None:
    out = tmp_path / "schemas"

    result = retailfn("schema", "export", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.json" for t in EVENT_TYPES)
    assert len(result.stdout.splitlines()) == len(EVENT_TYPES)
    schema = json.loads((out / "com.retailfn.sales.order-completed.v1.json").read_text("utf-8"))
    assert schema["$id"] == "urn:retailfn:schema:com.retailfn.sales.order-completed.v1"


def test_provision_creates_topics_and_buckets_once() -> None:
    first = retailfn("provision", "--json")
    second = retailfn("provision", "--json")

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    created = json.loads(first.stdout)
    assert created["topics"] and created["buckets"]
    assert json.loads(second.stdout) == {"topics": [], "buckets": []}


# --- partners ------------------------------------------------------------------------------


def test_partners_bind_then_list_shows_the_binding() -> None:
    bound = retailfn("partners", "bind", "initech", "--source", "/producers/initech")
    listed = retailfn("partners", "list", "--json")

    assert bound.exit_code == 0, bound.output
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {"partner_id": "initech", "source": "/producers/initech"}
    ]


def test_partners_bind_refuses_a_prefix_another_partner_holds() -> None:
    retailfn("partners", "bind", "initech", "--source", "/producers/initech")

    taken = retailfn("partners", "bind", "acme", "--source", "/producers/initech/pos")

    assert taken.exit_code == 1
    assert "overlaps '/producers/initech', which is bound to partner 'initech'" in taken.output


def test_partners_bind_refuses_retailfns_own_http_channel() -> None:
    reserved = retailfn("partners", "bind", "acme", "--source", "/partners/globex")

    assert reserved.exit_code == 1 and "is reserved" in reserved.output
    assert retailfn("partners", "list").stdout == ""


# --- what is printed: for people unless --json --------------------------------------------


def test_invoke_prints_the_outcome_for_people_unless_json() -> None:
    result = retailfn(
        "invoke", "record_order", "--event", str(ROOT / "events/samples/order-completed.json")
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"record_order: event {load_sample('order-completed')['id']} handled (attempts: 1)\n"
    )


def test_invoke_that_dead_letters_names_the_dead_letter_and_exits_1(bad_order: Path) -> None:
    result = retailfn("invoke", "record_order", "--event", str(bad_order))

    assert result.exit_code == 1
    [dl_id] = dead_letter_ids()
    assert result.stdout == (
        f"record_order: event {load_sample('order-completed')['id']} "
        f"dead-lettered after 1 attempt(s) as {dl_id} "
        f"(retailfn dlq show {dl_id})\n"
    )


def test_provision_prints_what_it_created_for_people() -> None:
    retailfn("provision")

    again = retailfn("provision")

    assert again.exit_code == 0, again.output
    assert again.stdout == "created 0 topics (all exist)\ncreated 0 buckets (all exist)\n"


# --- failures: one Error: line, exit 2 for usage and configuration, 1 at run time ---------


def error_line(result: Result) -> str:
    assert "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    return line


def test_a_bad_retailfn_value_is_one_error_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETAILFN_STOCK_BATCH_LIMIT", "lots")

    result = retailfn("provision")

    assert result.exit_code == 2
    assert error_line(result) == (
        "Error: RETAILFN_STOCK_BATCH_LIMIT=lots (from the environment): "
        "Input should be a valid integer, unable to parse string as an "
        "integer"
    )


def test_a_bad_value_in_a_functions_environment_names_the_function(tmp_path: Path) -> None:
    config = tmp_path / "serverless.yaml"
    config.write_text(
        CONFIG.read_text(encoding="utf-8").replace(
            "    handler: tests.support.event_functions:record_order\n",
            "    handler: tests.support.event_functions:record_order\n"
            "    environment:\n      RETAILFN_STOCK_BATCH_LIMIT: 0\n",
        ),
        encoding="utf-8",
    )

    result = retailfn(
        "invoke",
        "record_order",
        "--event",
        str(ROOT / "events/samples/order-completed.json"),
        config=config,
    )

    assert result.exit_code == 2
    assert error_line(result) == (
        "Error: RETAILFN_STOCK_BATCH_LIMIT=0 (from serverless.yaml, function record_order): "
        "Input should be greater than or equal to 1"
    )


def test_an_unknown_function_is_one_error_line() -> None:
    result = retailfn(
        "invoke", "nope", "--event", str(ROOT / "events/samples/order-completed.json")
    )

    assert result.exit_code == 2
    assert error_line(result).startswith("Error: unknown function(s) nope; known: echo, flaky, ")


def test_a_worker_for_an_unknown_function_is_one_error_line() -> None:
    result = retailfn("worker", "--functions", "nope")

    assert result.exit_code == 2
    assert error_line(result).startswith("Error: unknown function(s) nope; known: echo, flaky, ")


def test_debug_shows_the_failure_itself() -> None:
    from shared.runtime.app import UnknownFunction

    with pytest.raises(UnknownFunction):
        retailfn(
            "--debug",
            "invoke",
            "nope",
            "--event",
            str(ROOT / "events/samples/order-completed.json"),
        )


def test_a_port_in_use_is_one_error_line_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = retailfn("up", "--functions", "echo", "--port", str(port))

    assert result.exit_code == 1
    assert error_line(result) == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in "
        "use: another process is using that port; stop it or choose "
        "another with --port"
    )


def test_an_unreachable_kafka_is_one_error_line_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = free_port()
    monkeypatch.setenv("RETAILFN_BUS", "kafka")
    monkeypatch.setenv("RETAILFN_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed}")
    monkeypatch.setenv("RETAILFN_KAFKA_CONNECT_TIMEOUT_MS", "500")

    result = retailfn("provision")

    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("Error: event bus: cannot reach Kafka: ")
    assert f"(RETAILFN_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{closed})" in line


def test_an_unreachable_cos_is_one_error_line_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RETAILFN_OBJECTSTORE", "cos")
    monkeypatch.setenv("RETAILFN_COS_ENDPOINT", endpoint)
    monkeypatch.setenv("RETAILFN_COS_HMAC_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("RETAILFN_COS_HMAC_SECRET_ACCESS_KEY", "never-printed")

    result = retailfn("provision")

    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("Error: object store: Could not connect to the endpoint URL")
    assert f"(RETAILFN_COS_ENDPOINT={endpoint})" in line
    assert "never-printed" not in result.output


# --- the stage's environment ----------------------------------------------------------------

STAGES = """
service: retailfn-stages
provider:
  name: ibm
  environment:
    RETAILFN_STAGE: ${sls:stage}
stages:
  local: {}
  prod: {}
functions:
  recommend:
    handler: functions.recommend.main:recommend
    environment:
      RETAILFN_EXPERIMENTS: >-
        {"experiments": [{"name": "ranking", "control": "conf", "variants": [
        {"name": "conf", "weight": 50, "strategy": "confidence"},
        {"name": "lift", "weight": 50, "strategy": "lift"}]}]}
    events:
      - http:
          path: /v1/recommendations/{sku}
"""


@pytest.fixture
def stages(tmp_path: Path) -> Path:
    config = tmp_path / "serverless.yaml"
    config.write_text(STAGES, encoding="utf-8")
    return config


def test_experiments_assign_uses_the_experiments_configured_on_recommend(stages: Path) -> None:
    from shared.crosssell.rules.experiments import ExperimentsConfig, assign

    raw = yaml.safe_load(STAGES)["functions"]["recommend"]["environment"]["RETAILFN_EXPERIMENTS"]
    running = ExperimentsConfig.model_validate_json(raw).running()
    user = next(f"U-{n}" for n in range(100) if assign(running, f"U-{n}").name == "lift")

    result = retailfn("experiments", "assign", user, config=stages)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ranking lift strategy=lift")


def test_keys_dev_on_a_non_local_stage_is_refused(stages: Path) -> None:
    result = retailfn("--stage", "prod", "keys", "dev", config=stages)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert error_line(result) == (
        "Error: dev API keys exist on the local stage only (this is 'prod')"
    )


def test_a_non_local_stage_on_embedded_adapters_is_refused(stages: Path) -> None:
    result = retailfn("--stage", "prod", "keys", "list", config=stages)

    assert result.exit_code == 2
    assert error_line(result).startswith(
        "Error: stage 'prod' would run on the embedded bus (RETAILFN_BUS=embedded) and the folder "
        "store (RETAILFN_OBJECTSTORE=local); configure Kafka and COS for it"
    )


def test_allow_embedded_lets_a_non_local_stage_run_on_embedded_adapters(stages: Path) -> None:
    result = retailfn("--stage", "prod", "--allow-embedded", "keys", "list", config=stages)

    assert result.exit_code == 0, result.output
