"""Every CloudEvents type the service knows, mapped to its payload model."""

from __future__ import annotations

from events.analytics import SlowMoverDetected
from events.deadletter import DeadLetter
from events.fields import Payload
from events.inventory import BackInStock, OutOfStock, ProductIntroduced, StockChanged, StockReported
from events.loyalty import (
    CampaignCreated,
    CouponIssued,
    CouponRedeemed,
    CouponRedemptionRejected,
    CouponVoided,
)
from events.platform import ObjectChanged
from events.recommendations import RecommendationClicked, RecommendationShown
from events.sales import OrderCompleted
from events.trends import TrendObserved

_MODELS: tuple[type[Payload], ...] = (
    StockReported,
    StockChanged,
    OutOfStock,
    BackInStock,
    ProductIntroduced,
    OrderCompleted,
    SlowMoverDetected,
    CampaignCreated,
    CouponIssued,
    CouponRedeemed,
    CouponRedemptionRejected,
    CouponVoided,
    TrendObserved,
    RecommendationShown,
    RecommendationClicked,
    ObjectChanged,
    DeadLetter,
)

EVENT_TYPES: dict[str, type[Payload]] = {model.ce_type: model for model in _MODELS}
"""CloudEvents type -> payload model."""


def payload_model(ce_type: str) -> type[Payload]:
    """The payload model of a CloudEvents type; KeyError names the type when it is unknown."""
    try:
        return EVENT_TYPES[ce_type]
    except KeyError:
        raise KeyError(f"unknown event type {ce_type!r}") from None


def short_name(ce_type: str) -> str:
    """``com.retailfn.sales.order-completed.v1`` -> ``order-completed``: the sample file's name."""
    return ce_type.split(".")[-2]
