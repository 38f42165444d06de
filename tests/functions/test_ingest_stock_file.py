"""ingest_stock_file through its entry point, on the embedded bus and folder store."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import functions.ingest_stock_file.main as fn
from events.envelope import event_from_sample, from_kafka
from functions.ingest_stock_file.main import ingest_stock_file
from shared.integration.objectstore.port import ObjectInfo
from shared.inventory import ProductCatalog
from shared.inventory.drops import FileVersion, event_id
from shared.inventory.stockfile import COLUMNS
from shared.platform.adapters import bucket, get_bus, get_claim_store, get_store
from shared.platform.settings import get_settings
from shared.runtime.app import provision
from shared.runtime.config import CosTrigger, Delivery
from shared.runtime.cos_trigger import CosSubscription, CosWatcher, cos_event
from shared.runtime.invoker import Invoker
from shared.runtime.loader import LoadedFunction

TOPIC = "inventory.stock-reported"
KEY = "acme/2026-11-27/stock.csv"
HEADER = ",".join(COLUMNS)


SKUS = [f"SKU-{i}" for i in range(12)]
INTRODUCED = [*SKUS, "YM-1"]
"""The partner SKUs acme introduced; a line of any other is a bad line of the report."""


@pytest.fixture(autouse=True)
def _provisioned() -> None:
    provision(get_bus(), get_store())
    sample = event_from_sample("product-introduced").data
    catalog = ProductCatalog()
    for partner_sku in INTRODUCED:
        catalog.put(
            sample.model_copy(update={"sku": f"ACME-{partner_sku}", "partner_sku": partner_sku})
        )


def row(i: int, on_hand: int | str = 5) -> str:
    return f"SKU-{i % len(SKUS)},LOC-{i % 3},eu,{on_hand},0,0,each,,2026-11-27T10:00:00Z,{i}"


def drop(text: str, key: str = KEY) -> ObjectInfo:
    return get_store().put(bucket("partner-drops"), key, text.encode(), content_type="text/csv")


def trigger(info: ObjectInfo, operation: str = "write") -> None:
    event = cos_event(
        info.bucket,
        info.key,
        operation,
        info.etag,  # type: ignore[arg-type]
        info.size,
        "text/csv",
    )
    ingest_stock_file(event)


def published() -> list[Any]:
    return [
        from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
        for r in get_bus().read_all(TOPIC)
    ]


def report(key: str = KEY) -> dict[str, Any]:
    return json.loads(get_store().get(bucket("partner-drops"), key + ".report.json").body)


def good_file(lines: int) -> str:
    return "\n".join([HEADER, *(row(i) for i in range(lines))]) + "\n"


def test_every_good_line_is_published_with_its_payload_and_partner_key() -> None:
    info = drop("\n".join([HEADER, row(1, on_hand=7), row(2, on_hand=-1), row(3)]) + "\n")
    trigger(info)
    events = sorted(published(), key=lambda e: e.data.sequence)
    assert [e.data.partner_sku for e in events] == ["SKU-1", "SKU-3"]
    first = events[0]
    assert first.data.partner_id == "acme" and str(first.data.on_hand) == "7"
    assert first.partitionkey == "acme:LOC-1"
    assert first.source == f"/cos/partner-drops/{KEY}"
    assert first.subject == "line/2"
    assert first.id == event_id(FileVersion("partner-drops", KEY, info.etag), 2)


def test_the_report_beside_the_drop_lists_the_bad_lines() -> None:
    info = drop("\n".join([HEADER, row(1), row(2, on_hand=-1), row(3, on_hand="")]) + "\n")
    trigger(info)
    doc = report()
    assert {
        k: doc[k]
        for k in (
            "key",
            "etag",
            "lines_total",
            "lines_published",
            "lines_rejected",
            "truncated",
            "status",
        )
    } == {
        "key": KEY,
        "etag": info.etag,
        "lines_total": 3,
        "lines_published": 1,
        "lines_rejected": 2,
        "truncated": False,
        "status": "ingested",
    }
    assert doc["rejected"] == [
        {"line": 3, "reason": "on_hand: Input should be greater than or equal to 0"},
        {"line": 4, "reason": "on_hand: Field required"},
    ]
    head = get_store().head(bucket("partner-drops"), KEY + ".report.json")
    assert head.content_type == "application/json"


def test_a_line_of_a_partner_sku_never_introduced_is_a_bad_line_not_published() -> None:
    trigger(
        drop(
            "\n".join([HEADER, row(1), "NEVER-SEEN" + row(2).removeprefix("SKU-2"), row(3)]) + "\n"
        )
    )

    assert sorted(e.data.partner_sku for e in published()) == ["SKU-1", "SKU-3"]
    doc = report()
    assert (doc["lines_published"], doc["lines_rejected"]) == (2, 1)
    assert doc["rejected"] == [
        {
            "line": 3,
            "reason": (
                "partner_sku: 'NEVER-SEEN' is not in the catalog for partner 'acme'; introduce the "
                "product first (POST /v1/partners/acme/products), then drop the line again"
            ),
        }
    ]


def test_a_line_dated_beyond_the_clock_skew_is_a_bad_line_not_published() -> None:
    ahead = (datetime.now(UTC) + timedelta(days=400)).isoformat().replace("+00:00", "Z")
    trigger(
        drop(
            "\n".join([HEADER, row(1), row(2).replace("2026-11-27T10:00:00Z", ahead), row(3)])
            + "\n"
        )
    )

    assert sorted(e.data.partner_sku for e in published()) == ["SKU-1", "SKU-3"]
    doc = report()
    assert (doc["lines_published"], doc["lines_rejected"]) == (2, 1)
    assert doc["rejected"] == [
        {
            "line": 3,
            "reason": (
                "reported_at: more than 300 s ahead of the time the report was received; check the "
                "sending system's clock"
            ),
        }
    ]


def test_the_catalog_is_asked_once_per_distinct_partner_sku_of_a_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    real = ProductCatalog.sku_for

    def counting(self: ProductCatalog, partner_id: str, partner_sku: str) -> str | None:
        asked.append(partner_sku)
        return real(self, partner_id, partner_sku)

    monkeypatch.setattr(ProductCatalog, "sku_for", counting)
    trigger(drop(good_file(500)))

    assert len(published()) == 500
    assert sorted(asked) == sorted(SKUS)


def test_a_file_with_an_unknown_column_publishes_nothing_and_reports_why() -> None:
    trigger(drop(HEADER + ",colour\n" + row(1) + ",red\n"))
    assert published() == []
    doc = report()
    assert doc["status"] == "failed" and "'colour'" in doc["error"]


def test_a_second_trigger_for_the_same_version_publishes_nothing_more() -> None:
    info = drop(good_file(10))
    trigger(info)
    trigger(info)
    assert len(published()) == 10


def test_its_own_report_and_deletes_are_ignored() -> None:
    info = drop(good_file(2))
    trigger(info)
    report_info = get_store().head(bucket("partner-drops"), KEY + ".report.json")
    trigger(report_info)
    trigger(info, "delete")
    assert len(published()) == 2


def test_a_crash_before_a_chunk_is_published_resumes_and_publishes_each_line_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a 2,500-line file, and a bus that fails on the second chunk of 1,000
    info = drop(good_file(2500))
    real, calls = fn.publish_many, []

    def failing(events: list[Any]) -> object:
        calls.append(len(events))
        if len(calls) == 2:
            raise ConnectionError("bus went away")
        return real(events)

    monkeypatch.setattr(fn, "publish_many", failing)
    with pytest.raises(ConnectionError):
        trigger(info)
    assert len(published()) == 1000
    # When the runtime retries the event
    monkeypatch.setattr(fn, "publish_many", real)
    trigger(info)
    # Then every line is on the topic exactly once
    ids = Counter(e.id for e in published())
    version = FileVersion("partner-drops", KEY, info.etag)
    assert set(ids) == {event_id(version, line) for line in range(2, 2502)}
    assert set(ids.values()) == {1}
    assert report()["lines_published"] == 2500


def test_a_crash_between_publish_and_checkpoint_repeats_only_that_chunk_with_the_same_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a file whose second chunk reaches the bus but whose checkpoint write fails
    info = drop(good_file(2500))
    store = get_store()
    real_put, progress_writes = store.put, []

    def failing_put(b: str, key: str, *args: Any, **kw: Any) -> ObjectInfo:
        if key.startswith("ingest/stock-files/"):
            progress_writes.append(key)
            if len(progress_writes) == 3:  # begin, chunk 1, chunk 2 <- fails
                raise OSError("disk full")
        return real_put(b, key, *args, **kw)

    monkeypatch.setattr(store, "put", failing_put)
    with pytest.raises(OSError):
        trigger(info)
    monkeypatch.setattr(store, "put", real_put)
    trigger(info)
    # Then every line is there; the only repeats are the un-checkpointed chunk, under its ids
    events = published()
    ids = Counter(e.id for e in events)
    assert len(ids) == 2500
    repeated = sorted(int(e.subject.split("/")[1]) for e in events if ids[e.id] == 2)
    assert sorted(set(repeated)) == list(range(1002, 2002))
    assert len(events) == 3500


def test_an_event_for_an_overwritten_version_is_skipped() -> None:
    old = drop(good_file(3))
    new = drop(good_file(5))
    trigger(old)
    assert published() == []
    trigger(new)
    assert len(published()) == 5
    assert report()["etag"] == new.etag


def test_a_file_outside_a_partner_folder_is_reported_not_published() -> None:
    info = drop(good_file(2), key="stock.csv")
    trigger(info)
    assert published() == []
    assert "partner's folder" in report("stock.csv")["error"]


def test_ndjson_drops_are_ingested_too() -> None:
    line = {
        "partner_sku": "YM-1",
        "location_id": "LOC-1",
        "region": "na",
        "on_hand": 1,
        "reported_at": "2026-11-27T10:00:00Z",
    }
    trigger(drop(json.dumps(line) + "\n", key="acme/stock.ndjson"))
    [event] = published()
    assert event.data.region == "na"


def test_an_ndjson_line_of_nested_brackets_is_one_bad_line_in_the_report() -> None:
    line = json.dumps(
        {
            "partner_sku": "YM-1",
            "location_id": "LOC-1",
            "region": "na",
            "on_hand": 1,
            "reported_at": "2026-11-27T10:00:00Z",
        }
    )
    trigger(drop("\n".join([line, '{"a":' + "[" * 60_000, line]) + "\n", key="acme/stock.ndjson"))

    assert [e.subject for e in published()] == ["line/1", "line/3"]
    doc = report("acme/stock.ndjson")
    assert (doc["status"], doc["lines_published"], doc["rejected"]) == (
        "ingested",
        2,
        [{"line": 2, "reason": "line: not valid JSON (nested too deeply)"}],
    )


def test_a_run_whose_file_another_run_took_over_stops_and_leaves_it_to_that_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a run that is overtaken (a second delivery of the same event) after its first chunk
    info = drop(good_file(2500))
    real, calls = fn.publish_many, []

    def overtaken(events: list[Any]) -> object:
        calls.append(len(events))
        if len(calls) == 2:
            monkeypatch.setattr(fn, "publish_many", real)
            trigger(info)  # the second run resumes after chunk 1 and finishes the file
        return real(events)

    monkeypatch.setattr(fn, "publish_many", overtaken)
    trigger(info)  # then this run's next checkpoint loses, and it stops without an error
    ids = Counter(e.id for e in published())
    assert len(ids) == 2500
    assert sum(ids.values()) == 3500  # only chunk 2, published by both, is there twice
    assert report()["lines_published"] == 2500


# --- under the runtime's watcher: a drop is ingested when complete, each version once -------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    from shared.runtime import cos_trigger

    clock = Clock()
    monkeypatch.setattr(cos_trigger, "_monotonic", clock, raising=False)
    return clock


@pytest.fixture
def watcher() -> CosWatcher:
    function = LoadedFunction(
        "ingest_stock_file",
        "functions.ingest_stock_file.main:ingest_stock_file",
        ingest_stock_file,
        "cloudevent",
        False,
    )
    stop = threading.Event()
    invoker = Invoker(function, Delivery(), "cos", lambda *_: None, stop)
    return CosWatcher(
        bucket=bucket("partner-drops"),
        store=get_store(),
        stop=stop,
        subscriptions=[
            CosSubscription(
                "ingest_stock_file",
                CosTrigger(bucket="partner-drops", rules=[{"suffix": ".csv"}]),
                invoker,
            )
        ],
        claims=get_claim_store(),
        state_bucket=bucket("state"),
    )


def scans(
    watcher: CosWatcher, clock: Clock, count: int, snapshot: dict[str, str], every_s: float = 0.5
) -> dict[str, str]:
    for _ in range(count):
        snapshot = watcher.scan(snapshot)
        clock.now += every_s
    return snapshot


def test_a_csv_written_in_two_steps_is_ingested_once_complete_with_every_line(
    watcher: CosWatcher, clock: Clock
) -> None:
    # on_hand last, so that the first write ends inside the 12th line's number: "...,1" of 12
    rows = [f"SKU-{i},LOC-{i},eu,2026-11-27T10:00:00Z,{i + 1}" for i in range(12)]
    text = "partner_sku,location_id,region,reported_at,on_hand\n" + "\n".join(rows) + "\n"
    path = Path(get_settings().data_dir) / "objects" / bucket("partner-drops") / KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as operator:  # as `cp` or an editor would write it
        operator.write(text[:-2])
        operator.flush()
        snapshot = scans(watcher, clock, 2, {})  # two listings, half a second apart
        operator.write(text[-2:])
    scans(watcher, clock, 4, snapshot)

    complete = get_store().head(bucket("partner-drops"), KEY)
    events = published()
    assert sorted(int(e.data.on_hand) for e in events) == list(range(1, 13))
    assert {e.id for e in events} == {
        event_id(FileVersion(bucket("partner-drops"), KEY, complete.etag), line)
        for line in range(2, 14)
    }
    assert report()["etag"] == complete.etag


def test_an_overwritten_drop_with_a_new_etag_is_ingested_again(
    watcher: CosWatcher, clock: Clock
) -> None:
    first = drop(good_file(3))
    snapshot = scans(watcher, clock, 4, {})
    second = drop(good_file(3).replace(",eu,5,", ",eu,7,"))
    scans(watcher, clock, 4, snapshot)

    versions = Counter(
        (
            e.source,
            e.id
            in {event_id(FileVersion(first.bucket, KEY, first.etag), line) for line in range(2, 5)},
        )
        for e in published()
    )
    assert versions == {
        (f"/cos/partner-drops/{KEY}", True): 3,
        (f"/cos/partner-drops/{KEY}", False): 3,
    }
    assert sorted(int(e.data.on_hand) for e in published()) == [5, 5, 5, 7, 7, 7]
    assert report()["etag"] == second.etag
