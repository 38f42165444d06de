"""What a partner posts to ``POST /v1/partners/{partner}/products``."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from events.fields import Locale, LongText, PartnerSku, PositiveMoney, Region, Sku, Text
from events.fields import CurrencyCode
from events.inventory import AttributeName, AttributeValue, Category, ProductIntroduced


class ProductPost(BaseModel):
    """A product as a partner introduces it; the partner comes from the path, the time is ours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku
    partner_sku: PartnerSku
    category: Category
    regions: tuple[Region, ...] = Field(min_length=1, max_length=4)
    default_locale: Locale
    names: dict[Locale, Text] = Field(min_length=1, max_length=50)
    descriptions: dict[Locale, LongText] = Field(default_factory=dict, max_length=50)
    prices: dict[CurrencyCode, PositiveMoney] = Field(min_length=1, max_length=50)
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=50)
    brand: Text | None = None
    rating: Decimal | None = Field(None, ge=0, le=5, decimal_places=2)
    margin: Decimal | None = Field(None, ge=-1, le=1, decimal_places=4)


def product_event_id(product: ProductIntroduced) -> str:
    """Derived from the content, so that posting the same product again publishes the same id."""
    content = product.model_dump_json(exclude={"introduced_at"}).encode()
    return str(uuid.UUID(bytes=hashlib.sha256(content).digest()[:16], version=4))



