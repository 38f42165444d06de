"""recalc_cross_sell through its entry point: incremental folds equal a rebuild, exactly once."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from events.envelope import new_event, to_kafka
from events.sales import OrderCompleted
from functions.archive_events.main import archive_events
from functions.recalc_cross_sell.main import recalc_cross_sell
from shared.crosssell import CrossSellStore
from shared.integration.bus.port import Record, TopicPartition
from shared.platform.adapters import bucket, get_bus, get_store
from shared.runtime.app import provision
from shared.runtime.cos_trigger import cos_event
from shared.runtime.kafka_trigger import batch_event

T0 = datetime(2026, 11, 27, 8, tzinfo=UTC)
SKUS = [
    "YOGA-PANTS-M",
    "YOGA-MAT-4MM",
    "WATER-BOTTLE",
    "SAFFRON-1G",
    "RISOTTO-RICE",
    "PARMESAN-200G",
    "BLOCK-CORK",
    "STRAP-COTTON",
]


@pytest.fixture(autouse=True)
def _provisioned() -> None:
    provision(get_bus(), get_store())


def order(n: int, skus: list[str], region: str = "na") -> OrderCompleted:
    return OrderCompleted.model_validate(
        {
            "order_id": f"ORD-{n:06d}",
            "channel": "web",
            "region": region,
            "country": "US" if region == "na" else "DE",
            "currency": "USD",
            "completed_at": (T0 + timedelta(minutes=n)).isoformat(),
            "lines": [{"sku": s, "quantity": "1", "unit_price": "10.00"} for s in skus],
        }
    )


def records(
    topic: str, partition: int, orders: list[OrderCompleted], start: int = 0, id_prefix: str = "e-"
) -> list[Record]:
    out = []
    for i, payload in enumerate(orders):
        key, value, headers = to_kafka(
            new_event(payload, source="/test/shop", id=f"{id_prefix}{start + i}")
        )
        out.append(
            Record(
                topic,
                partition,
                start + i,
                key,
                value,
                tuple(headers),
                int(T0.timestamp() * 1000) + start + i,
            )
        )
    return out


def random_orders(n: int, seed: int = 1) -> list[OrderCompleted]:
    rng = random.Random(seed)
    return [
        order(i, rng.sample(SKUS, rng.randint(1, 4)), rng.choice(["na", "eu"])) for i in range(n)
    ]


def archive(
    topic: str,
    partition: int,
    orders: list[OrderCompleted],
    start: int = 0,
    batch: list[Record] | None = None,
) -> str:
    """Archive one batch through archive_events; the object key it wrote."""
    before = {i.key for i in get_store().list(bucket("events-archive"))}
    archive_events(
        batch_event(
            TopicPartition(topic, partition), batch or records(topic, partition, orders, start)
        )
    )
    after = {i.key: i for i in get_store().list(bucket("events-archive"))}
    [key] = set(after) - before or [k for k in after if f"+{partition}+{start:010d}" in k]
    return key


def notify(key: str) -> None:
    info = get_store().head(bucket("events-archive"), key)
    recalc_cross_sell(cos_event(info.bucket, key, "write", info.etag, info.size, info.content_type))


def region_bytes(version: str) -> dict[str, bytes]:
    models = CrossSellStore().version(version)
    return {r: models.region_bytes(r) for r in models.regions}


def test_incremental_folds_equal_a_rebuild_byte_for_byte() -> None:
    orders = random_orders(120)
    keys = [
        archive("sales.order-completed", 0, orders[:50], 0),
        archive("sales.order-completed", 1, orders[50:90], 0),
        archive("pos.checkout-completed", 2, orders[90:], 0),
    ]
    for key in reversed(keys):
        notify(key)
    folded = CrossSellStore().current()
    assert folded is not None and set(folded.folded) == set(keys)
    assert folded.region("na").basket_count + folded.region("eu").basket_count == 120

    rebuilt = CrossSellStore().rebuild()
    assert region_bytes(rebuilt) == region_bytes(folded.version)
    assert CrossSellStore().current().version == rebuilt


def test_the_same_object_event_twice_changes_nothing() -> None:
    key = archive("sales.order-completed", 0, random_orders(20))
    notify(key)
    first = CrossSellStore().current()
    notify(key)
    again = CrossSellStore().current()
    assert again.version == first.version
    assert (
        CrossSellStore().fold_archive_object(
            bucket("events-archive"), key, get_store().head(bucket("events-archive"), key).etag
        )
        == "already_folded"
    )


def test_a_larger_rewrite_of_the_same_object_counts_only_the_new_orders() -> None:
    orders = random_orders(30)
    key = archive("sales.order-completed", 0, orders[:20])
    notify(key)
    assert archive("sales.order-completed", 0, orders) == key  # redelivered, larger batch
    notify(key)
    models = CrossSellStore().current()
    assert models.region("na").basket_count + models.region("eu").basket_count == 30
    rebuilt = CrossSellStore().rebuild()
    assert region_bytes(rebuilt) == region_bytes(models.version)


def test_the_model_learns_that_yoga_pants_go_with_a_yoga_mat() -> None:
    baskets = (
        [["YOGA-PANTS-M", "YOGA-MAT-4MM"]] * 8
        + [["YOGA-PANTS-M", "SAFFRON-1G"]] * 2
        + [["SAFFRON-1G", "RISOTTO-RICE"]] * 10
    )
    notify(archive("sales.order-completed", 4, [order(i, b) for i, b in enumerate(baskets)]))
    na = CrossSellStore().current().region("na")
    best = na.complements("YOGA-PANTS-M", 3)[0]
    assert (best.sku, best.pair_count, best.confidence) == ("YOGA-MAT-4MM", 8, 0.8)
    assert CrossSellStore().current().region("au").basket_count == 0


def test_deletes_and_other_topics_are_ignored() -> None:
    key = archive("sales.order-completed", 0, random_orders(5))
    info = get_store().head(bucket("events-archive"), key)
    recalc_cross_sell(cos_event(info.bucket, key, "delete", info.etag))
    recalc_cross_sell(
        cos_event(
            info.bucket,
            "events/inventory.stock-changed/date=2026-11-27/"
            "hour=08/inventory.stock-changed+0+0000000000.ndjson.gz",
            "write",
            "abc",
        )
    )
    assert CrossSellStore().current() is None


def test_the_manifest_says_what_the_version_holds() -> None:
    key = archive("sales.order-completed", 0, random_orders(10))
    notify(key)
    models = CrossSellStore().current()
    raw = json.loads(
        get_store().get(bucket("state"), f"crosssell/versions/{models.version}/manifest.json").body
    )
    assert raw["kind"] == "fold" and raw["parent"] is None
    assert raw["folded"] == {key: get_store().head(bucket("events-archive"), key).etag}
    assert raw["offsets"] == {"sales.order-completed+0": [[0, 9]]}
    assert set(raw["regions"]) <= {"na", "eu"}


def test_pruning_keeps_the_current_model_whole_and_deletes_older_versions() -> None:
    # three folds, each touching only one region: the newest version still points at the
    # "eu" model an older version wrote, which pruning must keep
    a, b, c = SKUS[:3]
    notify(archive("sales.order-completed", 0, [order(1, [a, b], "eu")], 0))
    notify(archive("sales.order-completed", 1, [order(2, [a, c], "na")], 0))
    notify(archive("sales.order-completed", 2, [order(3, [b, c], "na")], 0))
    store = CrossSellStore()
    before = store.current()
    assert before is not None
    expected = region_bytes(before.version)

    removed = store.prune(keep=1, grace=timedelta(0))

    assert len(removed) == 2 and before.version not in removed
    assert region_bytes(store.current().version) == expected
    left = {i.key.split("/")[2] for i in get_store().list(bucket("state"), "crosssell/versions/")}
    assert left == {before.version, before.manifest.regions["eu"].object.split("/")[2]}


def basket_total(version: str | None = None) -> float:
    models = CrossSellStore().current() if version is None else CrossSellStore().version(version)
    assert models is not None
    return sum(models.region(r).basket_count for r in models.regions)


def republish(orders: list[OrderCompleted], how: str) -> str:
    """The same orders published again, archived; the key of the copies' archive object."""
    if how == "same event id":  # the producer retried: same events, later offsets
        batch = [
            Record(
                r.topic,
                r.partition,
                r.offset + 100,
                r.key,
                r.value,
                r.headers,
                r.timestamp_ms + 100,
            )
            for r in records("sales.order-completed", 0, orders)
        ]
        return archive("sales.order-completed", 0, [], batch=batch)
    if how == "new event id":  # published again as new events
        batch = records("sales.order-completed", 1, orders, start=0, id_prefix="again-")
        return archive("sales.order-completed", 1, [], batch=batch)
    return archive("pos.checkout-completed", 0, orders)  # the store's POS published it too


@pytest.mark.parametrize("how", ["same event id", "new event id", "also on pos.checkout-completed"])
def test_a_republished_order_is_counted_once_in_folds_and_in_a_rebuild(how: str) -> None:
    orders = random_orders(40)
    notify(archive("sales.order-completed", 0, orders))
    first = CrossSellStore().current()
    copies = republish(orders[:10], how)

    notify(copies)

    folded = CrossSellStore().current()
    assert folded.version != first.version and copies in folded.folded  # seen, not counted
    assert basket_total() == 40
    assert region_bytes(folded.version) == region_bytes(first.version)
    rebuilt = CrossSellStore().rebuild()
    assert basket_total(rebuilt) == 40
    assert region_bytes(rebuilt) == region_bytes(folded.version)


def test_copies_folded_before_the_original_count_the_order_once_too() -> None:
    orders = random_orders(30)
    pos = archive("pos.checkout-completed", 3, orders[10:])
    web = archive("sales.order-completed", 0, orders)
    notify(pos)
    notify(web)
    assert basket_total() == 30
    assert region_bytes(CrossSellStore().rebuild()) == region_bytes(
        CrossSellStore().current().version
    )


def test_copies_of_an_order_within_one_object_count_once() -> None:
    orders = random_orders(10)
    notify(archive("sales.order-completed", 0, [*orders, *orders[:4], orders[0]]))
    assert basket_total() == 10
    assert region_bytes(CrossSellStore().rebuild()) == region_bytes(
        CrossSellStore().current().version
    )


def test_when_copies_of_an_order_differ_the_first_one_counts() -> None:
    original = order(1, ["YOGA-PANTS-M", "YOGA-MAT-4MM"])
    changed = order(1, ["YOGA-PANTS-M", "SAFFRON-1G"])
    notify(archive("sales.order-completed", 0, [original]))
    notify(archive("sales.order-completed", 0, [changed], start=1))

    for version in (CrossSellStore().current().version, CrossSellStore().rebuild()):
        na = CrossSellStore().version(version).region("na")
        assert na.basket_count == 1
        assert na.pair_count("YOGA-PANTS-M", "YOGA-MAT-4MM") == 1
        assert na.pair_count("YOGA-PANTS-M", "SAFFRON-1G") == 0


def test_pruning_keeps_the_counted_orders_the_current_version_shares_with_its_parent() -> None:
    orders = random_orders(12)
    notify(archive("sales.order-completed", 0, orders))
    notify(archive("pos.checkout-completed", 0, orders))  # copies only: the orders are shared
    store = CrossSellStore()
    current = store.current()
    assert current.manifest.orders == store.version(current.manifest.parent).manifest.orders

    assert store.prune(keep=1, grace=timedelta(0))

    notify(archive("pos.checkout-completed", 1, orders))
    assert basket_total() == 12
