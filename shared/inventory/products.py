"""What a partner posts to ``POST /v1/partners/{partner}/products``."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from events.fields import (
    CurrencyCode,
    Locale,
    LongText,
    PartnerSku,
    PositiveMoney,
    Region,
    Sku,
    Text,
)
from events.inventory import AttributeName, AttributeValue, Category, ProductIntroduced
from shared.inventory.catalog import PutOutcome


class ProductPost(BaseModel):
    """A product as a partner introduces it; the partner comes from the path, the time is ours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku
    partner_sku: PartnerSku
    category: Category
    regions: tuple[Region, ...] = Field(min_length=1, max_length=4)
    # names before default_locale: fields validate in this order, and the locale is checked
    # against the names (the JSON's own order does not matter).
    names: dict[Locale, Text] = Field(min_length=1, max_length=50)
    default_locale: Locale
    descriptions: dict[Locale, LongText] = Field(default_factory=dict, max_length=50)
    prices: dict[CurrencyCode, PositiveMoney] = Field(min_length=1, max_length=50)
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=50)
    brand: Text | None = None
    rating: Decimal | None = Field(None, ge=0, le=5, decimal_places=2)
    margin: Decimal | None = Field(None, ge=-1, le=1, decimal_places=4)

    # ProductIntroduced has these rules too, but as whole-model checks its errors name no field;
    # here they name the one to fix and come with every other bad field of the request.
    @field_validator("regions")
    @classmethod
    def _regions_do_not_repeat(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("regions must not repeat")
        return value

    @field_validator("default_locale")
    @classmethod
    def _default_locale_is_named(cls, value: str, info: ValidationInfo) -> str:
        names = info.data.get("names")
        if names is not None and value not in names:  # None: names failed, and says so
            raise ValueError("default_locale must be one of the locales in names")
        return value


class ProductRegistered(BaseModel):
    """The answer to a product post: the catalog SKU and what the post changed."""

    sku: Sku
    outcome: PutOutcome


def product_event_id(product: ProductIntroduced) -> str:
    """Derived from the content, so that posting the same product again publishes the same id."""
    content = product.model_dump_json(exclude={"introduced_at"}).encode()
    return str(uuid.UUID(bytes=hashlib.sha256(content).digest()[:16], version=4))
