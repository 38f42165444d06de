"""GET /v1/recommendations/{sku} through the runtime's HTTP server, against a bare
functions-framework function on the same uvicorn settings, in one run.

    .venv/bin/python -m bench.recommend [--requests 3000] [--concurrency 16] [--orders 5000]

Set-up (embedded adapters in a temporary data folder, as ``retailfn up`` runs by default): a
catalog of ``--products`` products in categories of 20 (names in en-US, de-DE, ja-JP; prices
in EUR and JPY), every one in stock in ``eu`` at one location, and a co-occurrence model folded
by the real path: ``--orders`` synthetic orders (fixed seed, Zipf-like popularity, 2 to 6 lines)
published to ``sales.order-completed``, archived by ``archive_events``, folded by
``CrossSellStore.fold_archive_object`` (what ``recalc_cross_sell`` calls).

* ``runtime``: :class:`~shared.runtime.server.HttpServer` over ``build_http_app`` with
  ``recommend`` from ``serverless.yaml``. Per request: route, parse the query, read the model
  pointer and manifest, the region model (cached: versions are immutable), the item, its
  complements' products and availability until the list is full, the category (up-sell),
  localize, answer, then publish ``recommendation.shown`` (two events, fsync'd) after the body
  is sent. Logging at WARNING (no access log).
* ``bare``: :func:`bare_recommend` (``functions_framework.aio.http``) on the same ``HttpServer``:
  parses the same query with the same ``RecommendQuery`` model and answers a fixed JSON document.

The load is a separate process: an asyncio client writing raw HTTP/1.1 GETs over keep-alive
connections on 127.0.0.1, ``--concurrency`` connections sharing ``--requests`` requests, after a
warm-up. Bare runs first and last, so that drift of a shared machine shows. Prints requests/s,
p50 and p99 per server and the ratio runtime/bare.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import functions_framework.aio as ff
from starlette.requests import Request
from starlette.responses import Response

from bench.loadgen import measure, serve
from shared.crosssell.recommendations import RecommendQuery

WARMUP = 300
SKU = "SKU-00000"
QUERY = "region=eu&lang=de-DE&user=M-40017"
_FIXED = json.dumps({"sku": SKU, "cross_sell": [], "up_sell": []}).encode()


@ff.http
async def bare_recommend(request: Request) -> Response:
    """The baseline: the same query model, a fixed answer."""
    RecommendQuery.model_validate(dict(request.query_params))
    return Response(_FIXED, media_type="application/json")


# --- the data ---------------------------------------------------------------------------------


def seed(products: int, orders: int) -> str:
    """Catalog, stock and a folded model in the current data folder; the model version."""
    from events.envelope import new_event
    from events.inventory import ProductIntroduced
    from events.sales import OrderCompleted, OrderLine
    from functions.archive_events.main import archive_events
    from shared.crosssell import CrossSellStore
    from shared.integration.bus.port import TopicPartition
    from shared.inventory import AvailabilityView, ProductCatalog
    from shared.inventory.rules import NormalizedReport
    from shared.platform.adapters import bucket, get_bus, get_store
    from shared.platform.publisher import publish_many
    from shared.runtime.app import provision
    from shared.runtime.kafka_trigger import batch_event

    provision(get_bus(), get_store())
    catalog, view = ProductCatalog(), AvailabilityView()
    now = datetime.now(UTC)
    rng = random.Random(20261127)
    skus = [f"SKU-{n:05d}" for n in range(products)]
    for n, sku in enumerate(skus):
        catalog.put(
            ProductIntroduced(
                sku=sku,
                partner_id="acme",
                partner_sku=sku.lower(),
                category=f"bench/c{n // 20:03d}",
                regions=("eu", "asia"),
                default_locale="en-US",
                names={"en-US": f"Item {n}", "de-DE": f"Artikel {n}", "ja-JP": f"商品 {n}"},
                prices={"EUR": Decimal(10 + n % 40), "JPY": Decimal(1500 + 100 * (n % 40))},
                attributes={"size": "M" if n % 2 else "L", "upsell_match": "size"},
                rating=Decimal(rng.randint(30, 50)) / 10,
                introduced_at=now,
            )
        )
        view.apply(
            sku,
            NormalizedReport(
                partner_id="acme",
                location_id="BERLIN-1",
                region="eu",
                on_hand=rng.randint(1, 50),
                reserved=0,
                incoming=0,
                unit="each",
                reported_at=now,
            ),
        )
    weights = [1 / (rank + 1) for rank in range(products)]
    events = []
    for n in range(orders):
        basket = set(rng.choices(skus, weights, k=rng.randint(2, 6)))
        if n % 3 == 0:
            basket |= {SKU, skus[1 + n % 8]}  # the benchmarked item has complements
        events.append(
            new_event(
                OrderCompleted(
                    order_id=f"ORD-{n:06d}",
                    channel="web",
                    region="eu",
                    country="DE",
                    currency="EUR",
                    completed_at=now,
                    lines=tuple(
                        OrderLine(sku=s, quantity=Decimal(1), unit_price=Decimal(10))
                        for s in sorted(basket)
                    ),
                ),
                source="/bench",
            )
        )
    publish_many(events)
    by_partition: dict[int, list[Any]] = {}
    for record in get_bus().read_all("sales.order-completed"):
        by_partition.setdefault(record.partition, []).append(record)
    for partition, records in by_partition.items():
        archive_events(batch_event(TopicPartition("sales.order-completed", partition), records))
    crosssell = CrossSellStore()
    archive = bucket("events-archive")
    for info in get_store().list(archive, "events/sales.order-completed/"):
        crosssell.fold_archive_object(archive, info.key, info.etag)
    model = crosssell.current()
    assert model is not None
    return model.version


def runtime_app() -> Any:
    from shared.runtime.config import load_service
    from shared.runtime.http import build_http_app
    from shared.runtime.loader import load_function

    service = load_service(Path(__file__).parent.parent / "serverless.yaml", env={})
    os.environ.update(service.environment_for("recommend"))  # as the runtime does
    logging.getLogger("retailfn.http").disabled = True  # "function ... is not served", once
    app = build_http_app(
        service, {"recommend": load_function("recommend", service.functions["recommend"].handler)}
    )
    logging.getLogger("retailfn.http").disabled = False
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--products", type=int, default=400)
    parser.add_argument("--orders", type=int, default=5000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="retailfn-bench-recommend-"))
    for name in [n for n in os.environ if n.startswith("RETAILFN_")]:
        del os.environ[name]
    os.environ["RETAILFN_DATA_DIR"] = str(tmp)
    logging.basicConfig(level="WARNING")
    started = time.perf_counter()
    version = seed(args.products, args.orders)
    seeded_s = time.perf_counter() - started

    from shared.platform.adapters import get_bus
    from shared.runtime.loader import load_function

    bare = load_function("bare_recommend", "bench.recommend:bare_recommend").asgi_app()
    runtime = runtime_app()
    n, c = args.requests, args.concurrency

    def load(port: int) -> dict[str, Any]:
        request = (
            f"GET /v1/recommendations/{SKU}?{QUERY} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        return measure(port, request, n, c, min(WARMUP, n))

    shown_before = len(get_bus().read_all("recommendations.events"))
    results: dict[str, dict[str, Any]] = {}
    results["bare (first)"] = serve(bare, load)
    results["runtime recommend"] = serve(runtime, load)
    results["runtime recommend"]["published"] = (
        len(get_bus().read_all("recommendations.events")) - shown_before
    )
    results["bare (last)"] = serve(bare, load)

    print(
        f"GET /v1/recommendations/{SKU}?{QUERY}, {n} requests, concurrency {c}, after "
        f"{min(WARMUP, n)} warm-up requests; {args.products} products, {args.orders} orders "
        f"folded (model {version}, seeded in {seeded_s:.1f} s); {os.cpu_count()} CPUs shared "
        f"with the client, load average {os.getloadavg()[0]:.1f}"
    )
    base = (results["bare (first)"]["rps"] + results["bare (last)"]["rps"]) / 2
    print(f"{'server':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}  statuses")
    for label, r in results.items():
        events = f", {r['published']} shown events" if "published" in r else ""
        print(
            f"{label:<22}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['rps'] / base:>9.2f}  {r['statuses']}{events}"
        )
    rt = results["runtime recommend"]
    print(
        f"summary: recommend {rt['rps']:.0f} req/s p99 {rt['p99_ms']:.1f} ms vs bare "
        f"{base:.0f} req/s p99 {results['bare (last)']['p99_ms']:.1f} ms; ratio "
        f"{rt['rps'] / base:.3f}"
    )
    print(f"(data in {tmp})")


if __name__ == "__main__":
    main()
