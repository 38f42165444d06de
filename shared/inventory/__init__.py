"""Inventory: partner stock reports and files, the availability view, the product catalog, the
partners and their channels, and the queries partners run."""

from shared.inventory.availability import AvailabilityView, ViewContention, availability_key
from shared.inventory.catalog import CatalogConflict, ProductCatalog
from shared.inventory.pages import InvalidCursor, Page
from shared.inventory.partners import PartnerBindingError, PartnerRegistry

__all__ = [
    "AvailabilityView",
    "CatalogConflict",
    "InvalidCursor",
    "Page",
    "PartnerBindingError",
    "PartnerRegistry",
    "ProductCatalog",
    "ViewContention",
    "availability_key",
]
