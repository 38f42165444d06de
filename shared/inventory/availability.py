"""The availability view: every partner's stock of a catalog SKU, one object per SKU.

Layout (bucket ``state``): ``availability/{sku}.json`` holds a :class:`SkuAvailability` (one level
per partner and location, in base units). Reports are folded in by :meth:`AvailabilityView.apply`
with compare-and-swap on the object's ETag, so concurrent applies to one SKU (different locations
on different partitions, or several workers) never lose each other's updates.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from events.fields import Sku
from shared.integration.objectstore.port import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from shared.inventory.pages import Page, decode_cursor, encode_cursor, scan
from shared.inventory.rules import NormalizedReport, SkuAvailability, StockDecision, decide

PREFIX = "availability/"
JSON = "application/json"

_SKU = TypeAdapter(Sku)
_DOC = TypeAdapter(SkuAvailability)


class ViewContention(Exception):
    """Compare-and-swap kept losing; transient, so the runtime retries the event later."""


def availability_key(sku: str) -> str:
    try:
        return f"{PREFIX}{_SKU.validate_python(sku)}.json"
    except ValidationError:
        raise ValueError(f"sku: {sku!r} is not a catalog SKU") from None


class AvailabilityView:
    """Read and fold stock reports into the per-SKU availability objects."""

    def __init__(
        self,
        store: ObjectStore | None = None,
        bucket: str | None = None,
        *,
        max_attempts: int = 100,
    ) -> None:
        if store is None or bucket is None:
            from shared.platform import adapters

            store = store or adapters.get_store()
            bucket = bucket or adapters.bucket("state")
        self._store = store
        self._bucket = bucket
        self._max_attempts = max_attempts

    @property
    def source(self) -> tuple[ObjectStore, str]:
        """Where the view lives: the store and bucket (for caches that must not mix views)."""
        return self._store, self._bucket

    def apply(
        self,
        sku: str,
        report: NormalizedReport,
        *,
        event_id: str | None = None,
        now: datetime | None = None,
    ) -> StockDecision:
        """Fold ``report`` into ``sku``'s availability: read, decide, write only the version read.

        A lost race re-reads and decides again on the winner's state. ``event_id`` is the input
        event's id: the same event applied twice re-announces its change (``redelivered``).
        """
        key = availability_key(sku)
        for attempt in range(self._max_attempts):
            current, etag = self._read(sku, key)
            decision = decide(
                current, report, applied_at=now or datetime.now(UTC), event_id=event_id
            )
            if not decision.must_write:
                return decision
            body = _DOC.dump_json(decision.availability)
            try:
                if etag is None:
                    self._store.put(self._bucket, key, body, content_type=JSON, if_none_match=True)
                else:
                    self._store.put(self._bucket, key, body, content_type=JSON, if_match=etag)
                return decision
            except PreconditionFailed:
                # Jittered backoff, so that writers racing for one hot SKU spread out.
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
        raise ViewContention(f"availability of {sku}: gave up after {self._max_attempts} attempts")

    def get(self, sku: str) -> SkuAvailability | None:
        """The SKU's availability, or None if no partner ever reported stock of it."""
        try:
            key = availability_key(sku)
        except ValueError:
            return None
        availability, etag = self._read(sku, key)
        return None if etag is None else availability

    def list(
        self,
        *,
        region: str | None = None,
        partner: str | None = None,
        location: str | None = None,
        skus: Iterable[str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[SkuAvailability]:
        """SKUs in order, each with only the levels that match the filters; a SKU with no
        matching level is left out."""
        filters = {"region": region, "partner_id": partner, "location_id": location}

        def narrow(availability: SkuAvailability | None) -> SkuAvailability | None:
            if availability is None:
                return None
            kept = availability.where(**filters)
            return kept if kept.levels else None

        if skus is not None:
            return self._list_skus(sorted(set(skus)), narrow, cursor, limit)

        def load(info: ObjectInfo) -> SkuAvailability | None:
            sku = info.key.removeprefix(PREFIX).removesuffix(".json")
            return narrow(self.get(sku))

        return scan(self._store, self._bucket, PREFIX, load, cursor=cursor, limit=limit)

    def _list_skus(
        self,
        skus: Sequence[str],
        narrow: Callable[[SkuAvailability | None], SkuAvailability | None],
        cursor: str | None,
        limit: int,
    ) -> Page[SkuAvailability]:
        scope = "availability:skus"
        _, after = decode_cursor(cursor, scope)
        items: list[SkuAvailability] = []
        remaining = [sku for sku in skus if after is None or sku > after]
        for position, sku in enumerate(remaining):
            item = narrow(self.get(sku))
            if item is None:
                continue
            items.append(item)
            if len(items) == limit:
                more = position < len(remaining) - 1
                return Page(items, encode_cursor(scope, None, sku) if more else None)
        return Page(items, None)

    def _read(self, sku: str, key: str) -> tuple[SkuAvailability, str | None]:
        try:
            current = self._store.get(self._bucket, key)
        except ObjectNotFound:
            return SkuAvailability(sku), None
        return _DOC.validate_json(current.body), current.info.etag
