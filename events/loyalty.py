"""Campaign and loyalty-coupon events: issue, redeem, reject, void."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from events.fields import (
    CurrencyCode,
    Identifier,
    Locale,
    Money,
    Payload,
    PositiveMoney,
    PositiveQuantity,
    Region,
    Sku,
    Slug,
    Text,
    UtcDatetime,
)
from events.sales import CouponCode

Aisle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class Ingredient(Payload):
    sku: Sku
    quantity: PositiveQuantity
    unit: Literal["each", "g", "ml"] = "each"
    aisle: Aisle
    """Where the product sits in the store, for the store map and the shopping list."""


class Recipe(Payload):
    name: Text
    locale: Locale
    chef: Text | None = None
    servings: int = Field(4, ge=1, le=100)
    ingredients: tuple[Ingredient, ...] = Field(min_length=1, max_length=100)


class CouponRule(Payload):
    """``discount`` off a basket of at least ``threshold`` (of ``eligible_skus`` when given)."""

    threshold: Money
    discount: PositiveMoney
    currency: CurrencyCode
    eligible_skus: tuple[Sku, ...] = Field(default=(), max_length=500)

    @model_validator(mode="after")
    def _discount_within_threshold(self) -> CouponRule:
        if self.threshold > 0 and self.discount > self.threshold:
            raise ValueError("discount must not exceed threshold")
        return self


class CampaignCreated(Payload):
    """A campaign, typically an in-store event built around slow movers, was set up."""

    ce_type = "com.retailfn.loyalty.campaign-created.v1"

    campaign_id: Identifier
    name: Text
    kind: Literal["in_store_event", "digital_coupon"]
    region: Region
    store_ids: tuple[Identifier, ...] = Field(min_length=1, max_length=1000)
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    recipe: Recipe | None = None
    coupon: CouponRule
    target_segment: Slug
    slow_mover_skus: tuple[Sku, ...] = Field(default=(), max_length=500)
    experiment: Slug | None = None
    variant: Slug | None = None
    """A/B tests run two campaigns side by side: same experiment, different variants."""

    @model_validator(mode="after")
    def _consistent(self) -> CampaignCreated:
        if self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        if self.kind == "in_store_event" and self.recipe is None:
            raise ValueError("recipe is required for an in_store_event")
        if (self.experiment is None) != (self.variant is None):
            raise ValueError("experiment and variant go together")
        return self


class CouponIssued(Payload):
    """A digital coupon was issued to a loyalty member."""

    ce_type = "com.retailfn.loyalty.coupon-issued.v1"

    coupon_id: Identifier
    campaign_id: Identifier
    member_id: Identifier
    code: CouponCode
    discount: PositiveMoney
    threshold: Money
    currency: CurrencyCode
    eligible_skus: tuple[Sku, ...] = Field(default=(), max_length=500)
    valid_from: UtcDatetime
    valid_until: UtcDatetime
    issued_at: UtcDatetime

    @model_validator(mode="after")
    def _valid_window(self) -> CouponIssued:
        if self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be before valid_until")
        return self


class CouponRedeemed(Payload):
    """A coupon was applied to an order."""

    ce_type = "com.retailfn.loyalty.coupon-redeemed.v1"

    coupon_id: Identifier
    campaign_id: Identifier
    member_id: Identifier
    order_id: Identifier
    store_id: Identifier | None = None
    """None for web and app orders."""
    basket_total: Money
    discount_applied: PositiveMoney
    currency: CurrencyCode
    redeemed_at: UtcDatetime

    @model_validator(mode="after")
    def _discount_within_basket(self) -> CouponRedeemed:
        if self.discount_applied > self.basket_total:
            raise ValueError("discount_applied must not exceed basket_total")
        return self


RejectionReason = Literal[
    "already_redeemed",
    "expired",
    "not_yet_valid",
    "threshold_not_met",
    "unknown_coupon",
    "voided",
    "wrong_member",
]


class CouponRedemptionRejected(Payload):
    """A coupon presented at checkout was not applied, and why."""

    ce_type = "com.retailfn.loyalty.coupon-redemption-rejected.v1"

    coupon_id: Identifier
    """For ``unknown_coupon`` this is the code that was presented."""
    campaign_id: Identifier | None = None
    member_id: Identifier | None = None
    order_id: Identifier | None = None
    reason: RejectionReason
    detail: Annotated[str, StringConstraints(max_length=500)] = ""
    rejected_at: UtcDatetime


class CouponVoided(Payload):
    """A coupon was withdrawn before it was redeemed."""

    ce_type = "com.retailfn.loyalty.coupon-voided.v1"

    coupon_id: Identifier
    campaign_id: Identifier | None = None
    reason: Literal["campaign_cancelled", "issued_in_error", "fraud_suspected", "member_request"]
    detail: Annotated[str, StringConstraints(max_length=500)] = ""
    voided_at: UtcDatetime
