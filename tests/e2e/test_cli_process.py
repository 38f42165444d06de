"""The real `retailfn` process runs with serverless.yaml's environment for the stage it is given.

The process is started exactly as an operator starts it (the installed console script, a clean
environment), because an in-process test cannot see what the CLI reads before the runtime
applies the stage.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from shared.crosssell.rules.experiments import ExperimentsConfig, assign
from shared.platform.auth import dev_api_key
from tests.e2e.conftest import eventually
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("retailfn")
RETAILFN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shared.tools.cli"]
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")

# A service whose `prod` stage sets no adapters: it would run on the embedded default.
STAGES_YAML = """
service: retailfn-stages
provider:
  name: ibm
  stage: local
  environment:
    RETAILFN_STAGE: ${sls:stage}
stages:
  local: {}
  prod: {}
functions:
  report_stock:
    handler: functions.report_stock.main:report_stock
    events:
      - http:
          path: /v1/partners/{partner}/stock
          method: post
          auth:
            type: apiKey
            scopes: [stock:write]
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILFN_")}
    env.update(PYTHONPATH=str(REPO), RETAILFN_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def _request(url: str, body: object | None = None, **headers: str) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")
    except OSError:
        return 0, {}


@contextmanager
def _up(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, Path, Path]]:
    """``retailfn <args> up`` until the block ends; yields its URL, stdout and stderr files."""
    port = free_port()
    out, err = tmp_path / "up.stdout", tmp_path / "up.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*RETAILFN, *args, "up", "--port", str(port)],
            cwd=REPO,
            env=_env(tmp_path, **env),
            stdout=stdout,
            stderr=stderr,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            eventually(
                lambda: process.poll() is not None or _request(f"{base}/readyz")[0] == 200,
                timeout_s=60,
            )
            assert process.poll() is None, err.read_text()
            yield base, out, err
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _stages_config(tmp_path: Path) -> Path:
    config = tmp_path / "serverless.yaml"
    config.write_text(STAGES_YAML, encoding="utf-8")
    return config


def _product() -> dict:
    sample = json.loads((REPO / "events/samples/product-introduced.json").read_text())
    return {k: v for k, v in sample["data"].items() if k not in ("partner_id", "introduced_at")}


def test_up_on_local_runs_the_experiment_configured_on_recommend(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "serverless.yaml").read_text())["stages"]["default"]["params"]
    experiment = ExperimentsConfig.model_validate(
        json.loads(params["recommendExperiments"])
    ).running()
    user = next(f"U-{n}" for n in range(100) if assign(experiment, f"U-{n}").name == "lift")
    product = _product()

    with _up(tmp_path) as (base, _stdout, _stderr):
        status, _ = _request(
            f"{base}/v1/partners/acme/products", product, **{"X-API-Key": dev_api_key("acme")}
        )
        assert status == 201
        status, doc = _request(f"{base}/v1/recommendations/{product['sku']}?region=eu&user={user}")

    assert status == 200, doc
    assert (doc["experiment"], doc["variant"]) == ("xsell-ranking", "lift")


def test_up_logs_json_on_stderr_only_with_a_json_ready_line(tmp_path: Path) -> None:
    with _up(tmp_path) as (base, stdout, stderr):
        pass

    assert stdout.read_text() == ""
    lines = [json.loads(line) for line in stderr.read_text().splitlines()]
    [ready] = [line for line in lines if line["message"] == "retailfn ready"]
    assert ready["stage"] == "local" and ready["url"] == base
    assert all(RFC3339_MS.match(line["time"]) for line in lines), lines[:3]


def test_up_on_a_non_local_stage_on_embedded_adapters_refuses_with_one_error_line(
    tmp_path: Path,
) -> None:
    config = _stages_config(tmp_path)

    result = subprocess.run(
        [*RETAILFN, "--config", str(config), "--stage", "prod", "up", "--port", str(free_port())],
        check=False,  # the caller reads the exit code
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: stage 'prod' would run on the embedded bus")
    assert "--allow-embedded" in line


def test_a_non_local_stage_allowed_on_embedded_adapters_refuses_the_dev_api_key(
    tmp_path: Path,
) -> None:
    config = _stages_config(tmp_path)
    report = {
        "partner_sku": "YM-4MM-PURPLE",
        "location_id": "BERLIN-1",
        "region": "eu",
        "on_hand": 12,
    }

    with _up(
        tmp_path, "--config", str(config), "--stage", "prod", RETAILFN_ALLOW_EMBEDDED="true"
    ) as (base, _stdout, _stderr):
        status, problem = _request(
            f"{base}/v1/partners/acme/stock",
            report,
            **{"X-API-Key": dev_api_key("acme"), "Idempotency-Key": "first-report"},
        )

    assert status == 401, problem


def test_keys_dev_on_a_non_local_stage_prints_no_key(tmp_path: Path) -> None:
    config = _stages_config(tmp_path)

    result = subprocess.run(
        [*RETAILFN, "--config", str(config), "--stage", "prod", "keys", "dev"],
        check=False,  # the caller reads the exit code
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "Error: dev API keys exist on the local stage only (this is 'prod')\n"


def test_up_serves_metrics_without_created_series(tmp_path: Path) -> None:
    with _up(tmp_path) as (base, _stdout, _stderr):
        _request(f"{base}/v1/inventory/YOGA-MAT-4MM?region=eu")
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()

    assert "retailfn_http_requests_total{" in metrics
    assert "_created" not in metrics


# --- exit codes and output of one-shot commands ------------------------------------------------

E2E_CONFIG = REPO / "tests/e2e/serverless.yaml"


def _retailfn(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RETAILFN, "--config", str(E2E_CONFIG), *args],
        check=False,  # the caller reads the exit code
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _bad_order(tmp_path: Path) -> Path:
    event = json.loads((REPO / "events/samples/order-completed.json").read_text())
    event["data"]["lines"][0]["quantity"] = "-1"
    path = tmp_path / "bad-order.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    return path


def test_invoke_that_dead_letters_exits_1_printing_for_people_and_logging_on_stderr(
    tmp_path: Path,
) -> None:
    result = _retailfn(tmp_path, "invoke", "record_order", "--event", str(_bad_order(tmp_path)))

    assert result.returncode == 1
    assert re.fullmatch(
        r"record_order: event \S+ dead-lettered after 1 attempt\(s\) as \w+ "
        r"\(retailfn dlq show \w+\)\n",
        result.stdout,
    ), result.stdout
    logs = [json.loads(line) for line in result.stderr.splitlines()]
    assert "event dead-lettered" in [line["message"] for line in logs]


def test_dlq_replay_that_fails_again_exits_1(tmp_path: Path) -> None:
    _retailfn(tmp_path, "invoke", "record_order", "--event", str(_bad_order(tmp_path)))

    result = _retailfn(tmp_path, "dlq", "replay", "--all", "--json")

    assert result.returncode == 1
    [replayed] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (replayed["function"], replayed["outcome"]) == ("record_order", "dead_letter")
