"""The runtime's claims in the state database, end to end: SQLite under the data folder on the
embedded stack, the session's PostgreSQL server on the real one (Tansu + moto)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from events.envelope import from_kafka
from shared.integration.objectstore.port import ObjectNotFound
from shared.integration.state.schema import claims
from shared.platform.adapters import bucket, get_bus, get_state_engine, get_store
from shared.platform.auth import dev_api_key
from shared.runtime.app import Runtime
from shared.runtime.config import load_service
from tests.e2e.conftest import E2E_CONFIG, Stack, deployed, eventually

REPO = Path(__file__).resolve().parents[2]


def claims_in(scope: str) -> int:
    """Rows of the claims table under ``scope``, read from the database itself."""
    statement = select(func.count()).select_from(claims).where(claims.c.scope == scope)
    with get_state_engine().connect() as connection:
        return int(connection.execute(statement).scalar_one())


def assert_dialect(stack: Stack) -> None:
    dialect = get_state_engine().dialect.name
    assert dialect == ("postgresql" if stack.kind == "real" else "sqlite")


def post(port: int, path: str, body: Any, headers: dict[str, str]) -> tuple[int, dict, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        headers = {k.lower(): v for k, v in error.headers.items()}
        return error.code, headers, json.loads(error.read())


@pytest.fixture
def http_runtime(stack: Stack) -> Iterator[Runtime]:
    service = deployed(load_service(REPO / "serverless.yaml", stage="local"))
    rt = Runtime(service, port=0, provision=False, run_events=False, functions=["report_stock"])
    rt.start()
    assert rt.wait_ready(60)
    yield rt
    rt.stop()


def test_one_idempotency_key_sent_twice_publishes_once_and_the_second_is_a_replay(
    stack: Stack, http_runtime: Runtime
) -> None:
    report = {
        "partner_sku": "YM-4MM",
        "location_id": "BERLIN-1",
        "region": "eu",
        "on_hand": 12,
        "reserved": 0,
    }
    headers = {"X-API-Key": dev_api_key("acme"), "Idempotency-Key": "e2e-twice-1"}

    first = post(http_runtime.port, "/v1/partners/acme/stock", report, headers)
    again = post(http_runtime.port, "/v1/partners/acme/stock", report, headers)

    assert first[0] == 202, first
    assert "idempotent-replayed" not in first[1]
    assert (again[0], again[1].get("idempotent-replayed"), again[2]) == (202, "true", first[2])
    published = [
        from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
        for r in get_bus().read_all("inventory.stock-reported")
    ]
    assert [e.id for e in published] == first[2]["event_ids"]
    assert_dialect(stack)
    assert claims_in("http/report_stock/acme") == 1


def effects(name: str) -> list[dict[str, Any]]:
    try:
        return json.loads(get_store().get(bucket("state"), f"effects/{name}.json").body)
    except ObjectNotFound:
        return []


def watcher(service: Any) -> Runtime:
    rt = Runtime(service, port=0, provision=False, serve_http=False, functions=["record_object"])
    rt.start()
    assert rt.wait_ready(60)
    return rt


def test_an_object_event_delivered_twice_is_handled_once_by_its_claim(stack: Stack) -> None:
    service = deployed(load_service(E2E_CONFIG, stage="local"))
    drops, state = bucket("partner-drops"), bucket("state")
    first = watcher(service)
    try:
        get_store().put(drops, "drops/acme/once.csv", b"sku,qty\nA,1\n")
        eventually(lambda: effects("record_object"))
    finally:
        first.stop()
    # The watcher's last listing is lost (a new runtime on an empty state bucket, say): the
    # next one sees the object as new and delivers it again; only its claim stops the effect.
    for info in list(get_store().list(state, "runtime/cos-snapshots/")):
        get_store().delete(state, info.key)

    second = watcher(service)
    try:
        get_store().put(drops, "drops/acme/after.csv", b"sku,qty\nB,2\n")
        seen = eventually(lambda: len(effects("record_object")) >= 2 and effects("record_object"))
    finally:
        second.stop()

    assert sorted(e["key"] for e in seen) == ["drops/acme/after.csv", "drops/acme/once.csv"]
    assert_dialect(stack)
    assert claims_in("cos/record_object") == 2
