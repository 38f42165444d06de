"""Inventory analytics events."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from events.fields import CurrencyCode, Identifier, Money, Payload, Region, Sku, UtcDatetime


class SlowMoverDetected(Payload):
    """Stock of a SKU at a store moves slower than expected and ties up value."""

    ce_type = "com.retailfn.analytics.slow-mover-detected.v1"

    sku: Sku
    store_id: Identifier
    region: Region
    on_hand: int = Field(ge=0)
    days_of_cover: Decimal = Field(ge=0, max_digits=10, decimal_places=2)
    velocity: Decimal = Field(ge=0, max_digits=12, decimal_places=4)
    """Units sold per day over the analysis window."""
    expected_velocity: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=4)
    age_days: int = Field(ge=0)
    value_at_risk: Money
    currency: CurrencyCode
    detected_at: UtcDatetime
