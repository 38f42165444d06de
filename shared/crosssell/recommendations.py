"""The reads and writes behind the recommend API: cross-sell from the co-occurrence model,
up-sell from the catalog, both narrowed to what partners really have in stock in the caller's
region, localized like the inventory API, with the A/B variant that decided the ranking.

Settings (``shared.platform.settings``, from ``serverless.yaml`` parameters through the environment):

* ``RETAILFN_CROSSSELL_MIN_SUPPORT`` (``crossSellMinSupport``, default 0.002) and
  ``RETAILFN_CROSSSELL_MIN_COUNT`` (``crossSellMinCount``, default 2): a pair seen in fewer
  baskets, or in a smaller share of them, is noise and never recommended;
* ``RETAILFN_CROSSSELL_MIN_LIFT`` (default 1.0): a pair bought together no more often than
  chance is no cross-sell;
* ``RETAILFN_EXPERIMENTS`` (``recommendExperiments``): see :mod:`shared.crosssell.rules.experiments`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from events.envelope import Event, new_event
from events.fields import CurrencyCode, Identifier, Region, Sku
from events.inventory import ProductIntroduced
from events.recommendations import Kind, RecommendationClicked, RecommendationShown
from events.sales import OrderCompleted
from shared.crosssell.rules.cooccurrence import Complement, CrossSellModel
from shared.crosssell.rules.experiments import (
    Experiment,
    ExperimentsConfig,
    Strategy,
    Variant,
    VariantReport,
    assign,
    report,
)
from shared.crosssell.rules.upsell import up_sells
from shared.integration.objectstore import ObjectStore
from shared.inventory.availability import AvailabilityView
from shared.inventory.catalog import ProductCatalog
from shared.inventory.query import LanguageTag, Price
from shared.inventory.rules import SkuAvailability
from shared.kernel.localization import currency_for, negotiate, price_in
from shared.platform.settings import get_settings

log = logging.getLogger("retailfn.recommend")

SOURCE = "/functions/recommend"
MAX_LIMIT = 20
CATEGORY_SCAN = 500
"""Products of a category read at most for up-sell and the cold-start fallback."""
CATALOG_TTL_S = 5.0
"""How long a process keeps catalog reads (products, category listings); never stock."""

Basis = Literal["bought_together", "category_best_seller", "better_variant"]


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    min_support: float
    min_count: int
    min_lift: float


def thresholds() -> Thresholds:
    settings = get_settings()
    return Thresholds(
        settings.crosssell_min_support, settings.crosssell_min_count, settings.crosssell_min_lift
    )


def experiments() -> ExperimentsConfig:
    return parse_experiments(get_settings().experiments)


@lru_cache(maxsize=8)
def parse_experiments(raw: str) -> ExperimentsConfig:
    """``RETAILFN_EXPERIMENTS`` (JSON or YAML) as typed experiments; raises on a bad config
    (``retailfn validate`` calls it, so a mistake fails the deploy, not a shopper's request)."""
    if not raw.strip():
        return ExperimentsConfig()
    loaded = yaml.safe_load(raw)  # JSON is YAML too
    if isinstance(loaded, list):
        loaded = {"experiments": loaded}
    return ExperimentsConfig.model_validate(loaded)


# --- the API's shapes --------------------------------------------------------------------------


class RecommendQuery(BaseModel):
    """Query of ``GET /v1/recommendations/{sku}``. ``region`` is required: it decides the model,
    the stock counted, the catalog and the currency. ``user`` is an opaque shopper id used only
    for the A/B assignment and the events (the API is a public read: it is not authenticated)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    region: Region
    lang: LanguageTag | None = None
    currency: CurrencyCode | None = None
    user: Identifier | None = None
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT)
    """Caps the variant's list length."""


class Scores(BaseModel):
    support: float = Field(description="Share of all baskets holding both items.")
    confidence: float = Field(description="Share of baskets with this item that hold the other.")
    lift: float = Field(description="Confidence over the other item's own share of baskets.")
    pair_count: int = Field(description="Baskets holding both.")


class RecommendedItem(BaseModel):
    sku: str
    locale: str
    name: str
    category: str
    brand: str | None
    price: Price
    available: int = Field(description="Available in the region now, across partners.")
    stock_as_of: datetime | None = Field(description="The newest stock report behind `available`.")
    stock_age_seconds: int | None = Field(description="How old `stock_as_of` is now.")
    basis: Basis
    reason: str
    scores: Scores | None = None


class Recommendations(BaseModel):
    """Cross-sell and up-sell for a SKU in a region, only of what is in stock there."""

    request_id: str = Field(description="Names this answer in click reports.")
    sku: str
    region: Region
    experiment: str
    variant: str
    strategy: Strategy
    model_version: str | None = Field(description="The co-occurrence model used; null: none yet.")
    cold_start: bool = Field(
        description="The cross-sell list is the category's best sellers "
        "because the model knows no in-stock complement."
    )
    cross_sell: list[RecommendedItem]
    up_sell: list[RecommendedItem]


class ClickPost(BaseModel):
    """Body of ``POST /v1/recommendations/{request_id}/clicks``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku = Field(description="The recommended SKU that was clicked.")
    source_sku: Sku = Field(description="The SKU the recommendations were for.")
    kind: Kind
    user: Identifier | None = None


class ClickAccepted(BaseModel):
    event_id: str
    experiment: str
    variant: str


# --- the recommender ---------------------------------------------------------------------------


class Recommender:
    """Builds one answer; every read goes to the live catalog, availability view and model."""

    def __init__(
        self,
        catalog: ProductCatalog | None = None,
        view: AvailabilityView | None = None,
        models: Any = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.catalog = catalog or ProductCatalog()
        self.view = view or AvailabilityView()
        self._models = models
        self._clock = clock

    @property
    def models(self) -> Any:
        if self._models is None:
            self._models = model_store()
        return self._models

    def recommend(
        self,
        sku: str,
        query: RecommendQuery,
        accept_language: str | None,
        *,
        experiment: Experiment | None = None,
        limits: Thresholds | None = None,
    ) -> Recommendations | None:
        """The answer, or None when ``sku`` is not in the region's catalog."""
        product = self.catalog.get(sku)
        if product is None or query.region not in product.regions:
            return None
        experiment = experiment or experiments().running()
        variant = assign(experiment, query.user)
        limit = min(variant.limit, query.limit or variant.limit)
        limits = limits or thresholds()
        now = self._clock()
        describe = _Describer(query, accept_language, now)

        model, version = self._region_model(query.region)
        stock = _StockCache(self.view, query.region)
        products = _ProductCache(self.catalog, query.region)

        cross: list[RecommendedItem] = []
        if model is not None:
            for complement in _complements(model, sku, limits, variant.strategy):
                candidate = products.get(complement.sku)
                if candidate is None or complement.sku == sku:
                    continue
                availability = stock.get(complement.sku)
                if availability.available <= 0:
                    continue
                cross.append(
                    describe(
                        candidate,
                        availability,
                        "bought_together",
                        _cross_reason(complement),
                        _scores(complement),
                    )
                )
                if len(cross) == limit:
                    break
        cold_start = not cross
        category = products.category(product.category)
        if cold_start:
            cross = self._best_sellers(product, category, model, stock, describe, limit)

        currency = currency_for(query.region, query.currency)
        up: list[RecommendedItem] = []
        for upsell in up_sells(product, category, currency=currency):
            availability = stock.get(upsell.product.sku)
            if availability.available <= 0:
                continue
            up.append(describe(upsell.product, availability, "better_variant", upsell.reason))
            if len(up) == limit:
                break

        return Recommendations(
            request_id=uuid.uuid4().hex,
            sku=product.sku,
            region=query.region,
            experiment=experiment.name,
            variant=variant.name,
            strategy=variant.strategy,
            model_version=version,
            cold_start=cold_start,
            cross_sell=cross,
            up_sell=up,
        )

    def _region_model(self, region: str) -> tuple[CrossSellModel | None, str | None]:
        models = self.models.current()
        if models is None:
            return None, None
        try:
            model = models.region(region)
        except KeyError:
            model = None
        return model, str(models.version)

    def _best_sellers(
        self,
        product: ProductIntroduced,
        category: list[ProductIntroduced],
        model: Any,
        stock: _StockCache,
        describe: _Describer,
        limit: int,
    ) -> list[RecommendedItem]:
        """The category's best sellers in stock; by rating when the model has no sales yet."""
        others = {p.sku: p for p in category if p.sku != product.sku}
        counts = _top_items(model, others, len(others)) if model is not None else {}
        ranked = sorted(
            others.values(),
            key=lambda p: (-counts.get(p.sku, 0), -(p.rating or Decimal(-1)), p.sku),
        )
        out: list[RecommendedItem] = []
        for candidate in ranked:
            availability = stock.get(candidate.sku)
            if availability.available <= 0:
                continue
            sold = counts.get(candidate.sku, 0)
            if sold:
                reason = (
                    f"best seller in {product.category}: in {sold} basket{'s' if sold != 1 else ''}"
                )
            elif candidate.rating is not None:
                reason = f"top rated in {product.category} ({candidate.rating})"
            else:
                reason = f"also in {product.category}"
            out.append(describe(candidate, availability, "category_best_seller", reason))
            if len(out) == limit:
                break
        return out


def shown_events(answer: Recommendations, user: str | None) -> list[Event[RecommendationShown]]:
    """One ``recommendation.shown`` per non-empty list of the answer."""
    events = []
    lists: tuple[tuple[Kind, list[RecommendedItem]], ...] = (
        ("cross_sell", answer.cross_sell),
        ("up_sell", answer.up_sell),
    )
    for kind, items in lists:
        if not items:
            continue
        payload = RecommendationShown(
            request_id=answer.request_id,
            user_id=user,
            sku=answer.sku,
            region=answer.region,
            kind=kind,
            recommended_skus=tuple(item.sku for item in items),
            experiment=answer.experiment,
            variant=answer.variant,
            shown_at=datetime.now(UTC),
        )
        events.append(new_event(payload, source=SOURCE, subject=answer.sku))
    return events


def click_event(
    request_id: str, click: ClickPost, experiment: Experiment | None = None
) -> Event[RecommendationClicked]:
    """The ``recommendation.clicked`` event. The variant is assigned again from the user (it is
    deterministic), so a client cannot claim another; the id is derived from the request and the
    SKU, so a double click is one click downstream."""
    experiment = experiment or experiments().running()
    variant: Variant = assign(experiment, click.user)
    payload = RecommendationClicked(
        request_id=request_id,
        user_id=click.user,
        sku=click.sku,
        source_sku=click.source_sku,
        kind=click.kind,
        experiment=experiment.name,
        variant=variant.name,
        clicked_at=datetime.now(UTC),
    )
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"retailfn:click:{request_id}:{click.sku}"))
    return new_event(payload, source="/functions/record_click", subject=click.sku, id=event_id)


def model_store() -> Any:
    """The published co-occurrence models (``CrossSellStore`` of :mod:`shared.crosssell`)."""
    from shared.crosssell import CrossSellStore

    return CrossSellStore()


# --- helpers -----------------------------------------------------------------------------------


class _StockCache:
    """One request's stock reads, each SKU read at most once, from a process-wide snapshot no
    older than ``recommend_stock_ttl_s`` (1 s by default): a hot item's complements are asked for
    many times a second, and a second-old figure still says its age in ``stock_age_seconds``."""

    # Per object store: new adapters start empty.
    _shared: ClassVar[
        weakref.WeakKeyDictionary[ObjectStore, dict[tuple[str, str], tuple[float, SkuAvailability]]]
    ] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, view: AvailabilityView, region: str) -> None:
        self._view, self._region = view, region
        self._seen: dict[str, SkuAvailability] = {}
        self._ttl = get_settings().recommend_stock_ttl_s

    def get(self, sku: str) -> SkuAvailability:
        if sku not in self._seen:
            self._seen[sku] = self._read(sku).where(region=self._region)
        return self._seen[sku]

    def _read(self, sku: str) -> SkuAvailability:
        store, bucket_name = self._view.source
        now = time.monotonic()
        with self._lock:
            cache = self._shared.setdefault(store, {})
            hit = cache.get((bucket_name, sku))
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        availability = self._view.get(sku) or SkuAvailability(sku)
        if self._ttl > 0:
            with self._lock:
                if len(cache) > 100_000:
                    cache.clear()
                cache[(bucket_name, sku)] = (now, availability)
        return availability


class _CatalogSnapshot:
    """Catalog reads kept for ``CATALOG_TTL_S`` per process: products and category listings
    change rarely (a partner's introduction shows within seconds, like the inventory API's
    ``max-age``), while stock is never cached. Kept per object store (weakly: new adapters,
    as in another test, start empty) and bucket."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_store: weakref.WeakKeyDictionary[
            Any, dict[tuple[str, str, str], tuple[float, Any]]
        ] = weakref.WeakKeyDictionary()

    def get(self, catalog: ProductCatalog, kind: str, key: str, load: Callable[[], Any]) -> Any:
        # The catalog's store and bucket say whose products these are.
        owner = getattr(catalog, "_store", catalog)
        slot = (str(getattr(catalog, "_bucket", "")), kind, key)
        now = time.monotonic()
        with self._lock:
            entries = self._by_store.setdefault(owner, {})
            hit = entries.get(slot)
        if hit is not None and now - hit[0] < CATALOG_TTL_S:
            return hit[1]
        value = load()
        with self._lock:
            if len(entries) > 20_000:
                entries.clear()
            entries[slot] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._by_store.clear()


_snapshot = _CatalogSnapshot()


class _ProductCache:
    def __init__(self, catalog: ProductCatalog, region: str) -> None:
        self._catalog, self._region = catalog, region

    def get(self, sku: str) -> ProductIntroduced | None:
        """The product if it is sold in the region."""
        product = _snapshot.get(self._catalog, "product", sku, lambda: self._catalog.get(sku))
        return product if product is not None and self._region in product.regions else None

    def category(self, category: str) -> list[ProductIntroduced]:
        """The region's products of exactly ``category`` (its sub-categories left out)."""
        products = _snapshot.get(self._catalog, "category", category, lambda: self._list(category))
        return [p for p in products if self._region in p.regions]

    def _list(self, category: str) -> list[ProductIntroduced]:
        out: list[ProductIntroduced] = []
        cursor = None
        while len(out) < CATEGORY_SCAN:
            page = self._catalog.list(category_prefix=category, cursor=cursor, limit=200)
            out.extend(p for p in page.items if p.category == category)
            cursor = page.next_cursor
            if cursor is None:
                break
        return out


class _Describer:
    def __init__(self, query: RecommendQuery, accept_language: str | None, now: datetime) -> None:
        self.query, self.accept_language, self.now = query, accept_language, now
        self.currency = currency_for(query.region, query.currency)

    def __call__(
        self,
        product: ProductIntroduced,
        availability: SkuAvailability,
        basis: Basis,
        reason: str,
        scores: Scores | None = None,
    ) -> RecommendedItem:
        locale = negotiate(
            self.accept_language, self.query.lang, set(product.names), product.default_locale
        )
        localized = price_in(product.prices, self.currency)
        note = None if localized.available else f"The product has no price in {self.currency}"
        as_of = availability.as_of
        age = None if as_of is None else max(0, int((self.now - as_of).total_seconds()))
        return RecommendedItem(
            sku=product.sku,
            locale=locale,
            name=product.names[locale],
            category=product.category,
            brand=product.brand,
            price=Price(currency=self.currency, amount=localized.amount, note=note),
            available=availability.available,
            stock_as_of=as_of,
            stock_age_seconds=age,
            basis=basis,
            reason=reason,
            scores=scores,
        )


def _complements(
    model: CrossSellModel, sku: str, limits: Thresholds, strategy: Strategy
) -> Iterator[Complement]:
    """Every complement of ``sku`` that passes the thresholds, ranked by ``strategy`` over all of
    them (not a re-ranking of some other order's head), produced lazily: the caller stops once
    its list is full of items in stock."""
    return model.iter_complements(
        sku,
        by=strategy,
        min_support=limits.min_support,
        min_count=limits.min_count,
        min_lift=limits.min_lift,
    )


def _top_items(model: Any, skus: Iterable[str], k: int) -> dict[str, int]:
    wanted = list(skus)
    if not wanted:
        return {}
    out: dict[str, int] = {}
    for entry in model.top_items(k, skus=wanted):
        if isinstance(entry, tuple):
            sku, count = entry[0], entry[1]
        else:
            sku = entry.sku
            count = getattr(entry, "count", None)
            if count is None:
                count = model.item_count(sku)
        out[str(sku)] = int(count)
    return out


def _cross_reason(c: Any) -> str:
    return f"bought together in {c.confidence:.1%} of baskets with this item, lift {c.lift:.1f}"


def _scores(c: Any) -> Scores:
    return Scores(support=c.support, confidence=c.confidence, lift=c.lift, pair_count=c.pair_count)


# --- the A/B report's inputs -------------------------------------------------------------------

REPORT_TOPICS = ("recommendations.events", "sales.order-completed")


def experiment_report(
    source: Literal["archive", "topics"] = "archive",
    *,
    experiment: str | None = None,
    window: timedelta | None = None,
) -> list[VariantReport]:
    """The per-variant report from the event archive (bucket ``events-archive``, every hour ever
    archived: the default) or from what the topics still hold (``topics``: their retention)."""
    shown: list[RecommendationShown] = []
    clicked: list[RecommendationClicked] = []
    orders: list[OrderCompleted] = []
    sinks: dict[str, list[Any]] = {
        RecommendationShown.ce_type: shown,
        RecommendationClicked.ce_type: clicked,
        OrderCompleted.ce_type: orders,
    }
    models = {m.ce_type: m for m in (RecommendationShown, RecommendationClicked, OrderCompleted)}
    lines = _archived(REPORT_TOPICS) if source == "archive" else _on_topics(REPORT_TOPICS)
    seen: set[tuple[str, str]] = set()
    for ce_type, ce_source, ce_id, data in lines:
        if ce_type not in sinks or (ce_source, ce_id) in seen:
            continue  # another type, or a redelivered duplicate
        seen.add((ce_source, ce_id))
        sinks[ce_type].append(models[ce_type].model_validate(data))
    configured = experiments()
    pairs = [(e.name, v.name) for e in configured.experiments for v in e.variants]
    return report(shown, clicked, orders, experiment=experiment, window=window, variants=pairs)


def _archived(topics: Iterable[str]) -> Iterator[tuple[str, str, str, Any]]:
    from shared.platform.adapters import bucket, get_store
    from shared.platform.archive import PREFIX, read_lines

    store, archive = get_store(), bucket("events-archive")
    for topic in topics:
        for info in store.list(archive, f"{PREFIX}{topic}/"):
            if not info.key.endswith(".ndjson.gz"):
                continue
            with store.open(archive, info.key) as (_, stream):
                for line in read_lines(stream):
                    if "type" in line and "data" in line:
                        yield line["type"], line.get("source", ""), line.get("id", ""), line["data"]


def _on_topics(topics: Iterable[str]) -> Iterator[tuple[str, str, str, Any]]:
    from events.envelope import InvalidEvent, from_kafka
    from shared.platform.adapters import get_bus

    bus = get_bus()
    for topic in topics:
        for r in bus.read_all(topic):
            try:
                event = from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
            except InvalidEvent:
                continue  # a bad record is the dead letter's business, not the report's
            yield event.type, event.source, event.id, event.data.model_dump(mode="json")
