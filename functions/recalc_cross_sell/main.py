"""recalc_cross_sell: each new order archive object folds its baskets into the cross-sell model."""

from __future__ import annotations

import logging

import functions_framework.aio as ff
from cloudevents.http import CloudEvent

from events.envelope import parse_event
from shared.crosssell import CrossSellStore, is_order_archive

log = logging.getLogger("retailfn.recalc_cross_sell")
KEEP_VERSIONS = 3
"""Versions kept behind the current one, for readers still holding an older pointer."""


@ff.cloud_event
def recalc_cross_sell(cloud_event: CloudEvent) -> None:
    change = parse_event(cloud_event).data
    if change.operation == "delete" or not is_order_archive(change.key):
        log.info(
            "ignored",
            extra={"event_id": cloud_event["id"], "key": change.key, "operation": change.operation},
        )
        return
    models = CrossSellStore()
    outcome = models.fold_archive_object(change.bucket, change.key, change.etag)
    pruned = models.prune(keep=KEEP_VERSIONS) if outcome == "folded" else []
    log.info(
        outcome,
        extra={
            "event_id": cloud_event["id"],
            "key": change.key,
            "etag": change.etag,
            "versions_pruned": len(pruned),
        },
    )
