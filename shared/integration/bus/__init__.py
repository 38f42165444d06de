"""The event bus: the port and its two adapters (the factory that picks one by settings is
:func:`shared.platform.adapters.event_bus_from_settings`)."""

from __future__ import annotations

from shared.integration.bus.port import (
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
]
