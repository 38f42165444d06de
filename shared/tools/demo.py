"""``retailfn demo`` (``make run``): the runtime on the embedded default, fed sample traffic.

It starts every function of ``serverless.yaml``, replays ``events/samples`` onto their topics,
then plays a morning of partner traffic the three ways partners send it (HTTP, a file drop, a
Kafka stream), waits until the functions are idle and prints what each one did and the resulting
availability in German and Japanese. Everything goes through the same code paths as production:
real HTTP requests to the runtime's port, real records on the bus, real files in the store.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from events.catalog import TOPICS, topic_for_type
from events.envelope import event_from_sample, new_event, parse_event, to_kafka
from events.registry import EVENT_TYPES
from events.sales import OrderCompleted, OrderLine
from events.samples import load_sample, sample_names
from shared.integration.bus import Record
from shared.inventory import PartnerRegistry
from shared.platform.adapters import bucket, get_bus, get_store
from shared.platform.auth import dev_api_key
from shared.platform.observability import REGISTRY
from shared.runtime.app import Runtime
from shared.runtime.config import ServiceConfig
from shared.runtime.deadletter import DeadLetterStore
from shared.runtime.kafka_trigger import record_to_cloudevent

Echo = Callable[[str], None]

PRODUCTS: dict[str, list[dict[str, Any]]] = {
    "acme": [
        {
            "sku": "YOGA-MAT-4MM",
            "partner_sku": "YM-4MM-PURPLE",
            "category": "sports/yoga/mats",
            "regions": ["eu", "na", "asia"],
            "default_locale": "en-US",
            "names": {
                "en-US": "Yoga mat 4 mm, purple",
                "de-DE": "Yogamatte 4 mm, lila",
                "ja-JP": "ヨガマット 4mm パープル",
            },
            "prices": {"USD": "39.90", "EUR": "36.95", "JPY": "5900"},
            "attributes": {"color": "purple", "thickness_mm": "4"},
            "brand": "Acme Active",
            "rating": "4.6",
        },
        {
            "sku": "YOGA-MAT-6MM-PRO",
            "partner_sku": "YM-6MM-PRO",
            "category": "sports/yoga/mats",
            "regions": ["eu", "na", "asia"],
            "default_locale": "en-US",
            "names": {
                "en-US": "Pro yoga mat 6 mm",
                "de-DE": "Profi-Yogamatte 6 mm",
                "ja-JP": "プロ ヨガマット 6mm",
            },
            "prices": {"USD": "64.00", "EUR": "59.00", "JPY": "9400"},
            "attributes": {"color": "black", "thickness_mm": "6"},
            "brand": "Acme Active",
            "rating": "4.8",
        },
    ],
    "globex": [
        {
            "sku": "YOGA-PANTS-M",
            "partner_sku": "GX-PANTS-M",
            "category": "sports/yoga/apparel",
            "regions": ["eu", "asia"],
            "default_locale": "en-US",
            "names": {
                "en-US": "Yoga pants, size M",
                "de-DE": "Yogahose, Größe M",
                "ja-JP": "ヨガパンツ Mサイズ",
            },
            "prices": {"EUR": "49.00", "JPY": "7800"},
        }
    ],
    "initech": [
        {
            "sku": "YOGA-BLOCK",
            "partner_sku": "IN-BLOCK",
            "category": "sports/yoga/props",
            "regions": ["eu", "asia"],
            "default_locale": "en-US",
            "names": {
                "en-US": "Cork yoga block",
                "de-DE": "Yogablock aus Kork",
                "ja-JP": "コルク製ヨガブロック",
            },
            "prices": {"EUR": "12.50", "JPY": "1900"},
        }
    ],
}


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


def replay_samples(echo: Echo) -> int:
    """Publish every committed sample whose type travels on a topic."""
    bus, count = get_bus(), 0
    for name in sample_names():
        ce_type = load_sample(name).get("type")
        if ce_type not in EVENT_TYPES or ce_type == "com.retailfn.platform.dead-letter.v1":
            continue
        try:
            topic = topic_for_type(ce_type)
        except KeyError:
            continue
        key, value, headers = to_kafka(event_from_sample(name))
        bus.publish(topic, value, key=key, headers=headers)
        count += 1
    echo(f"replayed {count} sample events from events/samples onto their topics")
    return count


def morning_traffic(api: Api, data_dir: Path, echo: Echo) -> None:
    for partner, products in PRODUCTS.items():
        for product in products:
            status, _ = api.call(
                "POST",
                f"/v1/partners/{partner}/products",
                product,
                {"X-API-Key": dev_api_key(partner)},
            )
            echo(f"  POST /v1/partners/{partner}/products {product['sku']} -> {status}")
    # 07:00-11:00: acme reports over HTTP as its stores open and sell; one update arrives late.
    reports = [
        (1, "07:00", {"BERLIN-1": 24, "MUNICH-1": 10, "TOKYO-1": 8}),
        (2, "09:00", {"BERLIN-1": 19, "MUNICH-1": 7, "TOKYO-1": 5}),
        (4, "11:00", {"BERLIN-1": 12, "MUNICH-1": 0, "TOKYO-1": 3}),
        (3, "10:00", {"BERLIN-1": 15, "MUNICH-1": 2, "TOKYO-1": 4}),  # late: must not win
    ]
    regions = {"BERLIN-1": "eu", "MUNICH-1": "eu", "TOKYO-1": "asia"}
    for sequence, hour, levels in reports:
        lines = [
            {
                "partner_sku": "YM-4MM-PURPLE",
                "location_id": loc,
                "region": regions[loc],
                "on_hand": qty,
                "sequence": sequence,
                "reported_at": f"2026-11-27T{hour}:00Z",
            }
            for loc, qty in levels.items()
        ]
        status, _ = api.call(
            "POST",
            "/v1/partners/acme/stock",
            {"lines": lines},
            {"X-API-Key": dev_api_key("acme"), "Idempotency-Key": f"acme-demo-{sequence}"},
        )
        echo(f"  POST /v1/partners/acme/stock sequence {sequence} ({hour}) -> {status}")
    status, _ = api.call(
        "POST",
        "/v1/partners/acme/stock",
        {
            "partner_sku": "YM-6MM-PRO",
            "location_id": "BERLIN-1",
            "region": "eu",
            "on_hand": 6,
            "sequence": 1,
        },
        {"X-API-Key": dev_api_key("acme"), "Idempotency-Key": "acme-demo-pro"},
    )
    echo(f"  POST /v1/partners/acme/stock YM-6MM-PRO -> {status}")
    # globex drops a file, one bad line included
    drop = data_dir / "objects" / bucket("partner-drops") / "globex" / "2026-11-27" / "stock.csv"
    drop.parent.mkdir(parents=True, exist_ok=True)
    drop.write_text(
        "partner_sku,location_id,region,on_hand,reserved,unit,units_per_pack,reported_at\n"
        "GX-PANTS-M,PARIS-1,eu,6,1,pack,4,2026-11-27T08:00:00Z\n"
        "GX-PANTS-M,OSAKA-1,asia,9,0,each,,2026-11-27T08:00:00Z\n"
        "GX-PANTS-M,OSAKA-2,asia,-3,0,each,,2026-11-27T08:00:00Z\n",
        encoding="utf-8",
    )
    echo(f"  dropped {drop.relative_to(data_dir)} (3 lines, one with a negative quantity)")
    # initech streams plain JSON records onto the topic. Its producer is bound to it first: a
    # raw record carries the platform's source for the topic, and here only initech sends those.
    stream = [
        json.dumps(
            {
                "partner_id": "initech",
                "partner_sku": "IN-BLOCK",
                "location_id": location,
                "region": region,
                "on_hand": on_hand,
                "reported_at": "2026-11-27T08:30:00Z",
            }
        ).encode()
        for location, region, on_hand in (("LYON-1", "eu", 14), ("KYOTO-1", "asia", 0))
    ]
    PartnerRegistry().bind("initech", raw_record_source("inventory.stock-reported", stream[0]))
    for value in stream:
        get_bus().publish(
            "inventory.stock-reported", value, key=f"initech:{json.loads(value)['location_id']}"
        )
    echo(
        "  streamed 2 plain JSON records to inventory.stock-reported (initech, its producer "
        "bound with `retailfn partners bind`)"
    )


def raw_record_source(topic: str, value: bytes) -> str:
    """The CloudEvents source a function sees for a plain (not CloudEvents) record ``value`` on
    ``topic``: what a partner streaming plain JSON is bound by."""
    record = Record(topic=topic, partition=0, offset=0, key=None, value=value)
    return parse_event(record_to_cloudevent(record)).source


def a_day_of_orders(echo: Echo, orders: int = 400) -> None:
    """Store and web-shop checkouts in Europe: yoga pants often come with a mat, mats with a
    block. A fixed seed, so every run tells the same story."""
    rng = random.Random(20261127)
    prices = {
        "YOGA-PANTS-M": "49.00",
        "YOGA-MAT-4MM": "36.95",
        "YOGA-BLOCK": "12.50",
        "YOGA-MAT-6MM-PRO": "59.00",
    }
    records = []
    for n in range(orders):
        basket = {rng.choice(["YOGA-PANTS-M", "YOGA-MAT-4MM", "YOGA-BLOCK"])}
        if "YOGA-PANTS-M" in basket and rng.random() < 0.6:
            basket.add("YOGA-MAT-4MM")
        if "YOGA-MAT-4MM" in basket and rng.random() < 0.4:
            basket.add("YOGA-BLOCK")
        if rng.random() < 0.05:
            basket.add("YOGA-MAT-6MM-PRO")
        order = OrderCompleted(
            order_id=f"ORD-DEMO-{n:05d}",
            channel="web",
            region="eu",
            country="DE",
            currency="EUR",
            completed_at=datetime(2026, 11, 26, 8, tzinfo=UTC) + timedelta(minutes=2 * n),
            lines=tuple(
                OrderLine(sku=sku, quantity=Decimal(1), unit_price=Decimal(prices[sku]))
                for sku in sorted(basket)
            ),
        )
        event = new_event(order, source="/shop/web", id=f"demo-order-{n:05d}")
        records.append(to_kafka(event))
    get_bus().publish_many("sales.order-completed", records)
    echo(
        f"published a day of {orders} orders to sales.order-completed (archived, then folded "
        "into the cross-sell model)"
    )


def recommendations(api: Api, echo: Echo) -> None:
    echo("\nrecommendations:")
    for sku, lang in (("YOGA-PANTS-M", "de-DE"), ("YOGA-MAT-4MM", "ja-JP")):
        status, doc = api.call(
            "GET", f"/v1/recommendations/{sku}?region=eu&lang={lang}&user=demo-shopper"
        )
        if status != 200:
            echo(f"  {sku}: {status} {doc.get('detail')}")
            continue
        echo(f"  {sku} ({lang}, variant {doc['variant']}):")
        for kind in ("cross_sell", "up_sell"):
            for item in doc[kind][:3]:
                echo(f"    {kind:<10} {item['sku']:<17} {item['name']:<24} {item['reason']}")


def _counts(metric_name: str, label: str) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    for metric in REGISTRY.collect():
        if metric.name == metric_name:
            for s in metric.samples:
                if s.name.endswith("_total"):
                    key = (s.labels["function"], s.labels[label])
                    counts[key] = counts.get(key, 0) + s.value
    return counts


def _event_counts() -> dict[tuple[str, str], float]:
    return _counts("retailfn_events", "outcome")


def wait_until_idle(quiet_s: float = 3.0, timeout_s: float = 90.0) -> None:
    deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        now = _event_counts()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.25)


def report(api: Api, echo: Echo) -> None:
    echo("\nwhat each function did:")
    by_function: dict[str, dict[str, int]] = {}
    for (function, outcome), n in _event_counts().items():
        if n:
            by_function.setdefault(function, {})[f"events {outcome}"] = int(n)
    for (function, code), n in _counts("retailfn_http_requests", "status").items():
        by_function.setdefault(function, {})[f"HTTP {code}"] = int(n)
    for function, outcomes in sorted(by_function.items()):
        echo(f"  {function:<20} " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    dead = list(DeadLetterStore(get_store(), bucket("dead-letters")).list())
    for d in dead:
        echo(
            f"  dead letter {d.id[:12]} {d.dead_letter.function}: "
            f"{d.dead_letter.error.type}: {d.dead_letter.error.message[:90]}"
        )
    echo("\navailability:")
    for sku in ("YOGA-MAT-4MM", "YOGA-PANTS-M", "YOGA-BLOCK"):
        for region, lang in (("eu", "de-DE"), ("asia", "ja-JP")):
            status, item = api.call("GET", f"/v1/inventory/{sku}?region={region}&lang={lang}")
            if status != 200:
                echo(f"  {sku:<14} {region:<5} {lang}: {status} {item.get('detail')}")
                continue
            price = item["price"]
            echo(
                f"  {sku:<14} {region:<5} {lang}  {item['name']:<26} "
                f"{price['amount'] or '-':>8} {price['currency']}  available {item['available']}"
                f"  (as of {item['as_of']})"
            )


def run_demo(service: ServiceConfig, data_dir: Path, echo: Echo, port: int = 0) -> None:
    runtime = Runtime(service, port=port)
    runtime.start()
    try:
        runtime.wait_ready(60)
        echo(
            f"runtime up on http://127.0.0.1:{runtime.port} (stage {service.stage}, "
            f"data in {data_dir}); {len(service.functions)} functions, "
            f"{len(TOPICS)} topics"
        )
        api = Api(runtime.port)
        echo("\na morning of partner traffic:")
        morning_traffic(api, data_dir, echo)
        replay_samples(echo)
        a_day_of_orders(echo)
        wait_until_idle()
        report(api, echo)
        recommendations(api, echo)
    finally:
        runtime.stop()
