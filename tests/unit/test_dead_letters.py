"""Making a dead letter never fails for what the event holds: it is cut, clipped, or reduced."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from cloudevents.http import CloudEvent

from events.deadletter import MAX_DATA_CHARS, MAX_EXTENSIONS, SHORT_MAX
from events.envelope import InvalidEvent
from shared.runtime.deadletter import EVENT_MAX_BYTES, make_dead_letter, within

ORIGIN = {"topic": "inventory.stock-reported", "partition": 2, "offset": 9}


def letter(ce: CloudEvent):  # type: ignore[no-untyped-def]
    return make_dead_letter(
        "ingest_stock",
        ce,
        InvalidEvent("data: not valid JSON"),
        1,
        datetime.now(UTC),
        ORIGIN,
        retryable=False,
    )


def raw_event(data: object, **attrs: str) -> CloudEvent:
    return CloudEvent(
        {
            "type": "dev.knative.kafka.event",
            "source": "/kafka/t",
            "id": "partition:2/offset:9",
            **attrs,
        },
        data,
    )


def test_data_beyond_the_cap_is_cut_and_keeps_the_originals_size_and_digest() -> None:
    raw = bytes(range(256)) * 20_000  # 5 MB, not UTF-8

    kept = letter(raw_event(raw)).event

    assert (kept.data_encoding, kept.data_truncated, kept.data_size) == ("base64", True, len(raw))
    assert kept.data_sha256 == hashlib.sha256(raw).hexdigest()
    assert len(kept.data) <= MAX_DATA_CHARS and raw.startswith(base64.b64decode(kept.data))


def test_data_within_the_cap_is_kept_whole_without_a_digest() -> None:
    kept = letter(raw_event(b'{"on_hand": "x"}')).event

    assert (kept.data, kept.data_truncated, kept.data_size, kept.data_sha256) == (
        '{"on_hand": "x"}',
        False,
        None,
        None,
    )


def test_the_dead_letter_event_is_cut_to_fit_a_kafka_record_keeping_the_original_digest() -> None:
    raw = ('"\x01' * 1_500_000).encode()  # JSON escaping makes each control character 6 bytes
    full = letter(raw_event(raw))

    small = within(full)

    assert len(small.model_dump_json().encode()) <= EVENT_MAX_BYTES
    assert (small.event.data_truncated, small.event.data_size, small.event.data_sha256) == (
        True,
        len(raw),
        hashlib.sha256(raw).hexdigest(),
    )
    assert raw.decode().startswith(small.event.data)
    assert full.event.data == raw.decode()  # the object in the bucket keeps it whole


def test_a_dead_letter_cut_twice_keeps_the_size_and_digest_of_the_original() -> None:
    raw = b"y" * 6_000_000
    small = within(letter(raw_event(raw)))

    assert len(small.model_dump_json().encode()) <= EVENT_MAX_BYTES
    assert (small.event.data_size, small.event.data_sha256) == (
        len(raw),
        hashlib.sha256(raw).hexdigest(),
    )


def test_oversized_attributes_and_too_many_extensions_are_clipped() -> None:
    extensions = {f"x{i}": "v" * 5000 for i in range(MAX_EXTENSIONS + 20)}
    ce = raw_event(b"{}", id="i" * 100_000, source="s" * 100_000, key="k" * 100_000, **extensions)

    kept = letter(ce).event

    assert kept.id is not None and kept.id.startswith("iii") and len(kept.id) == SHORT_MAX
    assert kept.source is not None and len(kept.source) == SHORT_MAX
    assert kept.key is not None and len(kept.key) == SHORT_MAX
    assert len(kept.extensions) == MAX_EXTENSIONS
    assert all(len(value) <= SHORT_MAX for value in kept.extensions.values())
