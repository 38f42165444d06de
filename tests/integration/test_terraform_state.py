"""The remote state `retailfn deploy` configures, used by the real Terraform against moto's S3.

`infra/backend.tf` and the `stages/<stage>.s3.tfbackend` that `retailfn deploy` writes, with only
the COS endpoint pointed at moto: `terraform init` and `apply` of a module holding one
`terraform_data` (built into Terraform, nothing to download) must keep the state in the stage's
bucket under the stage's key, and nothing on the local disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import boto3
from click.testing import CliRunner

from shared.tools.cli import main
from tests.servers import MotoS3

ROOT = Path(__file__).resolve().parents[2]


def test_terraform_keeps_the_stage_state_in_its_cos_bucket(moto_s3: MotoS3, tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    assert terraform, "terraform must be on the PATH (infra/README.md)"
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "serverless.yaml", project / "serverless.yaml")
    shutil.copytree(
        ROOT / "infra",
        project / "infra",
        ignore=shutil.ignore_patterns(".terraform*", "stages", "*.tfplan"),
    )
    written = CliRunner().invoke(
        main,
        [
            "--config",
            str(project / "serverless.yaml"),
            "deploy",
            "--stage",
            "prod",
            "--print-only",
            "--var",
            "image_tag=v1",
            "--var",
            "resource_group_id=rg-1",
        ],
        catch_exceptions=False,
    )
    assert written.exit_code == 0, written.output
    backend = (project / "infra/stages/prod.s3.tfbackend").read_text()
    cos = "https://s3.eu-de.cloud-object-storage.appdomain.cloud"
    assert cos in backend
    # A root module of its own: infra/'s IBM provider cannot be downloaded here.
    module = tmp_path / "module"
    module.mkdir()
    shutil.copy(project / "infra/backend.tf", module / "backend.tf")
    (module / "main.tf").write_text('resource "terraform_data" "probe" {\n  input = "prod"\n}\n')
    (module / "prod.s3.tfbackend").write_text(backend.replace(cos, moto_s3.endpoint))
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket="retailfn-prod-terraform-state")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TF_IN_AUTOMATION": "1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "TF_DATA_DIR": str(tmp_path / "tf-data"),
    }

    for args in (
        ["init", "-input=false", "-reconfigure", "-backend-config=prod.s3.tfbackend"],
        ["apply", "-input=false", "-auto-approve"],
    ):
        ran = subprocess.run(
            [terraform, f"-chdir={module}", *args],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr

    state = json.loads(
        s3.get_object(
            Bucket="retailfn-prod-terraform-state", Key="retailfn/prod/terraform.tfstate"
        )["Body"].read()
    )
    assert [r["type"] + "." + r["name"] for r in state["resources"]] == ["terraform_data.probe"]
    assert not list(module.glob("*.tfstate"))
