"""archive_events: every topic, batch by batch, into the event archive in object storage."""

from __future__ import annotations

import logging

import functions_framework.aio as ff
from cloudevents.http import CloudEvent

from events.platform import KafkaBatch
from shared.platform import archive
from shared.platform.adapters import bucket, get_store
from shared.platform.settings import get_settings

log = logging.getLogger("retailfn.archive_events")


@ff.cloud_event
def archive_events(cloud_event: CloudEvent) -> None:
    batch = KafkaBatch.model_validate(cloud_event.get_data())
    store, target = get_store(), bucket("events-archive")
    for segment in archive.segments(batch, get_settings().archive_max_records):
        info = store.put(
            target,
            segment.key,
            archive.encode(batch.topic, batch.partition, segment.records),
            content_type=archive.CONTENT_TYPE,
        )
        log.info(
            "archived",
            extra={
                "event_id": cloud_event["id"],
                "key": segment.key,
                "records": len(segment.records),
                "etag": info.etag,
            },
        )
