"""A poison record on inventory.stock-reported, over the runtime from the project's
serverless.yaml: it is dead-lettered, every good report around it is applied, and the process
stays ready."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.inventory import PartnerRegistry
from shared.platform.adapters import bucket, get_bus, get_store
from shared.platform.auth import dev_api_key
from shared.runtime.app import Runtime
from shared.runtime.config import load_service
from shared.runtime.deadletter import DeadLetterStore
from shared.tools.demo import raw_record_source
from tests.e2e.conftest import Stack, deployed, eventually

REPO = Path(__file__).resolve().parents[2]
TOPIC = "inventory.stock-reported"
NESTED = b"[" * 200_000
HUGE = b'{"partner_id":"acme","note":"' + b"x" * 5_000_000 + b'"}'


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": dev_api_key("acme")},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def report(location: str, on_hand: int) -> dict[str, Any]:
    return {
        "partner_id": "acme",
        "partner_sku": "YM-4MM",
        "location_id": location,
        "region": "eu",
        "on_hand": on_hand,
        "reported_at": "2026-11-27T07:30:00Z",
    }


def produce(stack: Stack, records: list[tuple[bytes, bytes]]) -> None:
    """Publish as an outside producer would: plain kafka-python on Tansu (allowed records of
    up to 8 MB, as a broker may be configured), the bus itself on the embedded default."""
    if stack.kind == "embedded":
        for key, value in records:
            get_bus().publish(TOPIC, value, key=key)
        return
    from kafka import KafkaProducer

    assert stack.broker is not None
    producer = KafkaProducer(
        bootstrap_servers=stack.broker.bootstrap, max_request_size=8 * 1024 * 1024, acks="all"
    )
    try:
        for key, value in records:
            producer.send(TOPIC, value=value, key=key).get(timeout=30)
    finally:
        producer.close()


@pytest.fixture
def runtime(stack: Stack) -> Iterator[Runtime]:
    rt = Runtime(
        deployed(load_service(REPO / "serverless.yaml", stage="local")),
        port=0,
        provision=False,
        functions=["introduce_product", "report_stock", "ingest_stock", "inventory_api"],
    )
    rt.start()
    assert rt.wait_ready(60)
    yield rt
    rt.stop()


def test_poison_records_are_dead_lettered_and_every_good_report_around_them_is_applied(
    stack: Stack, runtime: Runtime
) -> None:
    port = runtime.port
    status, answer = call(
        port,
        "POST",
        "/v1/partners/acme/products",
        {
            "sku": "YOGA-MAT-4MM",
            "partner_sku": "YM-4MM",
            "category": "sports/yoga/mats",
            "regions": ["eu"],
            "default_locale": "en-US",
            "names": {"en-US": "Yoga mat 4 mm"},
            "prices": {"EUR": "36.95"},
        },
    )
    assert status in (200, 201), answer

    # One partition (one key): a good report, both poison records, another good report, from
    # acme's own producer of raw JSON (bound to acme, as a partner's producer must be).
    key = b"acme:BERLIN-1"
    PartnerRegistry().bind("acme", raw_record_source(TOPIC, json.dumps(report("X", 1)).encode()))
    produce(
        stack,
        [
            (key, json.dumps(report("BERLIN-1", 3)).encode()),
            (key, NESTED),
            (key, HUGE),
            (key, json.dumps(report("HAMBURG-1", 4)).encode()),
        ],
    )
    status, answer = call(
        port,
        "POST",
        "/v1/partners/acme/stock",
        {
            "lines": [
                {"partner_sku": "YM-4MM", "location_id": "MUNICH-1", "region": "eu", "on_hand": 5}
            ]
        },
    )
    assert status == 202, answer

    def available() -> int | None:
        status, item = call(port, "GET", "/v1/inventory/YOGA-MAT-4MM?region=eu")
        return item["available"] if status == 200 and item["available"] == 12 else None

    assert eventually(available, timeout_s=60) == 12
    letters = eventually(
        lambda: [
            d.dead_letter
            for d in DeadLetterStore(get_store(), bucket("dead-letters")).list("ingest_stock")
        ],
        timeout_s=30,
    )
    by_cut = {letter.event.data_truncated: letter for letter in letters}
    assert len(letters) == 2 and set(by_cut) == {False, True}
    assert "nested too deeply" in by_cut[False].error.message
    assert by_cut[True].event.data_size == len(HUGE)
    assert runtime.ready()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
        assert resp.status == 200
