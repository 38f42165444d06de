"""The event bus: the port, its two adapters, and the one factory that picks by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.bus.port import (
    BusError,
    BusUnavailable,
    Consumer,
    EventBus,
    Headers,
    Record,
    RecordMetadata,
    StartPosition,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = [
    "BusError",
    "BusUnavailable",
    "Consumer",
    "EventBus",
    "Headers",
    "Record",
    "RecordMetadata",
    "StartPosition",
    "TopicPartition",
    "TopicSpec",
    "UnknownTopic",
    "event_bus_from_settings",
]


def event_bus_from_settings(settings: Settings | None = None) -> EventBus:
    """The bus the settings choose: the embedded log under ``data_dir/bus``, or Kafka."""
    if settings is None:
        from shared.settings import get_settings

        settings = get_settings()
    if settings.bus == "kafka":
        from shared.bus.kafka import KafkaBus

        return KafkaBus.from_settings(settings)
    from shared.bus.embedded import EmbeddedBus

    return EmbeddedBus(settings.data_dir / "bus")
