"""The shared product catalog in the state bucket.

Layout (bucket ``state``)::

    catalog/products/{sku}.json                          the ProductIntroduced payload
    catalog/partner-skus/{partner_id}/{partner_sku}.json {"sku": ...}; '/' in a partner SKU is '~'
    catalog/categories/{category path}/_/{sku}.json      copy of the product, for category listing

``_`` can never be a category segment, so a category's own products and its sub-categories' do
not mix, and a prefix listing of ``catalog/categories/sports/yoga/`` is "sports/yoga and below".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from events.fields import Identifier, PartnerSku, Sku
from events.inventory import Category, ProductIntroduced
from shared.integration.objectstore.port import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from shared.inventory.pages import Page, scan

T = TypeVar("T")

PRODUCTS = "catalog/products/"
PARTNER_SKUS = "catalog/partner-skus/"
CATEGORIES = "catalog/categories/"

_SKU = TypeAdapter(Sku)
_PARTNER_SKU = TypeAdapter(PartnerSku)
_IDENTIFIER = TypeAdapter(Identifier)
_CATEGORY = TypeAdapter(Category)
JSON = "application/json"

PutOutcome = Literal["created", "updated", "unchanged"]


class CatalogConflict(Exception):
    """A product or partner SKU already belongs to someone else; retrying cannot help."""


def _checked(adapter: TypeAdapter[str], value: str, what: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        raise ValueError(f"{what}: {value!r} is not valid") from None


def product_key(sku: str) -> str:
    return f"{PRODUCTS}{_checked(_SKU, sku, 'sku')}.json"


def partner_sku_key(partner_id: str, partner_sku: str) -> str:
    # '~' is outside the PartnerSku alphabet, so the mapping is reversible and the key one segment.
    partner = _checked(_IDENTIFIER, partner_id, "partner_id")
    own = _checked(_PARTNER_SKU, partner_sku, "partner_sku").replace("/", "~")
    return f"{PARTNER_SKUS}{partner}/{own}.json"


def category_prefix_key(category: str) -> str:
    return f"{CATEGORIES}{_checked(_CATEGORY, category, 'category')}/"


def _category_key(product: ProductIntroduced) -> str:
    return f"{category_prefix_key(product.category)}_/{product.sku}.json"


class ProductCatalog:
    """Products partners introduced, and which partner SKU is which catalog SKU."""

    def __init__(self, store: ObjectStore | None = None, bucket: str | None = None) -> None:
        if store is None or bucket is None:
            from shared.platform import adapters

            store = store or adapters.get_store()
            bucket = bucket or adapters.bucket("state")
        self._store = store
        self._bucket = bucket

    # --- writing

    def put(self, product: ProductIntroduced) -> PutOutcome:
        """Add or update ``product``; putting the same product again changes nothing.

        Raise :class:`CatalogConflict` when the SKU belongs to another partner, or the partner
        SKU already maps to another catalog SKU.
        """
        key = product_key(product.sku)
        mapping_key = partner_sku_key(product.partner_id, product.partner_sku)
        claimed = self._mapped_sku(mapping_key)
        if claimed is not None and claimed != product.sku:
            raise CatalogConflict(
                f"partner_sku: {product.partner_id}/{product.partner_sku} already maps to {claimed}"
            )
        while True:
            existing, etag = self._read(key)
            if existing is not None and existing.partner_id != product.partner_id:
                raise CatalogConflict(
                    f"sku: {product.sku} belongs to partner {existing.partner_id}, "
                    f"not {product.partner_id}"
                )
            if existing == product:
                outcome: PutOutcome = "unchanged"
                break
            body = product.model_dump_json().encode()
            try:
                if etag is None:
                    self._store.put(self._bucket, key, body, content_type=JSON, if_none_match=True)
                else:
                    self._store.put(self._bucket, key, body, content_type=JSON, if_match=etag)
            except PreconditionFailed:
                continue  # someone wrote it meanwhile: decide again on what is there now
            outcome = "created" if existing is None else "updated"
            break
        # The mapping and the index follow the product; a crash between is repaired by the next
        # put of the same product (which finds "unchanged" and still writes them).
        self._claim(mapping_key, product.sku)
        if existing is not None and existing.category != product.category:
            self._store.delete(self._bucket, _category_key(existing))
        if existing is not None and existing.partner_sku != product.partner_sku:
            old_mapping = partner_sku_key(existing.partner_id, existing.partner_sku)
            if self._mapped_sku(old_mapping) == product.sku:
                self._store.delete(self._bucket, old_mapping)
        if outcome != "unchanged" or not self._exists(_category_key(product)):
            self._store.put(
                self._bucket,
                _category_key(product),
                product.model_dump_json().encode(),
                content_type=JSON,
            )
        return outcome

    def _claim(self, mapping_key: str, sku: str) -> None:
        body = json.dumps({"sku": sku}).encode()
        try:
            self._store.put(self._bucket, mapping_key, body, content_type=JSON, if_none_match=True)
        except PreconditionFailed:
            claimed = self._mapped_sku(mapping_key)
            if claimed != sku:
                raise CatalogConflict(f"partner_sku: already maps to {claimed}") from None

    # --- reading

    def get(self, sku: str) -> ProductIntroduced | None:
        try:
            key = product_key(sku)
        except ValueError:
            return None  # not a catalog SKU, so not in the catalog
        return self._read(key)[0]

    def sku_for(self, partner_id: str, partner_sku: str) -> str | None:
        """The catalog SKU of a partner's own SKU, or None if the partner never introduced it."""
        return self._mapped_sku(partner_sku_key(partner_id, partner_sku))

    def list(
        self, category_prefix: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> Page[ProductIntroduced]:
        """Products in key order: by SKU, or with ``category_prefix`` (whole segments:
        ``sports/yoga`` holds ``sports/yoga/mats`` but not ``sports/yogawear``) by category."""
        return self.select(
            lambda product: product, category_prefix=category_prefix, cursor=cursor, limit=limit
        )

    def select(
        self,
        pick: Callable[[ProductIntroduced], T | None],
        *,
        category_prefix: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[T]:
        """Like :meth:`list`, mapping each product through ``pick`` (None leaves it out)."""
        prefix = PRODUCTS if category_prefix is None else category_prefix_key(category_prefix)

        def load(info: ObjectInfo) -> T | None:
            try:
                body = self._store.get(self._bucket, info.key).body
            except ObjectNotFound:
                return None  # deleted since it was listed
            return pick(ProductIntroduced.model_validate_json(body))

        # A cursor is bound to its prefix: one from another category is refused, not misread.
        return scan(self._store, self._bucket, prefix, load, cursor=cursor, limit=limit)

    # --- helpers

    def _read(self, key: str) -> tuple[ProductIntroduced | None, str | None]:
        try:
            current = self._store.get(self._bucket, key)
        except ObjectNotFound:
            return None, None
        return ProductIntroduced.model_validate_json(current.body), current.info.etag

    def _mapped_sku(self, mapping_key: str) -> str | None:
        try:
            return str(json.loads(self._store.get(self._bucket, mapping_key).body)["sku"])
        except ObjectNotFound:
            return None

    def _exists(self, key: str) -> bool:
        try:
            self._store.head(self._bucket, key)
            return True
        except ObjectNotFound:
            return False
