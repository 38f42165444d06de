"""`retailfn deploy`: the direct path on the embedded default, and the Terraform path."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import shared.tools.cli
from events.catalog import BUCKETS, TOPICS
from shared.integration.bus.embedded import EmbeddedBus
from shared.integration.objectstore.local import LocalFolderStore
from shared.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "serverless.yaml"
N_T, N_B = len(TOPICS), len(BUCKETS)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.tools.cli, "configure_logging", lambda *args, **kwargs: None)


def retailfn(*args: str, config: Path = CONFIG) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def data_dir() -> Path:
    return Path(os.environ["RETAILFN_DATA_DIR"])


def topics_on_disk() -> dict[str, int]:
    bus = EmbeddedBus(data_dir() / "bus")
    try:
        return bus.list_topics()
    finally:
        bus.close()


def buckets_on_disk() -> set[str]:
    store = LocalFolderStore(data_dir() / "objects")
    return {b for b in BUCKETS if store.bucket_exists(b)}


# --- direct (stage local) ------------------------------------------------------------------------


def test_first_deploy_creates_everything_and_the_second_reports_no_changes() -> None:
    first = retailfn("deploy", "--stage", "local")

    assert first.exit_code == 0, first.output
    assert topics_on_disk() == {t.name: t.partitions for t in TOPICS.values()}
    assert buckets_on_disk() == set(BUCKETS)
    assert f"created {N_T} topics and {N_B} buckets" in first.stdout
    meta = json.loads((data_dir() / "bus/topics/catalog.product-introduced/meta.json").read_text())
    assert meta["config"] == {"cleanup.policy": "compact", "retention.ms": "-1"}

    second = retailfn("deploy", "--stage", "local")

    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[-1] == (
        f"no changes: {N_T} topics and {N_B} buckets already exist"
    )
    assert " created" not in second.stdout


def test_dry_run_on_an_empty_stack_lists_creations_and_changes_nothing() -> None:
    result = retailfn("deploy", "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["changed"] is False
    assert {t["name"]: t["action"] for t in plan["topics"]} == dict.fromkeys(TOPICS, "create")
    assert {b["name"]: b["action"] for b in plan["buckets"]} == dict.fromkeys(BUCKETS, "create")
    assert {t["name"]: t["partitions"] for t in plan["topics"]} == {
        t.name: t.partitions for t in TOPICS.values()
    }
    assert topics_on_disk() == {}
    assert buckets_on_disk() == set()

    human = retailfn("deploy", "--dry-run")
    assert f"topics: {N_T} create; buckets: {N_B} create" in human.stdout
    assert topics_on_disk() == {}


def test_a_topic_with_fewer_partitions_is_drift_fixed_only_with_the_flag() -> None:
    retailfn("deploy")
    meta_path = data_dir() / "bus/topics/inventory.stock-reported/meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(
        json.dumps({**meta, "partitions": 4, "config": {**meta["config"], "retention.ms": "1000"}})
    )

    plan = json.loads(retailfn("deploy", "--dry-run", "--json").stdout)
    drifted = {t["name"]: t for t in plan["topics"] if t["action"] == "differs"}
    assert list(drifted) == ["inventory.stock-reported"]
    assert drifted["inventory.stock-reported"]["existing_partitions"] == 4
    assert drifted["inventory.stock-reported"]["config_drift"] == {
        "retention.ms": {
            "want": str(TOPICS["inventory.stock-reported"].retention_ms),
            "have": "1000",
        }
    }

    plain = retailfn("deploy")
    assert plain.exit_code == 2  # drift remains: reported, never fixed silently
    assert "--increase-partitions" in plain.stdout
    assert topics_on_disk()["inventory.stock-reported"] == 4

    fixed = retailfn("deploy", "--increase-partitions", "--update-configs")
    assert fixed.exit_code == 0, fixed.output
    assert "partitions 4 -> 12" in fixed.stdout
    assert topics_on_disk()["inventory.stock-reported"] == 12
    again = retailfn("deploy")
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1].startswith("no changes")


def test_stage_environment_from_serverless_yaml_names_the_buckets(tmp_path: Path) -> None:
    config = tmp_path / "serverless.yaml"
    config.write_text(
        CONFIG.read_text().replace(
            "  local:\n    params:",
            "  local:\n    environment:\n      RETAILFN_BUCKET_PREFIX: loc\n    params:",
        )
    )

    result = retailfn("deploy", "--json", config=config)

    assert result.exit_code == 0, result.output
    assert {b["physical"] for b in json.loads(result.stdout)["buckets"]} == {
        f"loc-{b}" for b in BUCKETS
    }


# --- terraform (cloud stages) --------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of serverless.yaml and infra/, so that tfvars are written outside the repository."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(CONFIG, root / "serverless.yaml")
    shutil.copytree(
        ROOT / "infra",
        root / "infra",
        ignore=shutil.ignore_patterns(".terraform*", "stages", "*.tfplan"),
    )
    return root


def required_elsewhere(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TF_VAR_<name> for every required variable of infra/ that serverless.yaml does not give
    (resource group, image registry and tag ... whatever infra/ declares today)."""
    from shared.runtime.config import load_service
    from shared.tools.deploy import declared_variables, terraform_variables

    ours = terraform_variables(load_service(project / "serverless.yaml", stage="prod"))
    for name, has_default in (declared_variables(project / "infra") or {}).items():
        if not has_default and name not in ours:
            monkeypatch.setenv(f"TF_VAR_{name}", f"test-{name}")


@pytest.fixture
def no_terraform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_a_cloud_stage_writes_the_tfvars_and_prints_the_commands(
    project: Path, no_terraform: None
) -> None:
    result = retailfn(
        "deploy",
        "--stage",
        "prod",
        "--var",
        "resource_group_id=rg-1",
        config=project / "serverless.yaml",
    )

    assert result.exit_code == 0, result.output
    var_file = project / "infra/stages/prod.tfvars.json"
    tfvars = json.loads(var_file.read_text())
    assert tfvars["bucket_prefix"] == "retailfn-prod"  # stages.prod.environment in serverless.yaml
    assert tfvars["region"] == "eu-de"
    assert tfvars["resource_group_id"] == "rg-1"
    out = result.stdout
    assert "wrote infra/stages/prod.tfvars.json" in out
    for line in (
        (
            "terraform -chdir=infra init -input=false -reconfigure "
            "-backend-config=stages/prod.s3.tfbackend"
        ),
        (
            "terraform -chdir=infra plan -input=false "
            "-var-file=stages/prod.tfvars.json -out=prod.tfplan"
        ),
        "terraform -chdir=infra apply -input=false prod.tfplan",
    ):
        assert line in out
    # No local topics or buckets were touched for a cloud stage.
    assert topics_on_disk() == {}


def test_a_cloud_stage_dry_run_writes_nothing(project: Path, no_terraform: None) -> None:
    result = retailfn(
        "deploy", "--stage", "prod", "--dry-run", "--json", config=project / "serverless.yaml"
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["written"] is False and doc["variables"]["bucket_prefix"] == "retailfn-prod"
    assert not (project / "infra/stages").exists()


def test_only_variables_infra_declares_are_written(project: Path, no_terraform: None) -> None:
    (project / "infra/extra.tf").write_text(
        'variable "service" {\n  type = string\n}\nvariable "needed" {\n  type = string\n}\n'
    )
    (project / "infra/generated/module_only.tf.json").write_text(
        json.dumps({"variable": {"module_only": {"type": "string"}}})
    )

    doc = json.loads(
        retailfn("deploy", "--stage", "prod", "--json", config=project / "serverless.yaml").stdout
    )

    assert doc["variables"]["service"] == "retailfn"
    assert "needed" in doc["missing"]
    assert "module_only" not in doc["missing"]  # a module's variables come from the root module


def test_the_operators_tfvars_is_passed_first_and_serverless_yaml_wins(
    project: Path, no_terraform: None
) -> None:
    (project / "infra/stages").mkdir()
    (project / "infra/stages/prod.tfvars").write_text(
        'resource_group_id = "rg-9"\nbucket_prefix = "someone-else"\nimage_tag = "v1"\n'
    )

    result = retailfn("deploy", "--stage", "prod", config=project / "serverless.yaml")

    assert result.exit_code == 0, result.output
    assert (
        "-var-file=stages/prod.tfvars -var-file=stages/prod.tfvars.json -out=prod.tfplan"
    ) in result.stdout
    assert "warning: bucket_prefix differs" in result.stdout
    assert (
        json.loads((project / "infra/stages/prod.tfvars.json").read_text())["bucket_prefix"]
        == "retailfn-prod"
    )
    doc = json.loads(
        retailfn("deploy", "--stage", "prod", "--json", config=project / "serverless.yaml").stdout
    )
    assert "resource_group_id" not in doc["missing"] and "image_tag" not in doc["missing"]


def test_terraform_on_the_path_is_run_init_plan_apply(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "terraform-calls.jsonl"
    fake = bin_dir / "terraform"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(calls)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "                        'rg': os.environ.get('TF_VAR_resource_group_id')})"
        " + '\\n')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    required_elsewhere(project, monkeypatch)
    monkeypatch.setenv("TF_VAR_resource_group_id", "rg-from-env")

    result = retailfn("deploy", "--stage", "prod", config=project / "serverless.yaml")

    assert result.exit_code == 0, result.output
    ran = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [r["argv"] for r in ran] == [
        [
            "-chdir=infra",
            "init",
            "-input=false",
            "-reconfigure",
            "-backend-config=stages/prod.s3.tfbackend",
        ],
        [
            "-chdir=infra",
            "plan",
            "-input=false",
            "-var-file=stages/prod.tfvars.json",
            "-out=prod.tfplan",
        ],
        ["-chdir=infra", "apply", "-input=false", "prod.tfplan"],
    ]
    assert {r["cwd"] for r in ran} == {str(project)}
    assert {r["rg"] for r in ran} == {"rg-from-env"}
    assert (project / "infra/stages/prod.tfvars.json").is_file()
    assert "terraform applied stage prod" in result.stdout


def test_a_failing_terraform_stops_the_deploy(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "terraform"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3 if 'plan' in sys.argv else 0)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    required_elsewhere(project, monkeypatch)

    result = retailfn("deploy", "--stage", "prod", config=project / "serverless.yaml")

    assert result.exit_code == 1
    assert "plan -input=false" in result.output and "exit code 3" in result.output


def test_print_only_never_runs_terraform(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ran"
    fake = bin_dir / "terraform"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))

    result = retailfn(
        "deploy", "--stage", "prod", "--print-only", config=project / "serverless.yaml"
    )

    assert result.exit_code == 0, result.output
    assert not marker.exists()
    assert "terraform -chdir=infra apply" in result.stdout


# --- remote state and placeholders ----------------------------------------------------------------


def test_each_cloud_stage_gets_its_own_remote_state_in_cos(
    project: Path, no_terraform: None
) -> None:
    staging = (
        (project / "serverless.yaml")
        .read_text()
        .replace(
            "  prod:\n",
            "  staging:\n    environment:\n      RETAILFN_BUCKET_PREFIX: retailfn-stg\n  prod:\n",
            1,
        )
    )
    (project / "serverless.yaml").write_text(staging)

    for stage in ("prod", "staging"):
        result = retailfn("deploy", "--stage", stage, config=project / "serverless.yaml")
        assert result.exit_code == 0, result.output
        assert (f"-backend-config=stages/{stage}.s3.tfbackend") in result.stdout

    prod = (project / "infra/stages/prod.s3.tfbackend").read_text()
    staging_backend = (project / "infra/stages/staging.s3.tfbackend").read_text()
    assert 'bucket = "retailfn-prod-terraform-state"' in prod
    assert 'key = "retailfn/prod/terraform.tfstate"' in prod
    assert 'endpoints = { s3 = "https://s3.eu-de.cloud-object-storage.appdomain.cloud" }' in prod
    assert "skip_credentials_validation = true" in prod and "use_path_style = true" in prod
    assert 'bucket = "retailfn-stg-terraform-state"' in staging_backend
    assert 'key = "retailfn/staging/terraform.tfstate"' in staging_backend


def test_infra_declares_the_s3_backend_the_deploy_configures() -> None:
    from shared.tools.deploy import declares_s3_backend

    assert declares_s3_backend(ROOT / "infra")


def test_dry_run_flags_placeholder_values(project: Path, no_terraform: None) -> None:
    (project / "infra/stages").mkdir()
    (project / "infra/stages/prod.tfvars").write_text(
        'resource_group_id = "REPLACE-with-your-resource-group-id"\nimage_tag = "latest"\n'
        'image_registry = "private.de.icr.io/retailfn"\n'
    )

    result = retailfn("deploy", "--stage", "prod", "--dry-run", config=project / "serverless.yaml")

    assert result.exit_code == 2
    flagged = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(flagged) == 2
    assert flagged[0].startswith('error: image_tag = "latest" (infra/stages/prod.tfvars)')
    assert flagged[1].startswith(
        'error: resource_group_id = "REPLACE-with-your-resource-group-'
        'id" (infra/stages/prod.tfvars): a placeholder'
    )
    assert not (project / "infra/stages/prod.tfvars.json").exists()


def test_dry_run_with_real_values_flags_nothing(project: Path, no_terraform: None) -> None:
    (project / "infra/stages").mkdir()
    (project / "infra/stages/prod.tfvars").write_text(
        'resource_group_id = "REPLACE-with-your-resource-group-id"\nimage_tag = "latest"\n'
    )

    result = retailfn(
        "deploy",
        "--stage",
        "prod",
        "--dry-run",
        "--json",
        "--var",
        "resource_group_id=rg-1",
        "--var",
        "image_tag=3f9c2e1",
        config=project / "serverless.yaml",
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["placeholders"] == []


def test_terraform_never_runs_with_a_placeholder(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ran"
    fake = bin_dir / "terraform"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    required_elsewhere(project, monkeypatch)

    result = retailfn(
        "deploy", "--stage", "prod", "--var", "image_tag=latest", config=project / "serverless.yaml"
    )

    assert result.exit_code == 1
    assert "placeholder values, not running terraform" in result.output
    assert not marker.exists()


def test_the_projects_own_prod_tfvars_is_flagged_until_its_placeholders_are_set() -> None:
    result = retailfn("deploy", "--stage", "prod", "--dry-run")

    assert result.exit_code == 2
    assert "resource_group_id" in result.stderr and 'image_tag = "latest"' in result.stderr


@pytest.mark.parametrize(
    "path",
    [
        "infra/.terraform/providers/x",
        "infra/terraform.tfstate",
        "infra/terraform.tfstate.backup",
        "infra/prod.tfplan",
        "infra/stages/prod.tfvars.json",
        "infra/stages/prod.s3.tfbackend",
        "infra/generated/.terraform/modules.json",
    ],
)
def test_git_ignores_terraform_state_plans_caches_and_generated_stage_files(path: str) -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, f"{path} is not ignored"


def test_git_keeps_the_hand_written_stage_variables() -> None:
    kept = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", "infra/stages/prod.tfvars"],
        cwd=ROOT,
        check=False,
    )
    assert kept.returncode == 1
