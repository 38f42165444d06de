"""retailfn's event contracts: CloudEvents types, payload models, topics, samples, envelopes.

This package imports nothing from ``shared``: the common layer depends on the contracts, never
the other way round.
"""

from __future__ import annotations

from events.catalog import BUCKETS, TOPICS, BucketDef, TopicDef, topic_for_type, types_on_topic
from events.envelope import (
    Event,
    InvalidEvent,
    Origin,
    event_from_sample,
    from_cloudevent,
    from_http,
    from_kafka,
    new_event,
    parse_event,
    to_http,
    to_kafka,
)
from events.registry import EVENT_TYPES, payload_model

__all__ = [
    "BUCKETS",
    "EVENT_TYPES",
    "TOPICS",
    "BucketDef",
    "Event",
    "InvalidEvent",
    "Origin",
    "TopicDef",
    "event_from_sample",
    "from_cloudevent",
    "from_http",
    "from_kafka",
    "new_event",
    "parse_event",
    "payload_model",
    "to_http",
    "to_kafka",
    "topic_for_type",
    "types_on_topic",
]
