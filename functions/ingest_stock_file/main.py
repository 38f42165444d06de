"""ingest_stock_file: a partner dropped a stock file; each good line becomes a stock-reported event.

Triggered by writes to the ``partner-drops`` bucket (``{partner}/.../stock.csv``). The work is in
:mod:`shared.inventory.drops`: stream the file, publish in chunks with checkpoints, write the report.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import functions_framework.aio as ff
from cloudevents.http import CloudEvent

from events.envelope import parse_event
from shared.inventory.drops import ingest_stock_drop
from shared.platform.adapters import bucket, get_store
from shared.platform.publisher import publish_many
from shared.platform.settings import get_settings

log = logging.getLogger("retailfn.ingest_stock_file")


@ff.cloud_event
def ingest_stock_file(cloud_event: CloudEvent) -> None:
    event = parse_event(cloud_event)
    skew = timedelta(seconds=get_settings().stock_max_future_skew_s)
    outcome = ingest_stock_drop(
        event.data,
        store=get_store(),
        state_bucket=bucket("state"),
        publish=publish_many,
        max_future_skew=skew,
    )
    log.info(
        "stock file %s",
        outcome.status,
        extra={"event_id": event.id, "key": event.data.key, **outcome.log_fields()},
    )
