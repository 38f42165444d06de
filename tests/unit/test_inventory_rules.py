from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from events.inventory import BackInStock, OutOfStock, StockChanged, StockReported
from shared.inventory.rules import (
    InventoryRuleViolation,
    NormalizedReport,
    SkuAvailability,
    check_not_ahead,
    decide,
    normalize,
    reserved_source,
    source_partner,
)

T0 = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def reported(**fields: Any) -> StockReported:
    base: dict[str, Any] = {
        "partner_id": "acme",
        "partner_sku": "YM-4MM",
        "location_id": "DC-1",
        "region": "eu",
        "on_hand": Decimal(10),
        "reported_at": T0,
    }
    return StockReported(**{**base, **fields})


def report(
    on_hand: int = 10,
    reserved: int = 0,
    *,
    at: datetime = T0,
    seq: int | None = None,
    location: str = "DC-1",
) -> NormalizedReport:
    return NormalizedReport(
        partner_id="acme",
        location_id=location,
        region="eu",
        on_hand=on_hand,
        reserved=reserved,
        incoming=0,
        unit="each",
        reported_at=at,
        sequence=seq,
    )


def state(*reports: NormalizedReport) -> SkuAvailability:
    current = SkuAvailability("YOGA-MAT")
    for item in reports:
        current = decide(current, item, applied_at=NOW).availability
    return current


def test_packs_are_normalized_to_each_times_units_per_pack() -> None:
    normalized = normalize(
        reported(on_hand=Decimal(3), reserved=Decimal(1), unit="pack", units_per_pack=12)
    )

    assert (normalized.on_hand, normalized.reserved, normalized.unit) == (36, 12, "each")


def test_kilograms_are_normalized_to_grams() -> None:
    normalized = normalize(reported(on_hand=Decimal("2.5"), unit="kg"))

    assert (normalized.on_hand, normalized.unit) == (2500, "g")


def test_a_fraction_of_an_each_is_a_rule_violation() -> None:
    with pytest.raises(InventoryRuleViolation, match="on_hand"):
        normalize(reported(on_hand=Decimal("2.5")))


def test_a_report_with_a_lower_sequence_is_ignored_even_if_its_clock_is_later() -> None:
    current = state(report(10, seq=5))

    decision = decide(current, report(3, seq=4, at=T0 + timedelta(hours=1)), applied_at=NOW)

    assert decision.outcome == "stale"
    assert decision.events == ()
    assert decision.availability.available == 10


def test_a_report_older_by_timestamp_is_ignored_without_sequences() -> None:
    current = state(report(10, at=T0))

    decision = decide(current, report(3, at=T0 - timedelta(minutes=1)), applied_at=NOW)

    assert decision.outcome == "stale"
    assert decision.availability.available == 10


def test_the_same_report_again_is_a_duplicate_and_changes_nothing() -> None:
    current = state(report(10, seq=5))

    decision = decide(current, report(10, seq=5), applied_at=NOW)

    assert decision.outcome == "duplicate"
    assert not decision.must_write and decision.events == ()


def test_a_report_of_the_same_order_with_other_numbers_is_a_correction_and_applied() -> None:
    current = state(report(1, seq=5))  # e.g. from a half-written file: "1" of "12"

    decision = decide(current, report(12, seq=5), applied_at=NOW)

    assert decision.outcome == "applied"
    assert decision.availability.available == 12
    [changed] = decision.events
    assert (changed.available, changed.previous_available) == (12, 1)


def test_a_first_report_announces_a_change_without_previous_availability() -> None:
    decision = decide(SkuAvailability("YOGA-MAT"), report(10, 2), applied_at=NOW)

    assert decision.outcome == "applied"
    [changed] = decision.events
    assert isinstance(changed, StockChanged)
    assert (changed.available, changed.previous_available) == (8, None)


def test_a_first_report_with_stock_is_not_back_in_stock() -> None:
    decision = decide(SkuAvailability("YOGA-MAT"), report(10), applied_at=NOW)

    assert not any(isinstance(e, BackInStock) for e in decision.events)


def test_availability_falling_to_zero_announces_out_of_stock() -> None:
    current = state(report(10, seq=1))

    decision = decide(current, report(0, seq=2), applied_at=NOW)

    changed, out = decision.events
    assert isinstance(changed, StockChanged) and isinstance(out, OutOfStock)
    assert out.previous_available == 10


def test_availability_rising_from_zero_announces_back_in_stock() -> None:
    current = state(report(10, seq=1), report(0, seq=2))

    decision = decide(current, report(4, seq=3), applied_at=NOW)

    changed, back = decision.events
    assert isinstance(back, BackInStock)
    assert (back.available, changed.previous_available) == (4, 0)


def test_reservations_above_stock_leave_availability_at_zero() -> None:
    decision = decide(SkuAvailability("YOGA-MAT"), report(5, 8), applied_at=NOW)

    assert decision.availability.available == 0
    [changed] = decision.events
    assert (changed.on_hand, changed.reserved, changed.available) == (5, 8, 0)


def test_a_newer_report_with_the_same_numbers_is_kept_but_announces_nothing() -> None:
    current = state(report(10, seq=1))

    decision = decide(current, report(10, seq=2), applied_at=NOW)

    assert decision.outcome == "unchanged"
    assert decision.must_write and decision.events == ()
    assert decision.availability.level("acme", "DC-1").sequence == 2


def test_the_event_that_set_a_level_redelivered_announces_the_same_change_again() -> None:
    first = decide(SkuAvailability("YOGA-MAT"), report(10, seq=1), applied_at=NOW, event_id="e1")

    again = decide(first.availability, report(10, seq=1), applied_at=NOW, event_id="e1")

    assert again.outcome == "redelivered"
    assert not again.must_write
    assert again.events == first.events


def test_levels_at_other_locations_are_kept_apart() -> None:
    current = state(report(10, location="DC-1"), report(5, location="DC-2"))

    assert current.available == 15
    assert [lv.location_id for lv in current.levels] == ["DC-1", "DC-2"]


def test_a_report_in_another_base_unit_than_the_sku_is_a_rule_violation() -> None:
    current = state(report(10))

    with pytest.raises(InventoryRuleViolation, match="unit"):
        decide(current, replace(report(500, location="DC-2"), unit="g"), applied_at=NOW)


def test_a_report_dated_beyond_the_clock_skew_is_a_rule_violation() -> None:
    with pytest.raises(InventoryRuleViolation, match="reported_at: more than 300 s ahead"):
        check_not_ahead(NOW + timedelta(seconds=301), NOW, timedelta(seconds=300))


def test_a_report_dated_within_the_clock_skew_is_allowed() -> None:
    check_not_ahead(NOW + timedelta(seconds=300), NOW, timedelta(seconds=300))


# --- channel bindings


def owner(source: str, registered: dict[str, str] | None = None) -> str | None:
    return source_partner(source, drops_bucket="partner-drops", registered=registered or {})


@pytest.mark.parametrize(
    ("source", "partner"),
    [
        ("/partners/acme/stock", "acme"),
        ("/partners/acme", "acme"),
        ("/partners/", None),
        ("/cos/partner-drops/globex/2026-11-27/stock.csv", "globex"),
        ("/cos/partner-drops/stock.csv", None),  # not in a partner's folder
        ("/cos/state/globex/stock.csv", None),  # not the drops bucket
        ("kafka://inventory.stock-reported", None),
    ],
)
def test_retailfns_own_channels_are_bound_by_their_path(source: str, partner: str | None) -> None:
    assert owner(source) == partner


def test_a_registered_prefix_covers_its_sources_only_past_a_boundary() -> None:
    registered = {"/producers/acme": "acme", "/producers/acme/eu": "acme-eu"}

    assert owner("/producers/acme", registered) == "acme"
    assert owner("/producers/acme/pos-1", registered) == "acme"
    assert owner("/producers/acme/eu/pos-1", registered) == "acme-eu"  # the longest prefix
    assert owner("/producers/acme-outlet/pos-1", registered) is None


def test_a_registered_prefix_cannot_claim_retailfns_own_channels() -> None:
    registered = {"/partners/globex": "acme", "/cos/partner-drops/globex/": "acme"}

    assert owner("/partners/globex/stock", registered) == "globex"
    assert owner("/cos/partner-drops/globex/a/stock.csv", registered) == "globex"


@pytest.mark.parametrize("prefix", ["/", "/partners", "/partners/", "/partners/acme", "/cos/x"])
def test_prefixes_under_or_over_retailfns_own_channels_are_reserved(prefix: str) -> None:
    assert reserved_source(prefix)


def test_an_ordinary_producer_prefix_is_not_reserved() -> None:
    assert not reserved_source("/producers/acme") and not reserved_source("/part")
