"""ingest_stock: fold a partner's stock report into the availability view, announce the change.

Triggered by ``inventory.stock-reported`` (our CloudEvents, or Code Engine's
``dev.knative.kafka.event`` around a partner's raw JSON). Published event ids derive from the
input's (source, id), so a redelivered input re-publishes the same ids and consumers drop them.

A partner writes only its own stock: the event's source must be bound to the report's
``partner_id`` (``/partners/{p}/...`` from HTTP, ``/cos/{partner-drops}/{p}/...`` from a file drop,
or a prefix registered for ``p``'s own Kafka producers, see :mod:`shared.inventory.partners`).
Anything else is a :class:`PermanentError`, so the event is dead-lettered with both partners named.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import functions_framework.aio as ff
from cloudevents.http import CloudEvent

from events.envelope import Event, identity, new_event, parse_event
from events.inventory import StockReported
from shared.inventory import AvailabilityView, PartnerRegistry, ProductCatalog
from shared.inventory.rejections import StockRejections, rejection_of
from shared.inventory.rules import InventoryRuleViolation, check_not_ahead, normalize
from shared.platform.adapters import bucket
from shared.platform.errors import PermanentError
from shared.platform.publisher import publish_many
from shared.platform.settings import get_settings

SOURCE = "/functions/ingest_stock"
_IDS = uuid.UUID("0b9f6a3e-3c39-5d2e-9b7a-6f0e1d2c3b4a")
log = logging.getLogger("retailfn.ingest_stock")


@ff.cloud_event
def ingest_stock(cloud_event: CloudEvent) -> None:
    event = parse_event(cloud_event)
    if not isinstance(event.data, StockReported):
        raise PermanentError(f"type: ingest_stock takes stock-reported events, not {event.type}")
    report = event.data
    _check_channel(event.source, report.partner_id)
    sku = ProductCatalog().sku_for(report.partner_id, report.partner_sku)
    if sku is None:
        raise _rejected(
            event,
            report,
            (
                f"partner_sku: {report.partner_id}/{report.partner_sku} is not in the catalog; "
                "the partner must introduce the product first"
            ),
        )
    try:
        check_not_ahead(
            report.reported_at,
            datetime.now(UTC),
            timedelta(seconds=get_settings().stock_max_future_skew_s),
        )
        normalized = normalize(report)
        decision = AvailabilityView().apply(
            sku, normalized, event_id=identity(event.source, event.id)
        )
    except InventoryRuleViolation as violation:
        raise _rejected(event, report, str(violation)) from violation
    if decision.events:
        publish_many(_announce(event, sku, payload) for payload in decision.events)
    log.info(
        "stock report %s",
        decision.outcome,
        extra={
            "event_id": event.id,
            "sku": sku,
            "partner_id": report.partner_id,
            "location_id": report.location_id,
            "published": len(decision.events),
        },
    )


def _check_channel(source: str, partner_id: str) -> None:
    try:
        PartnerRegistry().check(source, partner_id, drops_bucket=bucket("partner-drops"))
    except InventoryRuleViolation as violation:
        raise PermanentError(str(violation)) from violation


def _announce(cause: Event[Any], sku: str, payload: Any) -> Event[Any]:
    event_id = uuid.uuid5(_IDS, identity(cause.source, cause.id, payload.ce_type))
    extensions = {k: v for k, v in cause.extensions.items() if k in ("traceparent", "tracestate")}
    return new_event(payload, source=SOURCE, subject=sku, id=str(event_id), extensions=extensions)


def _rejected(event: Event[Any], report: StockReported, reason: str) -> PermanentError:
    """A report refused for what it says (a partner SKU never introduced, a rule it breaks) is
    recorded for its partner (``GET /v1/partners/{partner}/rejections``); the caller raises the
    returned error, so it is dead-lettered as before. Recording is idempotent on the event, so a
    redelivery or a replay lists it once."""
    StockRejections().record(
        rejection_of(report, source=event.source, event_id=event.id, reason=reason)
    )
    return PermanentError(reason)
