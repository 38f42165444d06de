from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from events.inventory import ProductIntroduced
from shared.crosssell.rules.upsell import match_attributes, up_sells


def product(
    sku: str,
    *,
    category: str = "sports/yoga/apparel",
    eur: str | None = "49.00",
    rating: str | None = "4.2",
    margin: str | None = "0.30",
    **attributes: str,
) -> ProductIntroduced:
    prices: dict[str, Any] = {"USD": "55.00"}
    if eur is not None:
        prices["EUR"] = eur
    return ProductIntroduced(
        sku=sku,
        partner_id="globex",
        partner_sku=sku.lower(),
        category=category,
        regions=("eu",),
        default_locale="en-US",
        names={"en-US": sku.title()},
        prices=prices,
        attributes=attributes,
        rating=None if rating is None else Decimal(rating),
        margin=None if margin is None else Decimal(margin),
        introduced_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


PANTS = product("PANTS-M", size="M", upsell_match="size")


def skus(found: list) -> list[str]:
    return [u.product.sku for u in found]


def test_a_dearer_better_rated_variant_of_the_same_size_is_an_up_sell() -> None:
    premium = product("PANTS-PRO-M", eur="59.00", rating="4.8", size="M")

    found = up_sells(PANTS, [premium], currency="EUR")

    assert skus(found) == ["PANTS-PRO-M"]
    assert found[0].price_step == Decimal("59.00") / Decimal("49.00")
    assert found[0].reason == (
        "rated 4.8 vs 4.2 for this item; 10.00 EUR more (59.00 vs 49.00 EUR); same size M"
    )


def test_a_variant_in_another_size_is_not_an_up_sell_when_size_must_match() -> None:
    assert (
        up_sells(
            PANTS, [product("PANTS-PRO-L", eur="59.00", rating="4.8", size="L")], currency="EUR"
        )
        == []
    )


def test_attributes_the_catalog_does_not_ask_to_match_may_differ() -> None:
    pants = product("PANTS-M", size="M", color="black", upsell_match="size")

    found = up_sells(
        pants, [product("PANTS-PRO-M", eur="59.00", size="M", color="red")], currency="EUR"
    )

    assert skus(found) == ["PANTS-PRO-M"]
    assert match_attributes(pants) == ("size",)


def test_another_category_the_item_itself_and_a_lower_rated_dearer_product_are_left_out() -> None:
    candidates = [
        PANTS,
        product("MAT-PRO", category="sports/yoga/mats", eur="89.00", rating="4.9"),
        product("PANTS-CHEAP-LOOKING-M", eur="69.00", rating="3.1", size="M"),
    ]

    assert up_sells(PANTS, candidates, currency="EUR") == []


def test_a_cheaper_worse_product_is_not_better() -> None:
    assert (
        up_sells(
            PANTS,
            [product("PANTS-BASIC-M", eur="29.00", rating="4.0", margin="0.2", size="M")],
            currency="EUR",
        )
        == []
    )


def test_higher_margin_alone_at_the_same_price_and_rating_is_an_up_sell() -> None:
    found = up_sells(PANTS, [product("PANTS-HOUSE-M", margin="0.55", size="M")], currency="EUR")

    assert skus(found) == ["PANTS-HOUSE-M"]
    assert "margin" not in found[0].reason  # the shopper is not told the retailer's margin


def test_a_product_without_a_price_in_the_callers_currency_is_left_out() -> None:
    assert (
        up_sells(PANTS, [product("PANTS-US-M", eur=None, rating="4.9", size="M")], currency="EUR")
        == []
    )


def test_a_jump_beyond_the_price_step_is_not_an_up_sell() -> None:
    found = up_sells(
        PANTS, [product("PANTS-COUTURE-M", eur="490.00", rating="4.9", size="M")], currency="EUR"
    )

    assert found == []


def test_ranked_by_rating_then_the_nearest_price_step() -> None:
    candidates = [
        product("PANTS-B-M", eur="79.00", rating="4.6", size="M"),
        product("PANTS-A-M", eur="59.00", rating="4.6", size="M"),
        product("PANTS-TOP-M", eur="99.00", rating="4.9", size="M"),
        product("PANTS-UNRATED-M", eur="55.00", rating=None, size="M"),
    ]

    assert skus(up_sells(PANTS, candidates, currency="EUR")) == [
        "PANTS-TOP-M",
        "PANTS-A-M",
        "PANTS-B-M",
        "PANTS-UNRATED-M",
    ]
