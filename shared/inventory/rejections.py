"""Stock reports that ``ingest_stock`` refused, per partner, so the partner can see them.

A refused report still goes to the dead letter (for operators and replay); this is the partner's
view of the same fact, served by ``GET /v1/partners/{partner}/rejections`` (newest first).

Layout (bucket ``state``)::

    rejections/{partner}/events/{digest}.json          the record; create-only, one per event
    rejections/{partner}/recent/{inverted ms}-{digest}.json   the same record, in listing order

``digest`` is the SHA-256 of the event's (source, id), so recording one event again (a
redelivery, a ``dlq replay``) changes nothing. ``inverted ms`` counts down with the time of the
first recording, so a plain ascending listing of ``recent/`` is newest first. The record is
written first; a crash before its listing copy is repaired by the next recording of the event.

All of it stays behind :class:`StockRejections` (the operational state moves to a database later).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from events.fields import Identifier
from events.inventory import StockReported
from shared.integration.objectstore.port import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from shared.inventory.pages import Page, scan

PREFIX = "rejections/"
JSON = "application/json"
_INVERT_FROM = 10**13 - 1  # ms since 1970 stay below this until the year 2286
_IDENTIFIER = TypeAdapter(Identifier)

Channel = Literal["http", "file", "kafka"]


class StockRejection(BaseModel):
    """One refused stock report, as its partner sees it."""

    model_config = ConfigDict(frozen=True)

    partner_id: str
    partner_sku: str
    location_id: str
    region: str
    reported_at: datetime
    channel: Channel = Field(
        description="How the report came in: `http` (POST .../stock), "
        "`file` (a drop), `kafka` (the partner's producer)."
    )
    source: str = Field(description="The CloudEvents source of the refused event.")
    event_id: str = Field(
        description="The CloudEvents id of the refused event (for HTTP, one "
        "of the `event_ids` the 202 answered)."
    )
    reason: str = Field(description="Why it was refused, naming the field.")
    rejected_at: datetime


def channel_of(source: str) -> Channel:
    """The channel a stock-reported event came in by, from its source (see ARCHITECTURE.md)."""
    if source.startswith("/partners/"):
        return "http"
    if source.startswith("/cos/"):
        return "file"
    return "kafka"


def rejection_of(
    report: StockReported, *, source: str, event_id: str, reason: str, now: datetime | None = None
) -> StockRejection:
    return StockRejection(
        partner_id=report.partner_id,
        partner_sku=report.partner_sku,
        location_id=report.location_id,
        region=report.region,
        reported_at=report.reported_at,
        channel=channel_of(source),
        source=source,
        event_id=event_id,
        reason=reason,
        rejected_at=now or datetime.now(UTC),
    )


class StockRejections:
    """Record refused stock reports per partner; list a partner's, newest first."""

    def __init__(self, store: ObjectStore | None = None, bucket: str | None = None) -> None:
        if store is None or bucket is None:
            from shared.platform import adapters

            store = store or adapters.get_store()
            bucket = bucket or adapters.bucket("state")
        self._store = store
        self._bucket = bucket

    def record(self, rejection: StockRejection) -> bool:
        """Keep ``rejection``; ``False`` if its event was recorded before (nothing changes)."""
        partner = _partner_folder(rejection.partner_id)
        digest = hashlib.sha256(
            json.dumps([rejection.source, rejection.event_id]).encode()
        ).hexdigest()[:40]
        record_key = f"{partner}events/{digest}.json"
        try:
            self._store.put(
                self._bucket,
                record_key,
                rejection.model_dump_json().encode(),
                content_type=JSON,
                if_none_match=True,
            )
            created = True
        except PreconditionFailed:
            # Recorded before: keep the first recording, and its place in the listing.
            rejection = StockRejection.model_validate_json(
                self._store.get(self._bucket, record_key).body
            )
            created = False
        listed_key = f"{partner}recent/{_inverted(rejection.rejected_at)}-{digest}.json"
        if created or not self._exists(listed_key):
            self._store.put(
                self._bucket, listed_key, rejection.model_dump_json().encode(), content_type=JSON
            )
        return created

    def list(
        self, partner_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[StockRejection]:
        """The partner's rejections, newest first; ``next_cursor`` continues the listing.
        Raises :class:`~shared.inventory.pages.InvalidCursor` for a cursor of another listing."""
        prefix = f"{_partner_folder(partner_id)}recent/"

        def load(info: ObjectInfo) -> StockRejection | None:
            try:
                return StockRejection.model_validate_json(
                    self._store.get(self._bucket, info.key).body
                )
            except ObjectNotFound:
                return None  # removed since it was listed
            except ValidationError:
                return None  # not a record this version can read: leave it out, not a 500

        return scan(self._store, self._bucket, prefix, load, cursor=cursor, limit=limit)

    def _exists(self, key: str) -> bool:
        try:
            self._store.head(self._bucket, key)
            return True
        except ObjectNotFound:
            return False


def _partner_folder(partner_id: str) -> str:
    try:
        return f"{PREFIX}{_IDENTIFIER.validate_python(partner_id)}/"
    except ValidationError:
        raise ValueError(f"partner_id: {partner_id!r} is not a partner id") from None


def _inverted(at: datetime) -> str:
    millis = int(at.timestamp() * 1000)
    return f"{_INVERT_FROM - millis:013d}"
