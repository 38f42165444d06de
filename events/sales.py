"""Sales events: completed orders from stores (POS), the web shop and the app."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from events.fields import (
    CountryCode,
    CurrencyCode,
    Identifier,
    Money,
    Payload,
    PositiveQuantity,
    Region,
    Sku,
    UtcDatetime,
)

Channel = Literal["store", "web", "app"]
CouponCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{5,31}$")]


class OrderLine(Payload):
    sku: Sku
    quantity: PositiveQuantity
    unit_price: Money


class OrderCompleted(Payload):
    """An order was paid. The basket feeds cross-sell; presented coupons feed redemption."""

    ce_type = "com.retailfn.sales.order-completed.v1"

    order_id: Identifier
    customer_id: Identifier | None = None
    channel: Channel
    store_id: Identifier | None = None
    region: Region
    country: CountryCode
    currency: CurrencyCode
    completed_at: UtcDatetime
    lines: tuple[OrderLine, ...] = Field(min_length=1, max_length=500)
    coupon_codes: tuple[CouponCode, ...] = Field(default=(), max_length=20)
    """Coupons the shopper presented at checkout; redeem_coupon decides which apply."""

    @model_validator(mode="after")
    def _store_orders_name_the_store(self) -> OrderCompleted:
        if self.channel == "store" and self.store_id is None:
            raise ValueError("store_id is required when channel is 'store'")
        return self

    @property
    def total(self) -> Decimal:
        return sum((line.quantity * line.unit_price for line in self.lines), Decimal(0))
