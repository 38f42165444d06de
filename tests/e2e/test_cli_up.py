"""`retailfn up` as an operator runs it: a process that serves, reports ready, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from shared.platform.auth import dev_api_key
from tests.e2e.conftest import eventually
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_up_serves_every_http_trigger_reports_ready_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILFN_")}
    env.update(
        PYTHONPATH=str(REPO), RETAILFN_DATA_DIR=str(tmp_path / "data"), RETAILFN_LOG_LEVEL="INFO"
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shared.tools.cli", "up", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            eventually(lambda: _get(f"{base}/readyz") == 200, timeout_s=60)
            assert _get(f"{base}/healthz") == 200
            assert _get(f"{base}/openapi.json") == 200

            product = json.loads((REPO / "events/samples/product-introduced.json").read_text())
            body = {
                k: v for k, v in product["data"].items() if k not in ("partner_id", "introduced_at")
            }
            request = urllib.request.Request(
                f"{base}/v1/partners/acme/products",
                data=json.dumps(body).encode(),
                method="POST",
                headers={"Content-Type": "application/json", "X-API-Key": dev_api_key("acme")},
            )
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 201
            assert _get(f"{base}/v1/inventory/{body['sku']}?region=eu") == 200

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("message") == "runtime stopped" for line in lines)
    assert any(
        line.get("function") == "introduce_product" and line.get("status") == 201 for line in lines
    ), "one JSON access-log line per request"
