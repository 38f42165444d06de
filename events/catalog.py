"""The topic and bucket catalog: the list that serverless.yaml and infra/ are checked against."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicDef:
    """A Kafka topic: its key, size, retention and the CloudEvents types it carries."""

    name: str
    key: str
    """The payload field(s) the record key is made of, joined with ':' (``partner_id:location_id``).
    Records with one key stay in order, so the key is whatever must not be reordered."""
    partitions: int
    retention_ms: int | None
    """None keeps records forever (compacted topics)."""
    compacted: bool
    event_types: tuple[str, ...]
    description: str

    @property
    def key_fields(self) -> tuple[str, ...]:
        return tuple(self.key.split(":"))

    def key_for(self, payload: BaseModel) -> str:
        """The record key of a payload on this topic."""
        return ":".join(str(getattr(payload, name)) for name in self.key_fields)

    def config(self) -> dict[str, str]:
        """Kafka topic configs, as strings, the way the admin API and Terraform take them."""
        return {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(self.retention_ms) if self.retention_ms is not None else "-1",
        }


@dataclass(frozen=True)
class BucketDef:
    """A logical object-storage bucket; settings map it to a physical name per stage."""

    name: str
    purpose: str


_T = "com.retailfn."

_TOPICS = (
    TopicDef(
        "inventory.stock-reported",
        key="partner_id:location_id",
        partitions=12,
        retention_ms=7 * DAY_MS,
        compacted=False,
        event_types=(_T + "inventory.stock-reported.v1",),
        description="Partners' stock reports, from HTTP posts, file drops and partners' own "
        "producers (raw JSON accepted: the topic carries one type).",
    ),
    TopicDef(
        "inventory.stock-changed",
        key="sku:location_id",
        partitions=12,
        retention_ms=7 * DAY_MS,
        compacted=False,
        event_types=(
            _T + "inventory.stock-changed.v1",
            _T + "inventory.out-of-stock.v1",
            _T + "inventory.back-in-stock.v1",
        ),
        description="Changes of the availability view. One topic so that out-of-stock and "
        "back-in-stock stay in order with the changes of the same SKU and location.",
    ),
    TopicDef(
        "catalog.product-introduced",
        key="sku",
        partitions=6,
        retention_ms=None,
        compacted=True,
        event_types=(_T + "catalog.product-introduced.v1",),
        description="Products partners introduce; compacted, so it is also the current catalog.",
    ),
    TopicDef(
        "sales.order-completed",
        key="order_id",
        partitions=12,
        retention_ms=30 * DAY_MS,
        compacted=False,
        event_types=(_T + "sales.order-completed.v1",),
        description="Completed orders from every channel; archived baskets feed cross-sell.",
    ),
    TopicDef(
        "pos.checkout-completed",
        key="order_id",
        partitions=6,
        retention_ms=7 * DAY_MS,
        compacted=False,
        event_types=(_T + "sales.order-completed.v1",),
        description="Checkouts straight from the stores' POS, with the coupons presented; "
        "redeem_coupon consumes it. Same type as sales.order-completed, which stays its home.",
    ),
    TopicDef(
        "analytics.slow-mover-detected",
        key="sku",
        partitions=3,
        retention_ms=30 * DAY_MS,
        compacted=False,
        event_types=(_T + "analytics.slow-mover-detected.v1",),
        description="Stock that moves slower than expected; campaigns are built from it.",
    ),
    TopicDef(
        "loyalty.campaign-created",
        key="campaign_id",
        partitions=3,
        retention_ms=365 * DAY_MS,
        compacted=False,
        event_types=(_T + "loyalty.campaign-created.v1",),
        description="Campaigns (in-store events with a recipe, coupon rule and target segment).",
    ),
    TopicDef(
        "loyalty.coupon-issued",
        key="coupon_id",
        partitions=6,
        retention_ms=365 * DAY_MS,
        compacted=False,
        event_types=(_T + "loyalty.coupon-issued.v1",),
        description="Coupons issued to members.",
    ),
    TopicDef(
        "loyalty.coupon-redeemed",
        key="coupon_id",
        partitions=6,
        retention_ms=365 * DAY_MS,
        compacted=False,
        event_types=(
            _T + "loyalty.coupon-redeemed.v1",
            _T + "loyalty.coupon-redemption-rejected.v1",
            _T + "loyalty.coupon-voided.v1",
        ),
        description="Every outcome of a coupon after issue. One topic keyed by coupon so a void "
        "and a redemption of the same coupon are seen in order, and the ERP feedback reads one "
        "topic for issued-vs-redeemed.",
    ),
    TopicDef(
        "trends.trend-observed",
        key="region",
        partitions=3,
        retention_ms=90 * DAY_MS,
        compacted=False,
        event_types=(_T + "trends.trend-observed.v1",),
        description="Social trend signals per region.",
    ),
    TopicDef(
        "recommendations.events",
        key="request_id",
        partitions=6,
        retention_ms=30 * DAY_MS,
        compacted=False,
        event_types=(
            _T + "recommendations.recommendation-shown.v1",
            _T + "recommendations.recommendation-clicked.v1",
        ),
        description="Recommendations shown and clicked, keyed by request so a click follows "
        "its impression; the A/B analysis joins them.",
    ),
    TopicDef(
        "platform.dead-letter",
        key="function",
        partitions=3,
        retention_ms=30 * DAY_MS,
        compacted=False,
        event_types=(_T + "platform.dead-letter.v1",),
        description="Events functions gave up on, with error and attempts; replayable. "
        "The dead-letters bucket keeps a copy beyond the retention.",
    ),
)

TOPICS: dict[str, TopicDef] = {topic.name: topic for topic in _TOPICS}
"""Topic name -> definition. Catalog order matters: a type's first topic is its primary one."""

BUCKETS: dict[str, BucketDef] = {
    bucket.name: bucket
    for bucket in (
        BucketDef(
            "partner-drops",
            "Partners' stock files ({partner}/*.csv|json); a write triggers ingest_stock_file.",
        ),
        BucketDef(
            "events-archive",
            "Every topic archived as {topic}/date=/hour=/"
            "{topic}+{partition}+{startOffset}.ndjson.gz: the historical data.",
        ),
        BucketDef(
            "state",
            "The availability view, cross-sell model, coupon ledger and "
            "idempotency records, under conditional writes.",
        ),
        BucketDef("erp-exports", "Redemption feedback and campaign metrics for the ERP."),
        BucketDef("dead-letters", "Dead-lettered events kept for inspection and replay."),
    )
}

# Types that arrive by bucket notification, not on a topic.
NOT_ON_A_TOPIC: frozenset[str] = frozenset({_T + "platform.object-changed.v1"})


def types_on_topic(topic: str) -> tuple[str, ...]:
    """The CloudEvents types a topic carries; KeyError for an unknown topic."""
    try:
        return TOPICS[topic].event_types
    except KeyError:
        raise KeyError(f"unknown topic {topic!r}") from None


def topic_for_type(ce_type: str) -> str:
    """The primary topic of a CloudEvents type: where it is published by default."""
    for topic in TOPICS.values():
        if ce_type in topic.event_types:
            return topic.name
    raise KeyError(f"no topic carries {ce_type!r}")
