"""Recommendation events, for A/B analysis of cross-sell and up-sell."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from events.fields import Identifier, Payload, Region, Sku, Slug, UtcDatetime

Kind = Literal["cross_sell", "up_sell"]


class RecommendationShown(Payload):
    """The recommend API answered a request with in-stock suggestions for a SKU."""

    ce_type = "com.retailfn.recommendations.recommendation-shown.v1"

    request_id: Identifier
    user_id: Identifier | None = None
    sku: Sku
    region: Region
    kind: Kind
    recommended_skus: tuple[Sku, ...] = Field(min_length=1, max_length=50)
    experiment: Slug
    variant: Slug
    shown_at: UtcDatetime

    @model_validator(mode="after")
    def _distinct_and_not_itself(self) -> RecommendationShown:
        if len(set(self.recommended_skus)) != len(self.recommended_skus):
            raise ValueError("recommended_skus must not repeat")
        if self.sku in self.recommended_skus:
            raise ValueError("recommended_skus must not contain the source sku")
        return self


class RecommendationClicked(Payload):
    """A shopper followed a recommendation."""

    ce_type = "com.retailfn.recommendations.recommendation-clicked.v1"

    request_id: Identifier
    user_id: Identifier | None = None
    sku: Sku
    """The recommended SKU that was clicked."""
    source_sku: Sku
    kind: Kind
    experiment: Slug
    variant: Slug
    clicked_at: UtcDatetime
