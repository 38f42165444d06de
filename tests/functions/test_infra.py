"""infra/: the Terraform parses, uses only real provider types and arguments, and matches
serverless.yaml and events/catalog.py (the generated part is what `retailfn infra generate` writes)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import hcl2
import pytest
from click.testing import CliRunner

from events.catalog import BUCKETS, TOPICS
from shared.runtime.commands import start_command
from shared.runtime.config import load_service
from shared.tools.cli import main as cli
from shared.tools.infra import GENERATED, generate, tf_name
from shared.tools.infra import write as write_generated
from shared.tools.validate import load_terraform, read_infra, terraform_files, validate_project

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SCHEMA = json.loads((INFRA / "provider-schema.json").read_text(encoding="utf-8"))


def service():  # type: ignore[no-untyped-def]
    return load_service(ROOT / "serverless.yaml", env={})


def _blocks(value: Any) -> list[dict[str, Any]]:
    """hcl2 and Terraform JSON give a nested block as a list of objects, or one object."""
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, dict)]


def _resources() -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for path in terraform_files(INFRA):
        doc = load_terraform(path)
        blocks = doc.get("resource", [])
        for block in blocks if isinstance(blocks, list) else [blocks]:
            for rtype, named in block.items():
                if rtype == "//":
                    continue
                for rname, attrs in named.items():
                    out.append(
                        (str(path.relative_to(ROOT)), rtype.strip('"'), rname.strip('"'), attrs)
                    )
    return out


def test_every_terraform_file_parses() -> None:
    files = terraform_files(INFRA)
    assert {p.name for p in files} >= {
        "main.tf",
        "iam.tf",
        "secrets.tf",
        "appid.tf",
        "topics.tf.json",
        "buckets.tf.json",
        "apps.tf.json",
        "subscriptions.tf.json",
        "module.tf.json",
    }
    for path in files:
        assert isinstance(load_terraform(path), dict), path
    for tfvars in (INFRA / "stages").glob("*.tfvars"):
        with tfvars.open(encoding="utf-8") as f:
            assert hcl2.load(f)["stage"].strip('"') == tfvars.stem


def test_every_resource_type_and_argument_is_in_the_committed_provider_schema() -> None:
    known, meta = SCHEMA["resources"], set(SCHEMA["meta_arguments"])
    unknown = []
    for file, rtype, rname, attrs in _resources():
        if rtype not in known:
            unknown.append(f"{file}: resource type {rtype}")
            continue
        args, blocks = set(known[rtype]["arguments"]), known[rtype]["blocks"]
        for key, value in attrs.items():
            if key == "dynamic":
                for dyn in _blocks(value):
                    for label, spec in dyn.items():
                        if label not in blocks:
                            unknown.append(f"{file}: {rtype}.{rname} dynamic block {label}")
                            continue
                        for content in _blocks(spec.get("content", {})):
                            unknown += [
                                f"{file}: {rtype}.{rname}.{label}.{k}"
                                for k in content
                                if k not in blocks[label] and not k.startswith("__")
                            ]
            elif key in blocks:
                for block in _blocks(value):
                    unknown += [
                        f"{file}: {rtype}.{rname}.{key}.{k}"
                        for k in block
                        if k not in blocks[key] and k != "//" and not k.startswith("__")
                    ]
            elif key not in args and key not in meta and not key.startswith("__"):
                unknown.append(f"{file}: {rtype}.{rname}.{key}")
        if rtype == "ibm_event_streams_topic":
            unknown += [
                f"{file}: {rname} config {k}"
                for k in (attrs.get("config") or {})
                if k.strip('"') not in known[rtype]["config_keys"]
            ]
    assert unknown == []


def test_every_function_has_its_app() -> None:
    infra = read_infra(INFRA)
    svc = service()
    assert set(infra.apps) == {tf_name(f) for f in svc.functions}
    for name, fn in svc.functions.items():
        app = infra.apps[tf_name(name)]
        assert app["image_reference"].endswith(f"/{name.replace('_', '-')}:${{var.image_tag}}")
        public = any(e.kind == "http" for e in fn.events)
        assert app["managed_domain_mappings"] == ("local_public" if public else "local")


def test_subscription_functions_have_their_subscriptions_and_workers_consume_by_themselves() -> (
    None
):
    infra = read_infra(INFRA)
    svc = service()
    seen = 0
    for name, fn in svc.functions.items():
        subs = [s for s in infra.subscriptions if s["function"] == name]
        if fn.deployment is not None:  # an event function's app runs its own start command
            assert [
                c.replace("$${", "${") for c in infra.apps[tf_name(name)]["run_commands"]
            ] == start_command(name, fn)
            assert "run_arguments" not in infra.apps[tf_name(name)]
        if fn.deployment == "worker":
            assert subs == [], name
            # The image installs the function's requirements, not the project: no `retailfn`.
            assert infra.apps[tf_name(name)]["run_commands"] == [
                "python",
                "-m",
                "shared.runtime.worker",
                "--function",
                name,
            ]
            assert "run_arguments" not in infra.apps[tf_name(name)]
            assert infra.apps[tf_name(name)]["scale_min_instances"] == 1
            continue
        for i, ev in enumerate(fn.events):
            mine = [s for s in subs if s["event"] == f"functions.{name}.events[{i}]"]
            if ev.kind == "kafka":
                assert sorted(s["topic"] for s in mine) == ev.kafka.topics
                for s in mine:
                    assert s["kind"] == "kafka"
                    assert s["consumer_group"] == (
                        ev.kafka.consumer_group or f"{svc.service}-${{var.stage}}-{name}"
                    )
            elif ev.kind == "cos":
                assert [
                    (s["kind"], s["bucket"], s["event_type"], s["prefix"], s["suffix"])
                    for s in mine
                ] == [
                    (
                        "cos",
                        f"${{var.bucket_prefix}}-{ev.cos.bucket}",
                        ev.cos.event,
                        ev.cos.prefix,
                        suffix,
                    )
                    for suffix in ev.cos.suffixes or ("",)
                ]
            elif ev.kind == "schedule":
                assert [s["kind"] for s in mine] == ["cron"]
            else:
                assert mine == []
            seen += len(mine)
    assert seen == len(infra.subscriptions)


def test_http_functions_apps_run_the_runtimes_http_front_for_their_function() -> None:
    infra = read_infra(INFRA)
    svc = service()
    http = [name for name, fn in svc.functions.items() if fn.deployment is None]
    assert http  # report_stock, inventory_api, ...
    for name in http:
        app = infra.apps[tf_name(name)]
        assert app["run_commands"] == [
            "python",
            "-m",
            "shared.runtime.http_app",
            "--function",
            name,
        ], name
        assert "run_arguments" not in app


def test_every_topic_has_the_catalogs_partitions_retention_and_cleanup_policy() -> None:
    infra = read_infra(INFRA)
    assert set(infra.topics) == set(TOPICS)
    for name, topic in TOPICS.items():
        assert infra.topics[name]["partitions"] == topic.partitions
        assert infra.topics[name]["config"] == topic.config()
    assert infra.topics["catalog.product-introduced"]["config"]["cleanup.policy"] == "compact"


def test_buckets_archive_to_the_cold_tier_and_dead_letters_expire() -> None:
    doc = json.loads((ROOT / GENERATED / "buckets.tf.json").read_text(encoding="utf-8"))
    buckets = doc["resource"]["ibm_cos_bucket"]
    assert set(buckets) == {tf_name(b) for b in BUCKETS}
    assert buckets["events_archive"]["archive_rule"][0]["type"] == "Glacier"
    assert buckets["events_archive"]["archive_rule"][0]["enable"] is True
    assert buckets["dead_letters"]["expire_rule"][0]["enable"] is True
    assert all(b["region_location"] == "${var.region}" for b in buckets.values())
    policies = doc["resource"]["ibm_iam_service_policy"]
    assert {p["resources"][0]["resource"] for p in policies.values()} == {
        f"${{ibm_cos_bucket.{tf_name(b)}.bucket_name}}" for b in BUCKETS
    }
    assert all(p["roles"] == ["Writer"] for p in policies.values())


def test_the_committed_generated_files_are_what_the_code_generates() -> None:
    wanted = generate(ROOT / "serverless.yaml")
    on_disk = {
        p.name: p.read_text(encoding="utf-8")
        for p in (ROOT / GENERATED).iterdir()
        if p.name.endswith((".tf", ".tf.json"))
    }
    assert on_disk == wanted, "run `retailfn infra generate` and commit infra/generated/"


def test_stage_tfvars_agree_with_serverless_yaml() -> None:
    for tfvars in (INFRA / "stages").glob("*.tfvars"):
        with tfvars.open(encoding="utf-8") as f:
            values = {k: v.strip('"') if isinstance(v, str) else v for k, v in hcl2.load(f).items()}
        env = load_service(ROOT / "serverless.yaml", stage=values["stage"], env={}).environment_for(
            next(iter(service().functions))
        )
        if "RETAILFN_BUCKET_PREFIX" in env:
            assert values["bucket_prefix"] == env["RETAILFN_BUCKET_PREFIX"], tfvars


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of serverless.yaml and infra/ that a test may break."""
    shutil.copy(ROOT / "serverless.yaml", tmp_path / "serverless.yaml")
    shutil.copytree(INFRA, tmp_path / "infra")
    return tmp_path


def _validate(root: Path) -> list[str]:
    return validate_project(load_service(root / "serverless.yaml", env={}), root)


def test_the_copy_validates_clean(copy: Path) -> None:
    assert _validate(copy) == []


def test_a_topic_renamed_in_serverless_yaml_only_fails_naming_both_places(copy: Path) -> None:
    config = copy / "serverless.yaml"
    text = config.read_text(encoding="utf-8")
    assert text.count("topic: inventory.stock-reported") == 1
    # A Kafka subscription to rename: ingest_stock behind one (it is a worker in the project).
    text = re.sub(r"deploy: worker  # per-key order.*\n", "deploy: subscription\n", text)
    text = text.replace("ordering: ordered", "ordering: unordered")
    config.write_text(text, encoding="utf-8")
    write_generated(copy)
    assert _validate(copy) == []
    config.write_text(
        text.replace("topic: inventory.stock-reported", "topic: inventory.stock-changed"),
        encoding="utf-8",
    )

    problems = _validate(copy)

    assert (
        "serverless.yaml functions.ingest_stock.events[0].kafka.topic "
        "'inventory.stock-changed' vs infra/generated/subscriptions.tf.json: the subscription "
        "of functions.ingest_stock.events[0] is on 'inventory.stock-reported' "
        "(run `retailfn infra generate`)"
    ) in problems
    assert any(p.startswith("infra/generated/subscriptions.tf.json: stale") for p in problems)

    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "validate"])
    assert result.exit_code == 1
    assert "functions.ingest_stock.events[0].kafka.topic" in result.output
    assert "infra/generated/subscriptions.tf.json" in result.output

    # regenerating repairs it
    result = runner.invoke(cli, ["--config", str(config), "infra", "generate"])
    assert result.exit_code == 0, result.output
    assert _validate(copy) == []


def test_a_topic_missing_from_infra_fails_naming_both_places(copy: Path) -> None:
    topics = copy / GENERATED / "topics.tf.json"
    doc = json.loads(topics.read_text(encoding="utf-8"))
    del doc["resource"]["ibm_event_streams_topic"]["inventory_stock_reported"]
    topics.write_text(json.dumps(doc), encoding="utf-8")

    problems = _validate(copy)

    assert any(
        p.startswith(
            "functions.ingest_stock.events[0].kafka.topic: topic "
            "'inventory.stock-reported' has no ibm_event_streams_topic in infra/"
        )
        and "infra/generated/topics.tf.json" in p
        for p in problems
    )


def test_a_cos_trigger_on_a_bucket_missing_from_infra_fails_naming_both_places(copy: Path) -> None:
    buckets = copy / GENERATED / "buckets.tf.json"
    doc = json.loads(buckets.read_text(encoding="utf-8"))
    del doc["resource"]["ibm_cos_bucket"]["partner_drops"]
    buckets.write_text(json.dumps(doc), encoding="utf-8")

    problems = _validate(copy)

    missing = [
        p for p in problems if "cos.bucket: bucket 'partner-drops' has no ibm_cos_bucket" in p
    ]
    assert missing and missing[0].startswith("functions.ingest_stock_file.events[0].cos.bucket")
    assert "infra/generated/buckets.tf.json" in missing[0]
    assert "infra/generated/buckets.tf.json: stale" in " ".join(problems)


def test_a_cos_subscription_that_drifted_names_both_places(copy: Path) -> None:
    subs = copy / GENERATED / "subscriptions.tf.json"
    doc = json.loads(subs.read_text(encoding="utf-8"))
    doc["resource"]["terraform_data"]["ingest_stock_file_cos_0_0"]["input"]["suffix"] = ".xml"
    subs.write_text(json.dumps(doc), encoding="utf-8")

    problems = _validate(copy)

    assert any(
        p.startswith(
            "serverless.yaml functions.ingest_stock_file.events[0].cos (bucket "
            "'partner-drops', event 'write', prefix '', suffix '.csv') vs "
            "infra/generated/subscriptions.tf.json"
        )
        for p in problems
    )


def test_a_function_without_its_app_is_reported(copy: Path) -> None:
    apps = copy / GENERATED / "apps.tf.json"
    doc = json.loads(apps.read_text(encoding="utf-8"))
    del doc["resource"]["ibm_code_engine_app"]["report_stock"]
    apps.write_text(json.dumps(doc), encoding="utf-8")

    problems = _validate(copy)

    assert (
        "serverless.yaml functions.report_stock vs infra/generated/apps.tf.json: no "
        "ibm_code_engine_app 'report_stock' (run `retailfn infra generate`)"
    ) in problems


def test_an_app_whose_command_is_not_its_images_is_reported(copy: Path) -> None:
    apps = copy / GENERATED / "apps.tf.json"
    doc = json.loads(apps.read_text(encoding="utf-8"))
    app = doc["resource"]["ibm_code_engine_app"]["archive_events"]
    app["run_commands"] = ["retailfn"]
    app["run_arguments"] = ["worker", "--functions", "archive_events", "--port", "8080"]
    apps.write_text(json.dumps(doc), encoding="utf-8")

    problems = _validate(copy)

    assert any(
        p.startswith(
            "serverless.yaml functions.archive_events (deploy: worker) vs "
            "infra/generated/apps.tf.json: the app must run its image's command "
            "['python', '-m', 'shared.runtime.worker', '--function', 'archive_events']"
        )
        and "it runs ['retailfn', 'worker'" in p
        for p in problems
    ), problems


def test_every_app_runs_the_command_its_image_starts_with() -> None:
    from shared.tools.package import command_for

    infra = read_infra(INFRA)
    svc = service()
    for name in svc.functions:
        command = [c.replace("$${", "${") for c in infra.apps[tf_name(name)]["run_commands"]]
        assert command == command_for(svc, name), name


SCHEDULED = """\
service: retailfn
functions:
  tick:
    handler: tests.support.event_functions:tick
    events:
      - schedule: rate(5 minutes)
      - schedule: cron(0 3 * * *)
  archive:
    handler: tests.support.event_functions:record_order
    events:
      - kafka: {topic: "*", mode: batch}
"""


def test_schedules_become_cron_subscriptions_and_sub_minute_rates_are_refused(
    tmp_path: Path,
) -> None:
    config = tmp_path / "serverless.yaml"
    config.write_text(SCHEDULED, encoding="utf-8")

    subs = json.loads(generate(config)["subscriptions.tf.json"])["resource"]["terraform_data"]

    assert [(s["input"]["name"], s["input"]["schedule"]) for s in subs.values()] == [
        ("tick-cron-0", "*/5 * * * *"),
        ("tick-cron-1", "0 3 * * *"),
    ]
    config.write_text(SCHEDULED.replace("rate(5 minutes)", "rate(10 seconds)"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "infra", "generate"])
    assert result.exit_code == 1
    assert "functions.tick.events[0]: rate(10 seconds) is below a minute" in result.output


SUFFIXES = """\
service: retailfn
functions:
  drops:
    handler: tests.support.event_functions:record_object
    events:
      - cos:
          bucket: partner-drops
          rules: [{prefix: drops/}, {suffix: .csv}, {suffix: .ndjson}]
      - cos:
          bucket: partner-drops
          event: s3:ObjectRemoved:*
          rules: [{prefix: drops/}]
"""


def test_a_cos_event_with_several_suffixes_gets_one_subscription_per_suffix(tmp_path: Path) -> None:
    config = tmp_path / "serverless.yaml"
    config.write_text(SUFFIXES, encoding="utf-8")

    subs = json.loads(generate(config)["subscriptions.tf.json"])["resource"]["terraform_data"]

    assert [
        (
            s["input"]["name"],
            s["input"]["event"],
            s["input"]["event_type"],
            s["input"]["prefix"],
            s["input"]["suffix"],
        )
        for s in subs.values()
    ] == [
        ("drops-cos-0-0", "functions.drops.events[0]", "write", "drops/", ".csv"),
        ("drops-cos-0-1", "functions.drops.events[0]", "write", "drops/", ".ndjson"),
        ("drops-cos-1", "functions.drops.events[1]", "delete", "drops/", ""),
    ]


V3_PARAMS = """\
service: retailfn
provider: {stage: "${opt:stage, 'dev'}"}
params:
  default: {limit: 1000}
  prod: {limit: 5000}
functions:
  report:
    handler: tests.support.http_functions:echo
    environment: {LIMIT: "${param:limit}"}
    events:
      - http: {path: /v1/report, method: post}
"""


def test_serverless_v3_params_stages_each_get_their_environment(tmp_path: Path) -> None:
    config = tmp_path / "serverless.yaml"
    config.write_text(V3_PARAMS, encoding="utf-8")

    env = json.loads(generate(config)["apps.tf.json"])["locals"]["function_environment"]

    assert {stage: e["LIMIT"] for stage, e in env["report"].items()} == {"prod": "5000"}


def test_a_stage_from_opt_stage_with_a_default_is_the_one_generated(tmp_path: Path) -> None:
    config = tmp_path / "serverless.yaml"
    config.write_text(V3_PARAMS.replace("  prod: {limit: 5000}\n", ""), encoding="utf-8")

    env = json.loads(generate(config)["apps.tf.json"])["locals"]["function_environment"]

    assert {stage: e["LIMIT"] for stage, e in env["report"].items()} == {"dev": "1000"}


def test_infra_generate_check_reports_stale_files(copy: Path) -> None:
    config = copy / "serverless.yaml"
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["--config", str(config), "infra", "generate", "--check"]).exit_code == 0
    )
    (copy / GENERATED / "apps.tf.json").write_text("{}\n", encoding="utf-8")
    result = runner.invoke(cli, ["--config", str(config), "infra", "generate", "--check"])
    assert result.exit_code == 1
    assert "infra/generated/apps.tf.json: stale" in result.output


def test_every_event_function_says_in_serverless_yaml_how_it_is_deployed() -> None:
    deploys = {
        name: fn.deploy
        for name, fn in service().functions.items()
        if any(e.kind != "http" for e in fn.events)
    }

    assert deploys == {
        "ingest_stock_file": "subscription",
        "ingest_stock": "worker",
        "archive_events": "worker",
        "recalc_cross_sell": "subscription",
    }


def test_an_app_that_does_not_run_its_deploy_modes_command_fails_validation(copy: Path) -> None:
    apps = copy / GENERATED / "apps.tf.json"
    doc = json.loads(apps.read_text(encoding="utf-8"))
    del doc["resource"]["ibm_code_engine_app"]["ingest_stock_file"]["run_commands"]
    apps.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    problems = _validate(copy)

    assert (
        "serverless.yaml functions.ingest_stock_file (deploy: subscription) vs "
        "infra/generated/apps.tf.json: the app must run its image's command ['python', '-m', "
        "'shared.runtime.subscription', '--function', 'ingest_stock_file']; it runs the "
        "image default (run `retailfn infra generate`)"
    ) in problems


def test_the_state_database_is_postgresql_with_a_credential_and_every_app_gets_its_secret() -> None:
    infra = read_infra(INFRA)

    assert {n: d["service"] for n, d in infra.databases.items()} == {
        "state": "databases-for-postgresql"
    }
    assert infra.resource_keys["database"]["instance"] == "${ibm_database.state.id}"
    assert infra.generated_module is not None
    assert infra.generated_module["database_secret"] == "${ibm_code_engine_secret.database.name}"
    assert infra.secrets["database"]["keys"] == [
        "RETAILFN_DATABASE_CA_PEM",
        "RETAILFN_DATABASE_URL",
    ]
    for name in service().functions:
        assert {
            "type": "secret_full_reference",
            "reference": "${var.database_secret}",
        } in infra.apps[tf_name(name)]["run_env_variables"], name


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _drop_block(path: Path, opening: str) -> None:
    """Remove a top-level block (``opening`` up to its closing brace at column 0)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(opening)
    end = text.index("\n}\n", start) + len("\n}\n")
    path.write_text(text[:start] + text[end:], encoding="utf-8")


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        pytest.param(
            lambda root: _drop_block(root / "infra/main.tf", 'resource "ibm_database" "state" {'),
            "infra/: no ibm_database (service 'databases-for-postgresql') for the state "
            "database; the apps' RETAILFN_DATABASE_URL comes from it",
            id="no-instance",
        ),
        pytest.param(
            lambda root: _edit(
                root / "infra/main.tf",
                'service           = "databases-for-postgresql"',
                'service           = "databases-for-mysql"',
            ),
            "infra/main.tf: ibm_database 'state' has service 'databases-for-mysql'; the state "
            "database is 'databases-for-postgresql'",
            id="not-postgresql",
        ),
        pytest.param(
            lambda root: _drop_block(
                root / "infra/secrets.tf", 'resource "ibm_resource_key" "database" {'
            ),
            "infra/main.tf: ibm_database 'state' has no ibm_resource_key (the apps' "
            "credential, from which the database secret is made)",
            id="no-credential",
        ),
        pytest.param(
            lambda root: _edit(
                root / "infra/main.tf",
                "  database_secret           = ibm_code_engine_secret.database.name\n",
                "",
            ),
            "infra/main.tf: module 'functions' passes no database_secret (the Code Engine "
            "secret with RETAILFN_DATABASE_URL that every app gets)",
            id="module-without-secret",
        ),
        pytest.param(
            lambda root: _edit(
                root / "infra/main.tf",
                "ibm_code_engine_secret.database.name",
                "ibm_code_engine_secret.state_db.name",
            ),
            "infra/main.tf: module 'functions' passes database_secret = "
            "${ibm_code_engine_secret.state_db.name}, which is no ibm_code_engine_secret "
            "defined in infra/",
            id="module-names-an-unknown-secret",
        ),
        pytest.param(
            lambda root: _edit(
                root / "infra/secrets.tf",
                "    RETAILFN_DATABASE_URL    = local.database_url\n",
                "    DATABASE_URL             = local.database_url\n",
            ),
            "infra/secrets.tf: ibm_code_engine_secret 'database' (the apps' database_secret) "
            "does not define RETAILFN_DATABASE_URL",
            id="secret-without-the-url",
        ),
    ],
)
def test_a_missing_piece_of_the_state_database_is_one_problem_line(
    copy: Path, break_it: Any, problem: str
) -> None:
    break_it(copy)

    assert _validate(copy) == [problem]


def test_an_app_without_the_database_secret_is_reported(copy: Path) -> None:
    apps = copy / GENERATED / "apps.tf.json"
    doc = json.loads(apps.read_text(encoding="utf-8"))
    app = doc["resource"]["ibm_code_engine_app"]["inventory_api"]
    app["run_env_variables"] = [
        e for e in app["run_env_variables"] if e["reference"] != "${var.database_secret}"
    ]
    apps.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    problems = _validate(copy)

    assert problems == [
        (
            "infra/generated/apps.tf.json: app 'inventory-api' does not get the database secret "
            "(run_env_variables has no secret_full_reference ${var.database_secret}), so it has "
            "no RETAILFN_DATABASE_URL (run `retailfn infra generate`)"
        ),
        (
            "infra/generated/apps.tf.json: stale, differs from what serverless.yaml and "
            "events/catalog.py generate; run `retailfn infra generate`"
        ),
    ]
