"""`retailfn deploy --stage local` against a fresh Tansu broker and a fresh moto bucket prefix,
then the runtime on that stage without its own provisioning: a short end-to-end smoke."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import shared.tools.cli
from events.catalog import BUCKETS, TOPICS
from shared.platform.adapters import bucket, get_bus, get_store, reset_adapters
from shared.platform.auth import dev_api_key
from shared.platform.settings import reset_settings
from shared.runtime.app import Runtime
from shared.runtime.config import load_service
from shared.tools.cli import main
from tests.e2e.conftest import _real_env, eventually
from tests.e2e.test_partner_inventory import Client
from tests.servers import MotoS3, Tansu

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "serverless.yaml"


@pytest.fixture
def real_stack(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    broker = Tansu.start(log_path=tmp_path / "tansu.log")
    env = _real_env(broker, moto_s3, f"dep{uuid.uuid4().hex[:8]}")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(shared.tools.cli, "configure_logging", lambda *args, **kwargs: None)
    reset_settings()
    reset_adapters()
    try:
        yield env
    finally:
        reset_adapters()
        broker.stop()


def retailfn(*args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(CONFIG), *args], catch_exceptions=False)


def test_deploy_creates_every_topic_and_bucket_then_the_runtime_serves_on_it(
    real_stack: dict[str, str],
) -> None:
    assert get_bus().list_topics() == {}  # a fresh broker
    plan = json.loads(retailfn("deploy", "--stage", "local", "--dry-run", "--json").stdout)
    assert {t["action"] for t in plan["topics"]} == {"create"}
    assert get_bus().list_topics() == {}

    first = retailfn("deploy", "--stage", "local")

    assert first.exit_code == 0, first.output
    assert f"created {len(TOPICS)} topics and {len(BUCKETS)} buckets" in first.stdout
    assert get_bus().list_topics() == {t.name: t.partitions for t in TOPICS.values()}
    assert all(get_store().bucket_exists(bucket(b)) for b in BUCKETS)
    assert bucket("state").startswith(real_stack["RETAILFN_BUCKET_PREFIX"] + "-")

    second = retailfn("deploy", "--stage", "local", "--json")

    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["changed"] is False
    assert report["summary"] == (
        f"no changes: {len(TOPICS)} topics and {len(BUCKETS)} buckets already exist"
    )

    # The runtime on that stage, without provisioning: everything it needs is already there.
    rt = Runtime(load_service(CONFIG, stage="local"), provision=False, port=0)
    rt.start()
    try:
        assert rt.wait_ready(60)
        api = Client(rt.port)
        status, _, answer = api.call(
            "POST",
            "/v1/partners/acme/products",
            {
                "sku": "DEPLOY-MAT",
                "partner_sku": "DM-1",
                "category": "sports/yoga/mats",
                "regions": ["eu"],
                "default_locale": "en-US",
                "names": {"en-US": "Deploy mat"},
                "prices": {"EUR": "10.00"},
            },
            {"X-API-Key": dev_api_key("acme")},
        )
        assert status in (200, 201), answer
        status, _, answer = api.call(
            "POST",
            "/v1/partners/acme/stock",
            {
                "lines": [
                    {
                        "partner_sku": "DM-1",
                        "location_id": "BERLIN-1",
                        "region": "eu",
                        "on_hand": 4,
                        "sequence": 1,
                    }
                ]
            },
            {"X-API-Key": dev_api_key("acme")},
        )
        assert status == 202, answer

        def available() -> int | None:
            status, _, body = api.call("GET", "/v1/inventory/DEPLOY-MAT?region=eu")
            return body["available"] if status == 200 and body.get("unit") else None

        assert eventually(available, timeout_s=30) == 4  # processed by ingest_stock via Kafka
    finally:
        rt.stop()
