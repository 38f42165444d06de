"""Inventory and catalog events: partners report stock, the availability view publishes changes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from events.fields import (
    CurrencyCode,
    Identifier,
    Locale,
    LongText,
    PartnerSku,
    Payload,
    PositiveMoney,
    Quantity,
    Region,
    Sku,
    Text,
    UtcDatetime,
)

Unit = Literal["each", "pack", "case", "kg", "g", "l", "ml"]
BaseUnit = Literal["each", "g", "ml"]
"""What every quantity is normalized to once it leaves the partner edge."""

BASE_UNIT: dict[str, tuple[BaseUnit, int | None]] = {
    "each": ("each", 1),
    "pack": ("each", None),  # None: multiply by units_per_pack
    "case": ("each", None),
    "kg": ("g", 1000),
    "g": ("g", 1),
    "l": ("ml", 1000),
    "ml": ("ml", 1),
}


class StockReported(Payload):
    """A partner's stock level for one of its SKUs at one location, as the partner reported it."""

    ce_type = "com.retailfn.inventory.stock-reported.v1"

    partner_id: Identifier
    partner_sku: PartnerSku
    location_id: Identifier
    region: Region
    on_hand: Quantity
    reserved: Quantity = Decimal(0)
    incoming: Quantity = Decimal(0)
    unit: Unit = "each"
    units_per_pack: int | None = Field(None, ge=1, le=100_000)
    reported_at: UtcDatetime
    sequence: int | None = Field(None, ge=0)
    """The partner's own counter; lets a late, older report lose against a newer one."""

    @model_validator(mode="after")
    def _pack_size_goes_with_packs(self) -> StockReported:
        packed = self.unit in ("pack", "case")
        if packed and self.units_per_pack is None:
            raise ValueError(f"units_per_pack is required when unit is {self.unit!r}")
        if not packed and self.units_per_pack is not None:
            raise ValueError(f"units_per_pack only applies to pack or case, not {self.unit!r}")
        return self


class StockChanged(Payload):
    """The availability of a catalog SKU at a location changed. Quantities are in the base unit."""

    ce_type = "com.retailfn.inventory.stock-changed.v1"

    sku: Sku
    location_id: Identifier
    partner_id: Identifier
    region: Region
    on_hand: int = Field(ge=0)
    reserved: int = Field(ge=0)
    available: int = Field(ge=0)
    previous_available: int | None = Field(None, ge=0)
    """None when this is the first report for the SKU at the location."""
    unit: BaseUnit
    as_of: UtcDatetime

    @model_validator(mode="after")
    def _available_is_on_hand_less_reserved(self) -> StockChanged:
        # Reservations can exceed stock (oversold); availability never goes below zero.
        expected = max(self.on_hand - self.reserved, 0)
        if self.available != expected:
            raise ValueError(f"available must be max(on_hand - reserved, 0) = {expected}")
        return self


class OutOfStock(Payload):
    """A catalog SKU's availability at a location dropped to zero."""

    ce_type = "com.retailfn.inventory.out-of-stock.v1"

    sku: Sku
    location_id: Identifier
    partner_id: Identifier
    region: Region
    previous_available: int = Field(gt=0)
    as_of: UtcDatetime


class BackInStock(Payload):
    """A catalog SKU that was unavailable at a location is available again."""

    ce_type = "com.retailfn.inventory.back-in-stock.v1"

    sku: Sku
    location_id: Identifier
    partner_id: Identifier
    region: Region
    available: int = Field(gt=0)
    unit: BaseUnit
    as_of: UtcDatetime


AttributeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AttributeValue = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Category = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*){0,5}$", max_length=200),
]


class ProductIntroduced(Payload):
    """A partner introduces a product into the shared catalog, with localized names and prices."""

    ce_type = "com.retailfn.catalog.product-introduced.v1"

    sku: Sku
    partner_id: Identifier
    partner_sku: PartnerSku
    category: Category
    """A slash path, e.g. ``sports/yoga/mats``."""
    regions: tuple[Region, ...] = Field(min_length=1, max_length=4)
    default_locale: Locale
    names: dict[Locale, Text] = Field(min_length=1, max_length=50)
    descriptions: dict[Locale, LongText] = Field(default_factory=dict, max_length=50)
    prices: dict[CurrencyCode, PositiveMoney] = Field(min_length=1, max_length=50)
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=50)
    brand: Text | None = None
    rating: Decimal | None = Field(None, ge=0, le=5, decimal_places=2)
    margin: Decimal | None = Field(None, ge=-1, le=1, decimal_places=4)
    """Gross margin as a fraction of the price; negative for a loss leader."""
    introduced_at: UtcDatetime

    @model_validator(mode="after")
    def _default_locale_is_named(self) -> ProductIntroduced:
        if self.default_locale not in self.names:
            raise ValueError(f"names must include the default_locale {self.default_locale!r}")
        if len(set(self.regions)) != len(self.regions):
            raise ValueError("regions must not repeat")
        return self
