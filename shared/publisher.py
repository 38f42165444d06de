"""Publish typed events to their topics, in CloudEvents binary mode."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from events.catalog import topic_for_type
from events.envelope import Event, to_kafka
from shared.adapters import get_bus
from shared.bus.port import RecordMetadata


def publish(event: Event[Any], *, topic: str | None = None) -> RecordMetadata:
    """Append one event to its primary topic (or ``topic``); durable when this returns."""
    key, value, headers = to_kafka(event)
    return get_bus().publish(topic or topic_for_type(event.type), value, key=key, headers=headers)


def publish_many(events: Iterable[Event[Any]], *, topic: str | None = None) -> list[RecordMetadata]:
    """Append many events, grouped by topic, keeping their order within each topic."""
    by_topic: dict[str, list[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]]] = {}
    for event in events:
        key, value, headers = to_kafka(event)
        by_topic.setdefault(topic or topic_for_type(event.type), []).append((key, value, headers))
    out: list[RecordMetadata] = []
    bus = get_bus()
    for name, records in by_topic.items():
        out.extend(bus.publish_many(name, records))
    return out
