"""Stock rules: normalize a partner's report, order reports, decide what changed.

Quantities leave this module in base units (``each``, ``g``, ``ml``) as whole numbers. The state of
one catalog SKU is a :class:`SkuAvailability` holding one :class:`StockLevel` per (partner,
location); :func:`decide` folds a report into it and says which events follow.
:func:`check_source_binding` says whether a report's channel (its CloudEvents source) may speak
for the partner the report names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from events.fields import Region
from events.inventory import (
    BASE_UNIT,
    BackInStock,
    BaseUnit,
    OutOfStock,
    StockChanged,
    StockReported,
)

InventoryEvent = StockChanged | OutOfStock | BackInStock
Outcome = Literal["applied", "unchanged", "duplicate", "stale", "redelivered"]


class InventoryRuleViolation(ValueError):
    """A report that breaks a stock rule; retrying it cannot help (dead-letter it)."""


def check_not_ahead(reported_at: datetime, now: datetime, max_skew: timedelta) -> None:
    """Refuse a report dated more than ``max_skew`` after ``now`` (when it was received).

    The view keeps the newest report per location, so a report from the far future would pin
    the location until that date: every real report after it would be stale."""
    if reported_at > now + max_skew:
        raise InventoryRuleViolation(
            f"reported_at: more than {max_skew.total_seconds():g} s ahead of the time the "
            "report was received; check the sending system's clock"
        )


@dataclass(frozen=True)
class NormalizedReport:
    """A stock report in base units, with the ordering facts the view compares."""

    partner_id: str
    location_id: str
    region: Region
    on_hand: int
    reserved: int
    incoming: int
    unit: BaseUnit
    reported_at: datetime
    sequence: int | None = None
    partner_sku: str | None = None


@dataclass(frozen=True)
class StockLevel:
    """What the view holds for one SKU at one (partner, location)."""

    partner_id: str
    location_id: str
    region: Region
    on_hand: int
    reserved: int
    incoming: int
    available: int
    unit: BaseUnit
    reported_at: datetime
    sequence: int | None
    applied_at: datetime
    event_id: str | None = None
    """The input event that set this level; a redelivery of it re-announces the same change."""
    previous_available: int | None = None
    """Availability before that event (None: it was the first report here)."""
    announced: bool = True
    """Whether that event changed the stock (and so produced events)."""


@dataclass(frozen=True)
class SkuAvailability:
    """Every (partner, location) level of one catalog SKU."""

    sku: str
    levels: tuple[StockLevel, ...] = ()

    def level(self, partner_id: str, location_id: str) -> StockLevel | None:
        for level in self.levels:
            if (level.partner_id, level.location_id) == (partner_id, location_id):
                return level
        return None

    def with_level(self, new: StockLevel) -> SkuAvailability:
        others = [
            lv
            for lv in self.levels
            if (lv.partner_id, lv.location_id) != (new.partner_id, new.location_id)
        ]
        ordered = sorted([*others, new], key=lambda lv: (lv.partner_id, lv.location_id))
        return replace(self, levels=tuple(ordered))

    def where(
        self,
        *,
        region: str | None = None,
        partner_id: str | None = None,
        location_id: str | None = None,
    ) -> SkuAvailability:
        """Only the levels that match every filter given."""
        kept = tuple(
            lv
            for lv in self.levels
            if (region is None or lv.region == region)
            and (partner_id is None or lv.partner_id == partner_id)
            and (location_id is None or lv.location_id == location_id)
        )
        return replace(self, levels=kept)

    @property
    def available(self) -> int:
        return sum(lv.available for lv in self.levels)

    @property
    def on_hand(self) -> int:
        return sum(lv.on_hand for lv in self.levels)

    @property
    def reserved(self) -> int:
        return sum(lv.reserved for lv in self.levels)

    @property
    def incoming(self) -> int:
        return sum(lv.incoming for lv in self.levels)

    @property
    def unit(self) -> BaseUnit | None:
        return self.levels[0].unit if self.levels else None

    @property
    def as_of(self) -> datetime | None:
        """The newest report time among the levels: how fresh the answer is."""
        return max((lv.reported_at for lv in self.levels), default=None)


@dataclass(frozen=True)
class StockDecision:
    """What a report does to a SKU's availability."""

    outcome: Outcome
    availability: SkuAvailability
    """The state to keep (unchanged for ``duplicate``, ``stale`` and ``redelivered``)."""
    events: tuple[InventoryEvent, ...] = ()

    @property
    def must_write(self) -> bool:
        return self.outcome in ("applied", "unchanged")


def available(on_hand: int, reserved: int) -> int:
    """Reservations may exceed stock (oversold); availability never goes below zero."""
    return max(on_hand - reserved, 0)


def _to_base(value: Decimal, factor: int, field: str, unit: str) -> int:
    scaled = value * factor
    if scaled != scaled.to_integral_value():
        raise InventoryRuleViolation(f"{field}: {value} {unit} is not a whole number of base units")
    return int(scaled)


def normalize(report: StockReported) -> NormalizedReport:
    """The report in base units: packs and cases times ``units_per_pack``, kg to g, l to ml.

    A fraction of a base unit (half a yoga mat, 0.5 g) is an :class:`InventoryRuleViolation`.
    """
    base, factor = BASE_UNIT[report.unit]
    if factor is None:
        if report.units_per_pack is None:  # the payload model already refuses this
            raise InventoryRuleViolation(f"units_per_pack: required for unit {report.unit!r}")
        factor = report.units_per_pack
    return NormalizedReport(
        partner_id=report.partner_id,
        partner_sku=report.partner_sku,
        location_id=report.location_id,
        region=report.region,
        on_hand=_to_base(report.on_hand, factor, "on_hand", report.unit),
        reserved=_to_base(report.reserved, factor, "reserved", report.unit),
        incoming=_to_base(report.incoming, factor, "incoming", report.unit),
        unit=base,
        reported_at=report.reported_at,
        sequence=report.sequence,
    )


def compare(report: NormalizedReport, last: StockLevel) -> Literal["newer", "same", "older"]:
    """Order a report against the last one applied at its (partner, location).

    The partner's ``sequence`` decides when both have one (clocks drift, counters do not);
    otherwise ``reported_at``. Equal is the same report again.
    """
    if report.sequence is not None and last.sequence is not None:
        mine, theirs = report.sequence, last.sequence
        if mine == theirs:
            return "same"
        return "newer" if mine > theirs else "older"
    if report.reported_at == last.reported_at:
        return "same"
    return "newer" if report.reported_at > last.reported_at else "older"


def decide(
    current: SkuAvailability,
    report: NormalizedReport,
    *,
    applied_at: datetime,
    event_id: str | None = None,
) -> StockDecision:
    """Fold ``report`` into ``current``.

    - an older report than the last applied at its (partner, location) is ``stale``: ignored;
    - the same report again (same order, same numbers) is a ``duplicate``: ignored; when it comes
      in the very event that set the level (a redelivery after a crash), it is ``redelivered``
      and re-announces that change, so the caller can publish again under the same event ids;
    - a report of the same order with other numbers is a correction and is applied;
    - a newer report with the same quantities is ``unchanged``: kept (it moves the ordering mark)
      but announces nothing;
    - otherwise ``applied``: StockChanged, plus OutOfStock when availability falls from above zero
      to zero, or BackInStock when it rises from zero. A first report is never "back" in stock.
    """
    other_units = {lv.unit for lv in current.levels} - {report.unit}
    if other_units:
        raise InventoryRuleViolation(
            f"unit: {current.sku} is counted in {other_units.pop()}, this report in {report.unit}"
        )
    last = current.level(report.partner_id, report.location_id)
    if last is not None:
        order = compare(report, last)
        if order == "older":
            return StockDecision("stale", current)
        if order == "same" and _same_numbers(report, last):
            if event_id is not None and last.event_id == event_id and last.announced:
                return StockDecision("redelivered", current, announce(current.sku, last))
            return StockDecision("duplicate", current)
        # Equal order, other numbers: a correction (a partner's file overwritten with fixed
        # figures is a new drop). Reports of one (partner, location) share a partition key, so
        # the one that arrives last is the same on every replay.

    previous = None if last is None else last.available
    level = StockLevel(
        partner_id=report.partner_id,
        location_id=report.location_id,
        region=report.region,
        on_hand=report.on_hand,
        reserved=report.reserved,
        incoming=report.incoming,
        available=available(report.on_hand, report.reserved),
        unit=report.unit,
        reported_at=report.reported_at,
        sequence=report.sequence,
        applied_at=applied_at,
        event_id=event_id,
        previous_available=previous,
    )
    if last is not None and (
        (last.on_hand, last.reserved, last.region) == (level.on_hand, level.reserved, level.region)
    ):
        # Keep the previous announcement's facts: nothing new is said about this level.
        kept = replace(level, previous_available=last.previous_available, announced=False)
        return StockDecision("unchanged", current.with_level(kept))
    return StockDecision("applied", current.with_level(level), announce(current.sku, level))


def _same_numbers(report: NormalizedReport, last: StockLevel) -> bool:
    return (report.on_hand, report.reserved, report.incoming, report.region) == (
        last.on_hand,
        last.reserved,
        last.incoming,
        last.region,
    )


def announce(sku: str, level: StockLevel) -> tuple[InventoryEvent, ...]:
    """The events that say ``level`` was set (from ``level.previous_available``)."""
    previous = level.previous_available
    events: list[InventoryEvent] = [
        StockChanged(
            sku=sku,
            location_id=level.location_id,
            partner_id=level.partner_id,
            region=level.region,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            previous_available=previous,
            unit=level.unit,
            as_of=level.reported_at,
        )
    ]
    if previous is not None and previous > 0 and level.available == 0:
        events.append(
            OutOfStock(
                sku=sku,
                location_id=level.location_id,
                partner_id=level.partner_id,
                region=level.region,
                previous_available=previous,
                as_of=level.reported_at,
            )
        )
    elif previous == 0 and level.available > 0:
        events.append(
            BackInStock(
                sku=sku,
                location_id=level.location_id,
                partner_id=level.partner_id,
                region=level.region,
                available=level.available,
                unit=level.unit,
                as_of=level.reported_at,
            )
        )
    return tuple(events)


# --- which partner a stock report's channel speaks for ------------------------------------------

HTTP_SOURCE_ROOT = "/partners/"
"""``report_stock`` publishes ``/partners/{partner}/stock`` after authenticating the partner."""
FILE_SOURCE_ROOT = "/cos/"
"""``ingest_stock_file`` publishes ``/cos/{bucket}/{key}``; the key's first folder: the partner."""
RESERVED_SOURCE_ROOTS = (HTTP_SOURCE_ROOT, FILE_SOURCE_ROOT)
"""Sources only retailfn's own functions publish; no producer may be registered under them."""


def source_covers(prefix: str, source: str) -> bool:
    """``prefix`` covers ``source``: equal, or ``source`` goes on after a ``/`` or ``#`` boundary.

    The boundary keeps ``/producers/acme`` from covering ``/producers/acme-outlet``.
    """
    if not source.startswith(prefix):
        return False
    rest = source[len(prefix) :]
    return not rest or prefix.endswith(("/", "#")) or rest[0] in "/#"


def reserved_source(prefix: str) -> bool:
    """``prefix`` lies in, or would cover, a source root that only retailfn publishes."""
    return any(
        prefix.startswith(root) or source_covers(prefix, root + "x") or prefix == root.rstrip("/")
        for root in RESERVED_SOURCE_ROOTS
    )


def source_partner(source: str, *, drops_bucket: str, registered: Mapping[str, str]) -> str | None:
    """The partner a stock report's CloudEvents ``source`` is bound to, or ``None``.

    * ``/partners/{p}`` and ``/partners/{p}/...``: the HTTP channel, bound to ``p``;
    * ``/cos/{drops_bucket}/{p}/...``: a file dropped in ``p``'s folder, bound to ``p``;
      ``/cos/`` of any other bucket, or outside a folder, is bound to nobody;
    * anything else: the partner whose registered prefix covers it (the longest such prefix).
    """
    if source.startswith(HTTP_SOURCE_ROOT):
        segments = source.split("/")
        return segments[2] or None
    if source.startswith(FILE_SOURCE_ROOT):
        segments = source.split("/")  # "", "cos", bucket, partner, ..., file
        if len(segments) >= 5 and segments[2] == drops_bucket and segments[3]:
            return segments[3]
        return None
    covering = [prefix for prefix in registered if source_covers(prefix, source)]
    return registered[max(covering, key=len)] if covering else None


def check_source_binding(
    source: str, partner_id: str, *, drops_bucket: str, registered: Mapping[str, str]
) -> None:
    """Raise :class:`InventoryRuleViolation` unless ``source`` is bound to ``partner_id``.

    A partner writes only its own stock, whichever channel it uses; see :func:`source_partner`.
    """
    owner = source_partner(source, drops_bucket=drops_bucket, registered=registered)
    if owner == partner_id:
        return
    if owner is None:
        raise InventoryRuleViolation(
            f"source: {source!r} is bound to no partner, so it may not report stock for partner "
            f"{partner_id!r}; a producer is bound with `retailfn partners bind`"
        )
    raise InventoryRuleViolation(
        f"partner_id: the report is for partner {partner_id!r}, but its source {source!r} is "
        f"bound to partner {owner!r}"
    )
