"""docs/PARTNERS.md, run as written: its curl examples against `retailfn up` on loopback, its file
drop (ibm-cos-sdk) against moto server and its Kafka producer (kafka-python) against Tansu. Only
the placeholders each section names are replaced (the service's address, the endpoint, bucket and
credentials); the stock then shows in the inventory API and the bad lines and records in the
drop's report and the partner's rejections."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.platform.auth import dev_api_key
from tests.e2e.conftest import eventually
from tests.servers import MotoS3, Tansu, free_port

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "PARTNERS.md"
_EXAMPLE = re.compile(
    r"<!-- example: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```\n", re.DOTALL
)
SKU = "ACME-YOGA-MAT-6MM"
UNKNOWN = "YM-NEVER-INTRODUCED"


def examples() -> dict[str, str]:
    """The guide's runnable examples by name (``<!-- example: name -->`` before the fence)."""
    found = {m["name"]: m["code"] for m in _EXAMPLE.finditer(GUIDE.read_text(encoding="utf-8"))}
    assert {
        "http-setup",
        "http-product",
        "http-stock",
        "http-inventory",
        "http-rejections",
        "file-drop",
        "kafka-bind",
        "kafka",
    } <= set(found), sorted(found)
    return found


def with_shell_values(code: str, values: dict[str, str]) -> str:
    """``code`` with the line ``NAME=...`` of each placeholder replaced, and nothing else."""
    for name, value in values.items():
        code, count = re.subn(rf"^{name}=.*$", f"{name}={value}", code, flags=re.MULTILINE)
        assert count == 1, f"the example assigns {name} {count} times"
    return code


def with_python_values(code: str, values: dict[str, Any]) -> str:
    """``code`` with the statement ``NAME = ...`` of each placeholder replaced, nothing else."""
    lines = code.splitlines()
    assigned = {
        node.targets[0].id: node
        for node in ast.parse(code).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    # Bottom up, so that the line numbers of the statements above stay true.
    for name in sorted(values, key=lambda n: -assigned[n].lineno):
        node = assigned[name]
        assert node.end_lineno is not None
        lines[node.lineno - 1 : node.end_lineno] = [f"{name} = {values[name]!r}"]
    return "\n".join(lines) + "\n"


@dataclass
class Service:
    base: str
    env: dict[str, str]
    broker: Tansu
    s3: MotoS3
    drops_bucket: str


@pytest.fixture(scope="module")
def service(moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`retailfn up` as an operator starts it, on a broker and a bucket prefix of its own."""
    tmp = tmp_path_factory.mktemp("partner-guide")
    broker = Tansu.start(log_path=tmp / "tansu.log")
    prefix = f"guide{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILFN_")}
    env.update(
        {
            # `retailfn` (for `retailfn keys dev`) is the one of this environment.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "RETAILFN_DATA_DIR": str(tmp / "data"),
            "RETAILFN_BUS": "kafka",
            "RETAILFN_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "RETAILFN_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "RETAILFN_KAFKA_HEARTBEAT_INTERVAL_MS": "400",
            "RETAILFN_OBJECTSTORE": "cos",
            "RETAILFN_COS_ENDPOINT": moto_s3.endpoint,
            "RETAILFN_COS_REGION": "us-east-1",
            "RETAILFN_COS_HMAC_ACCESS_KEY_ID": "test",
            "RETAILFN_COS_HMAC_SECRET_ACCESS_KEY": "test",
            "RETAILFN_BUCKET_PREFIX": prefix,
        }
    )
    port = free_port()
    log = (tmp / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.tools.cli", "up", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(
            lambda: process.poll() is None and _status(f"{base}/readyz") == 200,
            timeout_s=90,
            interval_s=0.5,
        )
        yield Service(base, env, broker, moto_s3, f"{prefix}-partner-drops")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        broker.stop()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _get(service: Service, path: str, key: str | None = None) -> Any:
    headers = {"X-API-Key": key} if key else {}
    request = urllib.request.Request(service.base + path, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def run_shell(service: Service, *names: str) -> str:
    """The named shell examples, in one shell, after the setup example with the address set."""
    guide = examples()
    script = "\n".join(
        [
            "set -euo pipefail",
            with_shell_values(guide["http-setup"], {"BASE": service.base}),
            *(guide[name] for name in names),
        ]
    )
    done = subprocess.run(
        ["bash", "-c", script],
        env=service.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_python(service: Service, name: str, values: dict[str, Any]) -> str:
    code = with_python_values(examples()[name], values)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=service.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def level_at(service: Service, location: str) -> int | None:
    item = _get(service, f"/v1/inventory/{SKU}?region=eu")
    found = [
        stock["available"]
        for stock in item.get("locations") or []
        if stock["partner_id"] == "acme" and stock["location_id"] == location
    ]
    return found[0] if found else None


def rejected(service: Service, channel: str) -> list[dict[str, Any]]:
    page = _get(service, "/v1/partners/acme/rejections", dev_api_key("acme"))
    return [
        item
        for item in page["items"]
        if item["channel"] == channel and item["partner_sku"] == UNKNOWN
    ]


def test_the_http_examples_run_as_written_and_a_sku_never_introduced_is_in_the_rejections(
    service: Service,
) -> None:
    output = run_shell(service, "http-product", "http-stock", "http-inventory", "http-rejections")

    assert '"accepted":2' in output.replace(" ", "")
    assert eventually(lambda: level_at(service, "BERLIN-1") == 10)
    [item] = eventually(lambda: rejected(service, "http"))
    assert (item["location_id"], item["source"]) == ("BERLIN-1", "/partners/acme/stock")
    assert "introduce the product first" in item["reason"]


def test_the_file_drop_example_runs_as_written_and_its_report_lists_the_bad_lines(
    service: Service,
) -> None:
    run_shell(service, "http-product")

    output = run_python(
        service,
        "file-drop",
        {
            "ENDPOINT": service.s3.endpoint,
            "BUCKET": service.drops_bucket,
            "ACCESS_KEY_ID": "test",
            "SECRET_ACCESS_KEY": "test",
        },
    )

    report = json.loads(output)
    assert (report["status"], report["lines_published"], report["lines_rejected"]) == (
        "ingested",
        1,
        2,
    )
    assert report["rejected"][0] == {
        "line": 3,
        "reason": "on_hand: Input should be greater than or equal to 0",
    }
    assert report["rejected"][1]["line"] == 4
    assert "introduce the product first" in report["rejected"][1]["reason"]
    assert eventually(lambda: level_at(service, "MUNICH-1") == 8)  # 4 packs of 2


def test_the_kafka_example_runs_as_written_and_a_sku_never_introduced_is_in_the_rejections(
    service: Service,
) -> None:
    run_shell(service, "http-product", "kafka-bind")  # the partner's product; our operator's bind

    run_python(service, "kafka", {"BOOTSTRAP": service.broker.bootstrap, "SECURITY": {}})

    assert eventually(lambda: level_at(service, "HAMBURG-1") == 8)
    [item] = eventually(lambda: rejected(service, "kafka"))
    assert (item["source"], item["event_id"]) == ("/acme/erp", f"acme-HAMBURG-1-{UNKNOWN}-1")
