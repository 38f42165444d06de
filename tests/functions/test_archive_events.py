"""archive_events through its entry point: Kafka Connect-style files, rewrites harmless."""

from __future__ import annotations

import gzip
import json

import pytest

from events.envelope import event_from_sample, to_kafka
from functions.archive_events.main import archive_events
from shared.integration.bus.port import Record, TopicPartition
from shared.platform.adapters import bucket, get_bus, get_store
from shared.runtime.app import provision
from shared.runtime.kafka_trigger import batch_event

HOUR_MS = 3_600_000
T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z


@pytest.fixture(autouse=True)
def _provisioned() -> None:
    provision(get_bus(), get_store())


def records(n: int, *, start: int = 0, ts=lambda i: T0 + 8 * HOUR_MS + i) -> list[Record]:  # type: ignore[no-untyped-def]
    key, value, headers = to_kafka(event_from_sample("order-completed"))
    return [
        Record("sales.order-completed", 3, start + i, key, value, tuple(headers), ts(i))
        for i in range(n)
    ]


def archived() -> dict[str, tuple[str, list[dict]]]:
    store, b = get_store(), bucket("events-archive")
    return {
        info.key: (
            info.etag,
            [
                json.loads(line)
                for line in gzip.decompress(store.get(b, info.key).body).splitlines()
            ],
        )
        for info in store.list(b, "events/")
    }


def test_a_batch_becomes_one_file_named_after_its_first_record() -> None:
    archive_events(batch_event(TopicPartition("sales.order-completed", 3), records(5, start=40)))
    files = archived()
    assert list(files) == [
        (
            "events/sales.order-completed/date=2026-11-27/hour=08/"
            "sales.order-completed+3+0000000040.ndjson.gz"
        )
    ]
    lines = files[next(iter(files))][1]
    assert [line["kafka"]["offset"] for line in lines] == [40, 41, 42, 43, 44]
    assert lines[0]["type"] == "com.retailfn.sales.order-completed.v1"
    assert lines[0]["data"]["lines"][0]["sku"]


def test_a_redelivered_batch_rewrites_the_same_object_with_the_same_etag() -> None:
    batch = batch_event(TopicPartition("sales.order-completed", 3), records(5))
    archive_events(batch)
    first = archived()
    archive_events(batch)
    assert archived() == first


def test_files_roll_when_the_record_hour_changes() -> None:
    rs = records(4, ts=lambda i: T0 + (8 if i < 2 else 9) * HOUR_MS + i)
    archive_events(batch_event(TopicPartition("sales.order-completed", 3), rs))
    assert sorted(k.split("/")[3] for k in archived()) == ["hour=08", "hour=09"]


def test_files_roll_at_the_configured_record_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.platform.settings import reset_settings

    monkeypatch.setenv("RETAILFN_ARCHIVE_MAX_RECORDS", "2")
    reset_settings()
    archive_events(batch_event(TopicPartition("sales.order-completed", 3), records(5)))
    assert sorted(k.rsplit("+", 1)[1] for k in archived()) == [
        "0000000000.ndjson.gz",
        "0000000002.ndjson.gz",
        "0000000004.ndjson.gz",
    ]


def test_a_binary_mode_record_of_deeply_nested_brackets_is_archived_with_the_rest() -> None:
    rs = records(3)
    rs[1] = rs[1]._replace(value=b"[" * 200_000)

    archive_events(batch_event(TopicPartition("sales.order-completed", 3), rs))

    [(_, lines)] = archived().values()
    assert [line["kafka"]["offset"] for line in lines] == [0, 1, 2]
    assert lines[1]["data"] == "[" * 200_000
