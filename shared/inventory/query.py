"""What the inventory API answers: a catalog product joined with its availability in a region,
in the caller's language and the region's (or the asked-for) currency."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from events.fields import CurrencyCode, Identifier, Region
from events.inventory import BaseUnit, Category, ProductIntroduced
from shared.inventory.availability import AvailabilityView
from shared.inventory.catalog import ProductCatalog
from shared.inventory.pages import Page
from shared.inventory.rules import SkuAvailability, StockLevel
from shared.kernel.localization import check_locale, currency_for, negotiate, pick_text, price_in

MAX_PAGE = 200

LanguageTag = Annotated[str, Field(max_length=35), AfterValidator(check_locale)]


class ItemQuery(BaseModel):
    """Query of ``GET /v1/inventory/{sku}``. ``region`` is required: it decides the catalog, the
    totals and the currency."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    region: Region
    lang: LanguageTag | None = None
    currency: CurrencyCode | None = None


class SearchQuery(ItemQuery):
    """Query of ``GET /v1/inventory``."""

    category: Category | None = None
    """A category path prefix by whole segments: ``sports/yoga`` holds ``sports/yoga/mats``."""
    partner: Identifier | None = None
    location: Identifier | None = None
    cursor: str | None = Field(None, min_length=1, max_length=4096)
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class Price(BaseModel):
    currency: str
    amount: str | None
    """A plain decimal string; None when the product has no price in this currency (prices are
    never converted)."""
    note: str | None = None


class LocationStock(BaseModel):
    partner_id: str
    location_id: str
    available: int
    on_hand: int
    reserved: int
    incoming: int
    reported_at: datetime


class PartnerStock(BaseModel):
    partner_id: str
    available: int
    on_hand: int
    reserved: int
    incoming: int
    locations: int


class InventoryItem(BaseModel):
    sku: str
    region: Region
    locale: str
    """The locale of ``name``: the negotiated one, or the fallback that the product has."""
    name: str
    description: str | None
    category: str
    brand: str | None
    price: Price
    unit: BaseUnit | None
    """None until a partner reported stock."""
    available: int
    on_hand: int
    reserved: int
    incoming: int
    partners: list[PartnerStock]
    locations: list[LocationStock] | None = None
    """Per location on the single-SKU answer; left out of search results."""
    as_of: datetime | None
    """The newest report behind these numbers; None when nothing was reported."""


def describe(
    product: ProductIntroduced,
    availability: SkuAvailability | None,
    query: ItemQuery,
    accept_language: str | None,
    *,
    with_locations: bool,
) -> InventoryItem:
    """``product`` in the caller's language and currency with its stock in ``query.region``."""
    locale = negotiate(accept_language, query.lang, set(product.names), product.default_locale)
    described = pick_text(product.descriptions, locale, product.default_locale)
    currency = currency_for(query.region, query.currency)
    localized = price_in(product.prices, currency)
    note = None if localized.available else f"The product has no price in {currency}"
    stock = (availability or SkuAvailability(product.sku)).where(region=query.region)
    partners: dict[str, list[StockLevel]] = {}
    for level in stock.levels:
        partners.setdefault(level.partner_id, []).append(level)
    return InventoryItem(
        sku=product.sku,
        region=query.region,
        locale=locale,
        name=product.names[locale],
        description=described[1] if described else None,
        category=product.category,
        brand=product.brand,
        price=Price(currency=currency, amount=localized.amount, note=note),
        unit=stock.unit,
        available=stock.available,
        on_hand=stock.on_hand,
        reserved=stock.reserved,
        incoming=stock.incoming,
        partners=[
            PartnerStock(
                partner_id=partner,
                available=sum(lv.available for lv in levels),
                on_hand=sum(lv.on_hand for lv in levels),
                reserved=sum(lv.reserved for lv in levels),
                incoming=sum(lv.incoming for lv in levels),
                locations=len(levels),
            )
            for partner, levels in sorted(partners.items())
        ],
        locations=[
            LocationStock(
                partner_id=lv.partner_id,
                location_id=lv.location_id,
                available=lv.available,
                on_hand=lv.on_hand,
                reserved=lv.reserved,
                incoming=lv.incoming,
                reported_at=lv.reported_at,
            )
            for lv in stock.levels
        ]
        if with_locations
        else None,
        as_of=stock.as_of,
    )


class InventoryQueries:
    """The reads behind the inventory API."""

    def __init__(
        self, catalog: ProductCatalog | None = None, view: AvailabilityView | None = None
    ) -> None:
        self.catalog = catalog or ProductCatalog()
        self.view = view or AvailabilityView()

    def item(self, sku: str, query: ItemQuery, accept_language: str | None) -> InventoryItem | None:
        """One SKU, or None if it is not in the region's catalog."""
        product = self.catalog.get(sku)
        if product is None or query.region not in product.regions:
            return None
        return describe(product, self.view.get(sku), query, accept_language, with_locations=True)

    def search(self, query: SearchQuery, accept_language: str | None) -> Page[InventoryItem]:
        """Products of the region's catalog (optionally under a category) by key order. With
        ``partner`` or ``location``, only products that have stock records there, counted there
        alone; without, also products nobody reported stock of yet (available 0)."""
        narrowed = query.partner is not None or query.location is not None

        def pick(product: ProductIntroduced) -> InventoryItem | None:
            if query.region not in product.regions:
                return None
            availability = self.view.get(product.sku)
            if narrowed:
                if availability is None:
                    return None
                availability = availability.where(
                    region=query.region, partner_id=query.partner, location_id=query.location
                )
                if not availability.levels:
                    return None
            return describe(product, availability, query, accept_language, with_locations=False)

        return self.catalog.select(
            pick, category_prefix=query.category, cursor=query.cursor, limit=query.limit
        )
