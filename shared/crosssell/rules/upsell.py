"""Up-sell rules: which products are a better variant of an item.

A candidate is an up-sell of ``item`` when all of these hold:

* it is another SKU in exactly the same category (``sports/yoga/apparel``);
* it is sold in the caller's region (the caller passes only those) and has a price in the
  caller's currency when ``item`` has one (prices are never converted);
* it shares the values of the attributes that the item's catalog entry says must match: the
  attribute ``upsell_match`` lists their names, comma-separated (``size,gender``). Yoga pants in
  size M are only up-sold to size-M pants. An attribute the item does not have is not compared;
  one the item has and the candidate lacks is a mismatch;
* it is better on at least one of price (a step up, at most ``max_price_step`` times the item's
  price, so a 40 EUR item is not "up-sold" to a 900 EUR one), margin or rating, and not rated
  lower than the item when both are rated (a dearer but worse product is no up-sell).

Ranked by rating (highest first, unrated last), then the smallest price step (the nearest
upgrade), then margin (highest first), then SKU. Stock is not a concern here: the caller drops
candidates without stock in the region.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from events.inventory import ProductIntroduced

MATCH_ATTRIBUTE = "upsell_match"
DEFAULT_MAX_PRICE_STEP = Decimal(3)


@dataclass(frozen=True)
class Upsell:
    """A better variant of the item, and why it is one."""

    product: ProductIntroduced
    price_step: Decimal | None
    """Candidate price / item price in the caller's currency; None when either has no price."""
    rating_gain: Decimal | None
    margin_gain: Decimal | None
    reason: str


def match_attributes(item: ProductIntroduced) -> tuple[str, ...]:
    """The attribute names a better variant must share with ``item`` (from ``upsell_match``)."""
    raw = item.attributes.get(MATCH_ATTRIBUTE, "")
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def up_sells(
    item: ProductIntroduced,
    candidates: Iterable[ProductIntroduced],
    *,
    currency: str,
    max_price_step: Decimal = DEFAULT_MAX_PRICE_STEP,
) -> list[Upsell]:
    """The better variants of ``item`` among ``candidates``, best first (see the module doc)."""
    must_match = [name for name in match_attributes(item) if name in item.attributes]
    base_price = item.prices.get(currency)
    found: list[Upsell] = []
    for candidate in candidates:
        if candidate.sku == item.sku or candidate.category != item.category:
            continue
        if any(candidate.attributes.get(name) != item.attributes[name] for name in must_match):
            continue
        price = candidate.prices.get(currency)
        if base_price is not None and price is None:
            continue
        step = None if base_price is None or price is None else price / base_price
        rating_gain = _gain(candidate.rating, item.rating)
        margin_gain = _gain(candidate.margin, item.margin)
        if rating_gain is not None and rating_gain < 0:
            continue
        if step is not None and step > max_price_step:
            continue
        dearer = step is not None and step > 1
        if not (dearer or _positive(rating_gain) or _positive(margin_gain)):
            continue
        found.append(
            Upsell(
                candidate,
                step,
                rating_gain,
                margin_gain,
                _reason(item, candidate, currency, rating_gain, margin_gain),
            )
        )
    found.sort(key=_rank)
    return found


def _gain(candidate: Decimal | None, item: Decimal | None) -> Decimal | None:
    return None if candidate is None or item is None else candidate - item


def _positive(value: Decimal | None) -> bool:
    return value is not None and value > 0


def _rank(upsell: Upsell) -> tuple[int, Decimal, Decimal, Decimal, str]:
    rating = upsell.product.rating
    margin = upsell.product.margin
    return (
        0 if rating is not None else 1,
        -(rating or Decimal(0)),
        upsell.price_step if upsell.price_step is not None else Decimal("Infinity"),
        -(margin if margin is not None else Decimal(-2)),
        upsell.product.sku,
    )


def _reason(
    item: ProductIntroduced,
    candidate: ProductIntroduced,
    currency: str,
    rating_gain: Decimal | None,
    margin_gain: Decimal | None,
) -> str:
    """E.g. ``rated 4.8 vs 4.2 for this item; 10.00 EUR more (59.00 vs 49.00 EUR)``.

    Margin is the retailer's business: it ranks, but is never told to the shopper.
    """
    parts: list[str] = []
    if _positive(rating_gain):
        parts.append(f"rated {candidate.rating} vs {item.rating} for this item")
    elif candidate.rating is not None and item.rating is None:
        parts.append(f"rated {candidate.rating}")
    elif candidate.rating is not None and rating_gain == 0:
        parts.append(f"rated as well ({candidate.rating})")
    base, price = item.prices.get(currency), candidate.prices.get(currency)
    if base is not None and price is not None:
        if price > base:
            parts.append(
                f"{_money(price - base)} {currency} more ({_money(price)} vs "
                f"{_money(base)} {currency})"
            )
        elif price == base:
            parts.append(f"same price ({_money(price)} {currency})")
        else:
            parts.append(f"{_money(base - price)} {currency} less")
    shared = [
        f"{name} {item.attributes[name]}"
        for name in match_attributes(item)
        if name in item.attributes
    ]
    if shared:
        parts.append("same " + ", ".join(shared))
    if not parts and _positive(margin_gain):
        parts.append("a better variant in the same category")
    return "; ".join(parts) or "a variant in the same category"


def _money(value: Decimal) -> str:
    exponent = value.as_tuple().exponent  # an int: prices are finite (a str only for NaN, inf)
    finer = isinstance(exponent, int) and exponent < -2
    return format(value.quantize(Decimal("0.01")) if finer else value, "f")
