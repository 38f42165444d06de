"""The runtime from serverless.yaml, on the embedded default and on Tansu + moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.envelope import event_from_sample, new_event, to_kafka
from shared.integration.objectstore.port import ObjectNotFound
from shared.platform.adapters import bucket, get_bus, get_store
from shared.runtime.app import Runtime
from shared.runtime.config import load_service
from tests.e2e.conftest import E2E_CONFIG, Stack, deployed, eventually

REPO = Path(__file__).resolve().parents[2]


def effects(name: str) -> list[dict]:
    try:
        return json.loads(get_store().get(bucket("state"), f"effects/{name}.json").body)
    except ObjectNotFound:
        return []


def publish(topic: str, event) -> None:  # type: ignore[no-untyped-def]
    key, value, headers = to_kafka(event)
    get_bus().publish(topic, value, key=key, headers=headers)


@pytest.fixture
def runtime(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("FLAKY_SWITCH", str(tmp_path / "erp-is-back"))
    service = load_service(E2E_CONFIG, stage="local")
    rt = Runtime(
        deployed(service),
        port=0,
        provision=False,
        functions=["echo", "record_order", "record_object", "tick", "flaky"],
    )
    rt.start()
    assert rt.wait_ready(60), "runtime did not become ready"
    yield rt
    rt.stop()


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "shared.tools.cli", "--config", str(E2E_CONFIG), *args],
        check=False,  # the caller reads the exit code
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_http_trigger_reaches_the_function_with_its_path(runtime: Runtime) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{runtime.port}/v1/partners/acme/items/SKU-1?lang=de",
        method="POST",
        data=b"{}",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["path"] == "/v1/partners/acme/items/SKU-1"
    assert body["params"] == {"partner": "acme", "sku": "SKU-1"}


def test_kafka_trigger_hands_the_function_a_typed_event(runtime: Runtime) -> None:
    event = event_from_sample("order-completed")
    publish("sales.order-completed", event)
    assert eventually(lambda: effects("record_order")) == [
        {"id": event.id, "type": "com.retailfn.sales.order-completed.v1"}
    ]


def test_cos_trigger_fires_for_a_file_written_directly_by_another_client(
    stack: Stack, runtime: Runtime
) -> None:
    drops = bucket("partner-drops")
    if stack.kind == "real":
        import ibm_boto3
        from ibm_botocore.client import Config

        s3 = ibm_boto3.client(
            "s3",
            endpoint_url=stack.s3.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
            config=Config(signature_version="s3v4"),
        )
        s3.put_object(Bucket=drops, Key="drops/acme/stock.csv", Body=b"sku,qty\nA,1\n")
        s3.put_object(Bucket=drops, Key="drops/acme/readme.txt", Body=b"not a csv")
    else:
        folder = Path(stack.env["RETAILFN_DATA_DIR"]) / "objects" / drops / "drops" / "acme"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stock.csv").write_bytes(b"sku,qty\nA,1\n")
        (folder / "readme.txt").write_bytes(b"not a csv")
    seen = eventually(lambda: effects("record_object"))
    assert [(e["key"], e["operation"]) for e in seen] == [("drops/acme/stock.csv", "write")]

    get_store().delete(drops, "drops/acme/stock.csv")
    seen = eventually(lambda: len(effects("record_object")) == 2 and effects("record_object"))
    assert seen[1]["operation"] == "delete"


def test_schedule_trigger_fires_once_per_tick(runtime: Runtime) -> None:
    ticks = eventually(lambda: len(effects("tick")) >= 2 and effects("tick"), timeout_s=10)
    ids = [t["id"] for t in ticks]
    assert len(ids) == len(set(ids))


def test_failing_function_is_retried_with_backoff_dead_lettered_then_replayed(
    stack: Stack, runtime: Runtime, tmp_path: Path
) -> None:
    event = event_from_sample("coupon-redeemed")
    publish("loyalty.coupon-redeemed", event)
    # retry: 2 -> three attempts, then the dead letter
    eventually(lambda: len(effects("flaky-attempts")) == 3)
    listed = eventually(lambda: (r := cli(stack, "dlq", "list")).stdout.strip() and r)
    assert listed.returncode == 0, listed.stderr
    assert event.id in listed.stdout and "downstream ERP is unavailable" in listed.stdout
    dead = [r for r in get_bus().read_all("platform.dead-letter")]
    assert len(dead) == 1
    assert json.loads(dead[0].value)["event"]["id"] == event.id
    assert effects("flaky") == []

    (tmp_path / "erp-is-back").touch()  # the fix is deployed
    replay = cli(stack, "dlq", "replay", "--all")
    assert replay.returncode == 0, replay.stderr
    assert effects("flaky") == [{"id": event.id}]
    assert cli(stack, "dlq", "list").stdout.strip() == ""


def test_duplicate_event_has_its_effect_once(runtime: Runtime) -> None:
    first = event_from_sample("order-completed")
    publish("sales.order-completed", first)
    publish("sales.order-completed", first)  # a producer retry: same source and id
    later = new_event(first.data, source=first.source, key=first.partitionkey)
    publish("sales.order-completed", later)  # same key, so the same partition, after them

    def both_applied() -> list[str] | None:
        seen = [e["id"] for e in effects("record_order")]  # one read: the effects as of now
        return seen if later.id in seen else None

    assert eventually(both_applied) == [first.id, later.id]


def test_poison_record_is_dead_lettered_and_the_records_after_it_still_run(
    runtime: Runtime,
) -> None:
    good = event_from_sample("order-completed")
    key, value, headers = to_kafka(good)
    bus = get_bus()
    bus.publish(
        "sales.order-completed",
        b'{"order_id": ',
        key=key,
        headers=[(k, v if k != "ce_id" else b"poison-1") for k, v in headers],
    )
    bus.publish("sales.order-completed", value, key=key, headers=headers)
    assert eventually(lambda: [e["id"] for e in effects("record_order")]) == [good.id]
    dead = eventually(lambda: bus.read_all("platform.dead-letter"))
    payload = json.loads(dead[0].value)
    assert payload["function"] == "record_order"
    assert payload["event"]["id"] == "poison-1"
    assert payload["error"]["retryable"] is False


def test_metrics_count_events_by_outcome_and_report_consumer_lag(runtime: Runtime) -> None:
    event = event_from_sample("order-completed")
    publish("sales.order-completed", event)
    eventually(lambda: effects("record_order"))

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{runtime.port}/metrics", timeout=10) as r:
            return r.read().decode()

    text = eventually(
        lambda: (t := scrape()) and 'retailfn_consumer_lag{function="record_order"' in t and t
    )
    assert 'retailfn_events_total{function="record_order",outcome="ok",trigger="kafka"}' in text
    assert "retailfn_event_duration_seconds_bucket" in text
