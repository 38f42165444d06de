"""Cross-sell end to end, from the project's serverless.yaml: orders go to sales.order-completed,
archive_events writes them to the event archive, the object write triggers recalc_cross_sell,
which folds them into a new model version; recommend then offers the yoga mat with yoga pants
while a partner has mats in stock in the region, and drops it as soon as the partner reports
zero. On the embedded default and on Tansu + moto server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from events.envelope import from_kafka, new_event
from events.sales import OrderCompleted, OrderLine
from shared.crosssell import CrossSellStore
from shared.platform.adapters import get_bus
from shared.platform.auth import dev_api_key
from shared.platform.publisher import publish_many
from shared.runtime.app import Runtime
from shared.runtime.config import load_service
from tests.e2e.conftest import Stack, deployed, eventually
from tests.e2e.test_partner_inventory import Client, product

REPO = Path(__file__).resolve().parents[2]

PRODUCTS = {
    "acme": product(
        "YOGA-MAT-4MM",
        "YM-4MM",
        {"en-US": "Yoga mat 4 mm", "de-DE": "Yogamatte 4 mm"},
        ["eu", "asia"],
        {"EUR": "36.95", "JPY": "5900"},
        "sports/yoga/mats",
    ),
    "globex": product(
        "YOGA-PANTS-M",
        "GX-PANTS-M",
        {"en-US": "Yoga pants M", "de-DE": "Yogahose M"},
        ["eu", "asia"],
        {"EUR": "49.00", "JPY": "7800"},
        "sports/yoga/apparel",
    ),
    "initech": product(
        "YOGA-BLOCK",
        "IN-BLOCK",
        {"en-US": "Yoga block", "de-DE": "Yogablock"},
        ["eu", "asia"],
        {"EUR": "12.50", "JPY": "1900"},
        "sports/yoga/props",
    ),
}
PARTNER_SKU = {"acme": "YM-4MM", "globex": "GX-PANTS-M", "initech": "IN-BLOCK"}


@pytest.fixture
def runtime(stack: Stack) -> Iterator[Runtime]:
    rt = Runtime(
        deployed(load_service(REPO / "serverless.yaml", stage="local")), port=0, provision=False
    )
    rt.start()
    assert rt.wait_ready(60)
    yield rt
    rt.stop()


def orders() -> list[Any]:
    """30 eu baskets: pants with the mat in 8 (lift 2.0), pants with the block in 2 (the block
    is in 4 baskets: lift 1.5), and other baskets."""
    baskets = (
        [["YOGA-PANTS-M", "YOGA-MAT-4MM"]] * 8
        + [["YOGA-PANTS-M", "YOGA-BLOCK"]] * 2
        + [["YOGA-MAT-4MM"]] * 4
        + [["YOGA-BLOCK"]] * 2
        + [["GREEN-TEA-50G"]] * 14
    )
    now = datetime.now(UTC)
    return [
        new_event(
            OrderCompleted(
                order_id=f"ORD-E2E-{n:03d}",
                customer_id=f"M-{n}",
                channel="web",
                region="eu",
                country="DE",
                currency="EUR",
                completed_at=now,
                lines=tuple(
                    OrderLine(sku=sku, quantity=Decimal(1), unit_price=Decimal("10.00"))
                    for sku in basket
                ),
            ),
            source="/shops/web",
        )
        for n, basket in enumerate(baskets)
    ]


def report_stock(api: Client, partner: str, on_hand: int, sequence: int) -> None:
    status, _, answer = api.call(
        "POST",
        f"/v1/partners/{partner}/stock",
        {
            "lines": [
                {
                    "partner_sku": PARTNER_SKU[partner],
                    "location_id": "BERLIN-1",
                    "region": "eu",
                    "on_hand": on_hand,
                    "sequence": sequence,
                }
            ]
        },
        {"X-API-Key": dev_api_key(partner)},
    )
    assert status == 202, answer


def test_orders_fold_into_the_model_and_recommend_follows_the_partners_stock(
    stack: Stack, runtime: Runtime
) -> None:
    api = Client(runtime.port)
    for partner, body in PRODUCTS.items():
        status, _, answer = api.call(
            "POST", f"/v1/partners/{partner}/products", body, {"X-API-Key": dev_api_key(partner)}
        )
        assert status in (200, 201), answer
        report_stock(api, partner, 10, sequence=1)

    publish_many(orders())
    folded = eventually(
        lambda: (
            (m := CrossSellStore().current()) is not None
            and m.region("eu").basket_count == 30
            and m
        ),
        timeout_s=60,
        interval_s=0.5,
    )
    assert folded.region("eu").pair_count("YOGA-PANTS-M", "YOGA-MAT-4MM") == 8

    def recommended(lang: str = "de-DE") -> dict[str, Any] | None:
        status, _headers, body = api.call(
            "GET",
            "/v1/recommendations/YOGA-PANTS-M?region=eu&user=M-7",
            headers={"Accept-Language": lang},
        )
        assert status == 200, body
        return body

    answer = eventually(
        lambda: (
            (doc := recommended())
            and doc["cross_sell"]
            and doc["cross_sell"][0]["sku"] == "YOGA-MAT-4MM"
            and doc
        ),
        timeout_s=30,
    )
    mat = answer["cross_sell"][0]
    assert (mat["name"], mat["price"]["amount"], mat["available"]) == (
        "Yogamatte 4 mm",
        "36.95",
        10,
    )
    # 8 of the 10 pants baskets hold the mat, which is in 12 of 30 baskets: lift 2.0
    assert mat["reason"] == "bought together in 80.0% of baskets with this item, lift 2.0"
    assert answer["cold_start"] is False and answer["experiment"] == "xsell-ranking"

    report_stock(api, "acme", 0, sequence=2)
    gone = eventually(
        lambda: (
            (doc := recommended())
            and "YOGA-MAT-4MM" not in [i["sku"] for i in doc["cross_sell"]]
            and doc
        ),
        timeout_s=30,
    )
    assert [i["sku"] for i in gone["cross_sell"]] == ["YOGA-BLOCK"]

    def shown() -> list[Any]:
        return [
            e.data
            for e in (
                from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
                for r in get_bus().read_all("recommendations.events", timeout_s=1)
            )
            if e.data.request_id == answer["request_id"]
        ]

    announced = eventually(shown, timeout_s=20)
    assert announced[0].recommended_skus[0] == "YOGA-MAT-4MM"
    assert (announced[0].user_id, announced[0].variant) == ("M-7", answer["variant"])
