"""Payload constraints: each rejection names the field that broke it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from events.deadletter import DeadLetter
from events.inventory import ProductIntroduced, StockChanged, StockReported
from events.loyalty import CampaignCreated, CouponIssued
from events.registry import EVENT_TYPES
from events.sales import OrderCompleted
from events.samples import load_sample


def data_of(name: str) -> dict[str, Any]:
    return load_sample(name)["data"]


def error_locs(error: ValidationError) -> list[str]:
    return [".".join(str(part) for part in item["loc"]) for item in error.errors()]


def test_negative_on_hand_is_rejected_naming_the_field() -> None:
    data = data_of("stock-reported") | {"on_hand": -1}

    with pytest.raises(ValidationError) as caught:
        StockReported.model_validate(data)

    assert error_locs(caught.value) == ["on_hand"]


def test_naive_timestamp_is_rejected() -> None:
    data = data_of("stock-reported") | {"reported_at": "2026-11-27T08:00:00"}

    with pytest.raises(ValidationError) as caught:
        StockReported.model_validate(data)

    assert error_locs(caught.value) == ["reported_at"]
    assert "timezone" in str(caught.value)


def test_timestamps_are_normalized_to_utc() -> None:
    data = data_of("stock-reported") | {"reported_at": "2026-11-27T09:00:00+01:00"}

    reported = StockReported.model_validate(data)

    assert reported.reported_at == datetime(2026, 11, 27, 8, tzinfo=UTC)
    assert reported.reported_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_timestamp_outside_the_years_of_utc_is_a_validation_error_naming_the_field(
    timestamp: str,
) -> None:
    data = data_of("stock-reported") | {"reported_at": timestamp}

    with pytest.raises(ValidationError) as caught:  # not an OverflowError
        StockReported.model_validate(data)

    assert error_locs(caught.value) == ["reported_at"]
    assert "UTC" in str(caught.value)


@pytest.mark.parametrize("currency", ["usd", "XYZ", "US", "BGN", "XAU", "XXX"])
def test_currency_outside_active_iso_4217_tender_is_rejected(currency: str) -> None:
    data = data_of("order-completed") | {"currency": currency}

    with pytest.raises(ValidationError) as caught:
        OrderCompleted.model_validate(data)

    assert error_locs(caught.value) == ["currency"]


@pytest.mark.parametrize("country", ["UK", "us", "USA", "XX", "EU"])
def test_country_outside_iso_3166_is_rejected(country: str) -> None:
    data = data_of("order-completed") | {"country": country}

    with pytest.raises(ValidationError) as caught:
        OrderCompleted.model_validate(data)

    assert error_locs(caught.value) == ["country"]


@pytest.mark.parametrize(
    "locale", ["en", "en-US", "de-DE", "zh-CN", "ja-JP", "zh-Hant-TW", "es-419"]
)
def test_bcp47_locales_are_accepted(locale: str) -> None:
    data = data_of("product-introduced")
    data |= {"default_locale": locale, "names": {locale: "Yoga mat"}, "descriptions": {}}

    assert ProductIntroduced.model_validate(data).default_locale == locale


@pytest.mark.parametrize("locale", ["en_US", "EN-us", "english", "en-XX", "e"])
def test_malformed_locale_is_rejected(locale: str) -> None:
    data = data_of("product-introduced") | {"default_locale": locale}

    with pytest.raises(ValidationError) as caught:
        ProductIntroduced.model_validate(data)

    assert "default_locale" in error_locs(caught.value)


def test_names_must_include_the_default_locale() -> None:
    data = data_of("product-introduced") | {"default_locale": "fr-FR"}

    with pytest.raises(ValidationError, match="default_locale 'fr-FR'"):
        ProductIntroduced.model_validate(data)


def test_prices_must_be_positive_and_keyed_by_currency() -> None:
    data = data_of("product-introduced")

    with pytest.raises(ValidationError):
        ProductIntroduced.model_validate(data | {"prices": {"USD": "0"}})
    with pytest.raises(ValidationError):
        ProductIntroduced.model_validate(data | {"prices": {"DOLLAR": "1.00"}})
    with pytest.raises(ValidationError):
        ProductIntroduced.model_validate(data | {"prices": {}})


def test_rating_above_five_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        ProductIntroduced.model_validate(data_of("product-introduced") | {"rating": "5.1"})

    assert error_locs(caught.value) == ["rating"]


def test_malformed_sku_is_rejected() -> None:
    data = data_of("stock-changed") | {"sku": "yoga mat!"}

    with pytest.raises(ValidationError) as caught:
        StockChanged.model_validate(data)

    assert error_locs(caught.value) == ["sku"]


def test_packs_need_a_pack_size() -> None:
    data = data_of("stock-reported") | {"unit": "case"}

    with pytest.raises(ValidationError, match="units_per_pack is required"):
        StockReported.model_validate(data)
    assert StockReported.model_validate(data | {"units_per_pack": 12}).units_per_pack == 12


def test_available_must_follow_from_on_hand_and_reserved() -> None:
    data = data_of("stock-changed") | {"available": 48}

    with pytest.raises(ValidationError, match="available must be"):
        StockChanged.model_validate(data)


def test_order_needs_at_least_one_and_at_most_500_lines() -> None:
    data = data_of("order-completed")
    line = data["lines"][0]

    with pytest.raises(ValidationError):
        OrderCompleted.model_validate(data | {"lines": []})
    with pytest.raises(ValidationError):
        OrderCompleted.model_validate(data | {"lines": [line] * 501})
    assert len(OrderCompleted.model_validate(data | {"lines": [line] * 500}).lines) == 500


def test_zero_quantity_line_is_rejected_naming_the_line() -> None:
    data = data_of("order-completed")
    data["lines"][1]["quantity"] = 0

    with pytest.raises(ValidationError) as caught:
        OrderCompleted.model_validate(data)

    assert error_locs(caught.value) == ["lines.1.quantity"]


def test_store_orders_name_the_store() -> None:
    data = data_of("order-completed") | {"store_id": None}

    with pytest.raises(ValidationError, match="store_id is required"):
        OrderCompleted.model_validate(data)
    assert OrderCompleted.model_validate(data | {"channel": "web"}).store_id is None


def test_order_total_sums_its_lines() -> None:
    order = OrderCompleted.model_validate(data_of("order-completed"))

    assert order.total == Decimal("123.90")


def test_campaign_must_start_before_it_ends() -> None:
    data = data_of("campaign-created")
    data["ends_at"] = data["starts_at"]

    with pytest.raises(ValidationError, match="starts_at must be before ends_at"):
        CampaignCreated.model_validate(data)


def test_coupon_discount_cannot_exceed_its_threshold() -> None:
    data = data_of("campaign-created")
    data["coupon"]["discount"] = "200.00"

    with pytest.raises(ValidationError, match="discount must not exceed threshold"):
        CampaignCreated.model_validate(data)


def test_coupon_validity_window_must_be_ordered() -> None:
    data = data_of("coupon-issued")
    data["valid_until"] = data["valid_from"]

    with pytest.raises(ValidationError, match="valid_from must be before valid_until"):
        CouponIssued.model_validate(data)


def test_unknown_field_is_rejected() -> None:
    data = data_of("coupon-issued") | {"discount_pct": 10}

    with pytest.raises(ValidationError) as caught:
        CouponIssued.model_validate(data)

    assert error_locs(caught.value) == ["discount_pct"]


def test_payloads_are_immutable() -> None:
    reported = StockReported.model_validate(data_of("stock-reported"))

    with pytest.raises(ValidationError):
        reported.on_hand = Decimal(0)  # type: ignore[misc]


@pytest.mark.parametrize("ce_type", sorted(EVENT_TYPES))
def test_payload_survives_a_json_round_trip(ce_type: str) -> None:
    model = EVENT_TYPES[ce_type]
    name = ce_type.split(".")[-2]
    payload = model.model_validate(data_of(name))

    assert model.model_validate_json(payload.model_dump_json()) == payload


def test_offset_aware_datetimes_from_python_are_accepted() -> None:
    tokyo = timezone(timedelta(hours=9))
    data = data_of("stock-reported") | {"reported_at": datetime(2026, 11, 27, 17, tzinfo=tokyo)}

    assert StockReported.model_validate(data).reported_at.hour == 8


def test_dead_letter_keeps_an_event_whose_own_time_was_unreadable() -> None:
    data = data_of("dead-letter")
    data["event"]["time"] = "2026-11-27T08:00:00"

    letter = DeadLetter.model_validate(data)

    assert letter.event.time is None
    assert letter.event.id == "inventory.stock-reported:3:1842"
