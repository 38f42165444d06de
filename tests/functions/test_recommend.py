"""recommend and record_click through the runtime's HTTP app on the embedded adapters, with a
co-occurrence model built by shared.crosssell.rules.cooccurrence from hand-made baskets."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from events.envelope import Event, from_kafka, new_event
from events.inventory import ProductIntroduced
from events.sales import OrderCompleted, OrderLine
from functions.archive_events.main import archive_events
from shared.crosssell import CrossSellStore
from shared.crosssell.recommendations import experiment_report
from shared.crosssell.rules.cooccurrence import Baskets, CrossSellModel, build
from shared.integration.bus.port import Record, TopicPartition
from shared.inventory import AvailabilityView, ProductCatalog
from shared.inventory.rules import NormalizedReport
from shared.platform.adapters import bucket, get_bus, get_store
from shared.platform.publisher import flush_background, publish_many
from shared.runtime.app import provision
from shared.runtime.config import parse_service
from shared.runtime.http import HttpApp
from shared.runtime.kafka_trigger import batch_event
from tests.functions.test_http_server import Reply, call, is_problem
from tests.functions.test_http_server import build as build_app
from tests.unit.test_crosssell_cooccurrence import popular_item_baskets

SERVICE_YAML = """
service: retailfn-test
functions:
  recommend:
    handler: functions.recommend.main:recommend
    events:
      - http: {path: "/v1/recommendations/{sku}", method: get}
  record_click:
    handler: functions.record_click.main:record_click
    events:
      - http: {path: "/v1/recommendations/{request_id}/clicks", method: post}
"""
EXPERIMENTS = {
    "experiments": [
        {
            "name": "xsell-ranking",
            "control": "conf",
            "variants": [
                {"name": "conf", "weight": 1, "strategy": "confidence", "limit": 4},
                {"name": "lift", "weight": 1, "strategy": "lift", "limit": 2},
            ],
        }
    ]
}
NOW = datetime.now(UTC).replace(microsecond=0)


def product(
    sku: str,
    category: str,
    names: dict[str, str],
    eur: str,
    jpy: str,
    rating: str | None = None,
    **attributes: str,
) -> ProductIntroduced:
    return ProductIntroduced(
        sku=sku,
        partner_id="acme",
        partner_sku=sku.lower(),
        category=category,
        regions=("eu", "asia"),
        default_locale="en-US",
        names=names,
        prices={"EUR": Decimal(eur), "JPY": Decimal(jpy)},
        attributes=attributes,
        rating=None if rating is None else Decimal(rating),
        introduced_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


CATALOG = [
    product(
        "YOGA-PANTS-M",
        "sports/yoga/apparel",
        {"en-US": "Yoga pants M", "de-DE": "Yogahose M", "ja-JP": "ヨガパンツ M"},
        "49.00",
        "7800",
        "4.2",
        size="M",
        upsell_match="size",
    ),
    product(
        "YOGA-PANTS-PRO-M",
        "sports/yoga/apparel",
        {"en-US": "Yoga pants Pro M", "de-DE": "Yogahose Pro M", "ja-JP": "ヨガパンツ プロ M"},
        "59.00",
        "9400",
        "4.8",
        size="M",
    ),
    product(
        "YOGA-PANTS-PRO-L",
        "sports/yoga/apparel",
        {"en-US": "Yoga pants Pro L"},
        "59.00",
        "9400",
        "4.8",
        size="L",
    ),
    product(
        "YOGA-TOP",
        "sports/yoga/apparel",
        {"en-US": "Yoga top", "de-DE": "Yoga-Top"},
        "29.00",
        "4500",
        "4.5",
    ),
    product(
        "YOGA-MAT-4MM",
        "sports/yoga/mats",
        {"en-US": "Yoga mat 4 mm", "de-DE": "Yogamatte 4 mm", "ja-JP": "ヨガマット 4mm"},
        "36.95",
        "5900",
        "4.6",
    ),
    product(
        "YOGA-BLOCK",
        "sports/yoga/props",
        {"en-US": "Yoga block", "de-DE": "Yogablock"},
        "12.50",
        "1900",
    ),
    product("GREEN-TEA", "food/tea", {"en-US": "Green tea"}, "4.90", "600"),
]

# 40 baskets in eu: pants with the mat in 10 of the 12 pants baskets (lift 3.3), with the block
# in 3 (the block is in 5 of 40: lift 2.0); green tea goes with nothing.
EU_BASKETS = (
    [["YOGA-PANTS-M", "YOGA-MAT-4MM"]] * 9
    + [["YOGA-PANTS-M", "YOGA-MAT-4MM", "YOGA-BLOCK"]]
    + [["YOGA-PANTS-M", "YOGA-BLOCK"]] * 2
    + [["GREEN-TEA"]] * 20
    + [["YOGA-TOP", "GREEN-TEA"]] * 6
    + [["YOGA-BLOCK"]] * 2
)


@dataclass
class ModelSet:
    """What CrossSellStore().current() gives: one model per region and a version."""

    models: dict[str, CrossSellModel]
    version: str = "v-test-1"

    def region(self, region: str) -> CrossSellModel:
        return self.models.get(region) or CrossSellModel.empty()


class FakeStore:
    def __init__(self, models: ModelSet | None) -> None:
        self.models = models

    def current(self) -> ModelSet | None:
        return self.models


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    store = FakeStore(ModelSet({"eu": build(Baskets.of(EU_BASKETS))}))
    monkeypatch.setattr("shared.crosssell.recommendations.model_store", lambda: store)
    return store


@pytest.fixture
def app(live_app: HttpApp, models: FakeStore) -> HttpApp:
    return live_app


@pytest.fixture
def live_app(monkeypatch: pytest.MonkeyPatch) -> HttpApp:
    """The functions on the real catalog, availability view and CrossSellStore."""
    monkeypatch.setenv("RETAILFN_EXPERIMENTS", json.dumps(EXPERIMENTS))
    monkeypatch.setenv("RETAILFN_CROSSSELL_MIN_SUPPORT", "0.01")
    monkeypatch.setenv("RETAILFN_CROSSSELL_MIN_COUNT", "2")
    monkeypatch.setenv("RETAILFN_RECOMMEND_STOCK_TTL_S", "0")  # one test below sets its own
    provision(get_bus(), get_store())
    catalog = ProductCatalog()
    for p in CATALOG:
        catalog.put(p)
    for sku in (
        "YOGA-PANTS-M",
        "YOGA-PANTS-PRO-M",
        "YOGA-PANTS-PRO-L",
        "YOGA-TOP",
        "YOGA-MAT-4MM",
        "YOGA-BLOCK",
        "GREEN-TEA",
    ):
        stock(sku, 5)
        stock(sku, 3, region="asia", location="TOKYO-1")
    return build_app(parse_service(SERVICE_YAML, env={}))


def stock(
    sku: str, on_hand: int, *, region: str = "eu", location: str = "BERLIN-1", minutes_ago: int = 5
) -> None:
    AvailabilityView().apply(
        sku,
        NormalizedReport(
            partner_id="acme",
            location_id=location,
            region=region,  # type: ignore[arg-type]
            on_hand=on_hand,
            reserved=0,
            incoming=0,
            unit="each",
            reported_at=NOW - timedelta(minutes=minutes_ago),
        ),
    )


def get(app: HttpApp, path: str, **headers: str) -> Reply:
    return call(app, "GET", path, headers=headers)


def skus(items: list[dict[str, Any]]) -> list[str]:
    return [item["sku"] for item in items]


def events_on(topic: str) -> list[Event[Any]]:
    flush_background()  # shown events are published in batches, off the request path
    return [
        from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
        for r in get_bus().read_all(topic, timeout_s=1)
    ]


def test_a_pair_bought_together_no_more_than_by_chance_is_no_cross_sell(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.platform.settings import reset_settings

    monkeypatch.setenv("RETAILFN_CROSSSELL_MIN_LIFT", "2.5")  # the block's lift is 2.0
    reset_settings()
    doc = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()
    assert skus(doc["cross_sell"]) == ["YOGA-MAT-4MM"]


def test_yoga_pants_bring_the_yoga_mat_with_its_reason_while_it_is_in_stock(app: HttpApp) -> None:
    reply = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu")

    assert reply.status == 200, reply.body
    doc = reply.json()
    assert skus(doc["cross_sell"]) == ["YOGA-MAT-4MM", "YOGA-BLOCK"]
    mat = doc["cross_sell"][0]
    # 10 of the 12 pants baskets hold the mat; the mat is in 10 of 40 baskets: lift 3.3
    assert mat["reason"] == "bought together in 83.3% of baskets with this item, lift 3.3"
    assert mat["scores"] == {
        "support": 0.25,
        "confidence": 10 / 12,
        "lift": (10 / 12) / 0.25,
        "pair_count": 10,
    }
    assert mat["basis"] == "bought_together" and mat["available"] == 5
    assert mat["stock_as_of"] == (NOW - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    # the report is five minutes older than NOW, taken when the module was collected
    elapsed = (datetime.now(UTC) - NOW).total_seconds()
    assert 300 <= mat["stock_age_seconds"] < 360 + elapsed
    assert doc["cold_start"] is False and doc["model_version"] == "v-test-1"


def test_the_mat_is_gone_as_soon_as_the_partner_reports_zero_in_the_region(app: HttpApp) -> None:
    stock("YOGA-MAT-4MM", 0, minutes_ago=0)

    eu = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()

    assert "YOGA-MAT-4MM" not in skus(eu["cross_sell"])
    assert skus(eu["cross_sell"]) == ["YOGA-BLOCK"]


def test_a_stock_figure_is_reused_for_at_most_the_configured_time(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.platform.settings import reset_settings

    monkeypatch.setenv("RETAILFN_RECOMMEND_STOCK_TTL_S", "0.3")
    reset_settings()
    assert "YOGA-MAT-4MM" in skus(
        get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()["cross_sell"]
    )
    stock("YOGA-MAT-4MM", 0, minutes_ago=0)
    still = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()["cross_sell"]
    time.sleep(0.35)
    later = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()["cross_sell"]

    assert "YOGA-MAT-4MM" in skus(still)  # the figure read a moment ago, with its age
    assert "YOGA-MAT-4MM" not in skus(later)


def test_pairs_below_the_minimum_count_are_not_recommended(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.platform.settings import reset_settings

    monkeypatch.setenv("RETAILFN_CROSSSELL_MIN_COUNT", "4")  # the block is in 3 pants baskets
    reset_settings()

    doc = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()

    assert skus(doc["cross_sell"]) == ["YOGA-MAT-4MM"]


def test_names_and_prices_follow_the_language_and_the_region(app: HttpApp) -> None:
    german = get(
        app, "/v1/recommendations/YOGA-PANTS-M?region=eu", **{"Accept-Language": "de-DE,de;q=0.9"}
    )
    japanese = get(app, "/v1/recommendations/YOGA-PANTS-M?region=asia&lang=ja-JP")

    mat_de = german.json()["cross_sell"][0]
    assert (mat_de["name"], mat_de["price"]) == (
        "Yogamatte 4 mm",
        {"currency": "EUR", "amount": "36.95", "note": None},
    )
    assert german.headers["content-language"] == "de-DE"
    pro_ja = japanese.json()["up_sell"][0]
    assert (pro_ja["name"], pro_ja["price"]["currency"], pro_ja["price"]["amount"]) == (
        "ヨガパンツ プロ M",
        "JPY",
        "9400",
    )
    assert pro_ja["available"] == 3  # asia's stock, not eu's
    assert "ja-JP" in japanese.headers["content-language"]


def test_the_up_sell_is_the_better_variant_in_the_same_size_and_in_stock(app: HttpApp) -> None:
    doc = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()

    assert skus(doc["up_sell"]) == ["YOGA-PANTS-PRO-M"]
    assert doc["up_sell"][0]["basis"] == "better_variant"
    assert doc["up_sell"][0]["reason"] == (
        "rated 4.8 vs 4.2 for this item; 10.00 EUR more (59.00 vs 49.00 EUR); same size M"
    )

    stock("YOGA-PANTS-PRO-M", 0, minutes_ago=0)
    assert get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()["up_sell"] == []


def test_without_a_model_the_category_best_sellers_in_stock_stand_in(
    app: HttpApp, models: FakeStore
) -> None:
    models.models = None

    doc = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()

    assert doc["cold_start"] is True and doc["model_version"] is None
    assert skus(doc["cross_sell"]) == ["YOGA-PANTS-PRO-L", "YOGA-PANTS-PRO-M", "YOGA-TOP"]
    assert doc["cross_sell"][0]["basis"] == "category_best_seller"
    assert doc["cross_sell"][0]["reason"] == "top rated in sports/yoga/apparel (4.8)"


def test_an_item_the_model_has_no_complements_for_gets_the_category_best_sellers(
    app: HttpApp,
) -> None:
    doc = get(app, "/v1/recommendations/YOGA-PANTS-PRO-M?region=eu").json()

    assert doc["cold_start"] is True
    # YOGA-TOP sold in 6 baskets, the pants in 12: by sales, then rating
    assert skus(doc["cross_sell"])[:2] == ["YOGA-PANTS-M", "YOGA-TOP"]
    assert doc["cross_sell"][0]["reason"] == "best seller in sports/yoga/apparel: in 12 baskets"


def test_the_variant_is_named_and_decides_the_list_length(app: HttpApp) -> None:
    from shared.crosssell.rules.experiments import ExperimentsConfig, assign

    experiment = ExperimentsConfig.model_validate(EXPERIMENTS).running()
    user = next(f"M-{n}" for n in range(100) if assign(experiment, f"M-{n}").name == "lift")

    lift = get(app, f"/v1/recommendations/YOGA-PANTS-M?region=eu&user={user}").json()
    anonymous = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu&limit=1").json()

    assert (lift["experiment"], lift["variant"], lift["strategy"]) == (
        "xsell-ranking",
        "lift",
        "lift",
    )
    assert (anonymous["variant"], len(anonymous["cross_sell"])) == ("conf", 1)


def test_the_confidence_variant_offers_the_highest_confidence_complements_of_a_popular_item(
    app: HttpApp, models: FakeStore
) -> None:
    # The pants come with 60 rare items of lift 3.3 (not in the catalog) and with the mat, the
    # block and the top in 90, 87 and 83 % of their baskets (lift 1.2 to 1.3).
    names = {"HOT": "YOGA-PANTS-M", "S-1": "YOGA-MAT-4MM", "S-2": "YOGA-BLOCK", "S-3": "YOGA-TOP"}
    baskets = [[names.get(s, s) for s in basket] for basket in popular_item_baskets(niche=60)]
    models.models = ModelSet({"eu": build(Baskets.of(baskets))})

    doc = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()  # control: confidence

    assert (doc["strategy"], doc["cold_start"]) == ("confidence", False)
    assert skus(doc["cross_sell"]) == ["YOGA-MAT-4MM", "YOGA-BLOCK", "YOGA-TOP"]


def test_every_answer_is_announced_on_recommendations_events(app: HttpApp) -> None:
    doc = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu&user=M-40017").json()

    shown = [e.data for e in events_on("recommendations.events")]
    assert [(s.kind, s.recommended_skus) for s in shown] == [
        ("cross_sell", ("YOGA-MAT-4MM", "YOGA-BLOCK")),
        ("up_sell", ("YOGA-PANTS-PRO-M",)),
    ]
    assert {(s.request_id, s.user_id, s.variant, s.experiment) for s in shown} == {
        (doc["request_id"], "M-40017", doc["variant"], "xsell-ranking")
    }


def test_a_bus_that_cannot_take_the_event_does_not_fail_the_read(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("broker down")

    monkeypatch.setattr("shared.platform.publisher.publish_many", broken)

    reply = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu")
    flush_background()

    assert reply.status == 200 and reply.json()["cross_sell"]
    assert "background publish failed" in caplog.text


def test_an_unknown_region_is_a_400_and_an_unknown_sku_a_404(app: HttpApp) -> None:
    bad = is_problem(get(app, "/v1/recommendations/YOGA-PANTS-M?region=mars"), 400)
    missing = is_problem(get(app, "/v1/recommendations/NO-SUCH-SKU?region=eu"), 404)
    no_region = is_problem(get(app, "/v1/recommendations/YOGA-PANTS-M"), 400)

    assert bad["errors"][0]["loc"] == "query.region"
    assert "NO-SUCH-SKU" in missing["detail"]
    assert no_region["errors"][0]["loc"] == "query.region"


def test_a_click_is_published_with_the_users_variant(app: HttpApp) -> None:
    doc = get(app, "/v1/recommendations/YOGA-PANTS-M?region=eu&user=M-7").json()
    body = {
        "sku": "YOGA-MAT-4MM",
        "source_sku": "YOGA-PANTS-M",
        "kind": "cross_sell",
        "user": "M-7",
    }

    first = call(app, "POST", f"/v1/recommendations/{doc['request_id']}/clicks", json_body=body)
    again = call(app, "POST", f"/v1/recommendations/{doc['request_id']}/clicks", json_body=body)

    assert first.status == 202, first.body
    assert first.json()["variant"] == doc["variant"]
    assert again.json()["event_id"] == first.json()["event_id"]  # one click downstream
    clicks = [
        e
        for e in events_on("recommendations.events")
        if e.type.endswith("recommendation-clicked.v1")
    ]
    assert clicks[0].data.request_id == doc["request_id"]
    assert (clicks[0].data.sku, clicks[0].data.variant) == ("YOGA-MAT-4MM", doc["variant"])


def test_a_click_without_the_clicked_sku_is_a_422(app: HttpApp) -> None:
    reply = call(
        app,
        "POST",
        "/v1/recommendations/abc123/clicks",
        json_body={"source_sku": "YOGA-PANTS-M", "kind": "cross_sell"},
    )

    assert is_problem(reply, 422)["errors"][0]["loc"] == "sku"


# --- on the published model: orders archived, folded by the cross-sell store ---------------------


def order_events(
    baskets: list[list[str]], region: str = "eu", customer: str | None = None
) -> list[Event[Any]]:
    return [
        new_event(
            OrderCompleted(
                order_id=f"ORD-{region}-{n}",
                customer_id=customer,
                channel="web",
                region=region,
                country="DE",
                currency="EUR",
                completed_at=NOW - timedelta(hours=1),
                lines=tuple(
                    OrderLine(sku=sku, quantity=Decimal(1), unit_price=Decimal("9.90"))
                    for sku in basket
                ),
            ),
            source="/test/shop",
        )
        for n, basket in enumerate(baskets)
    ]


def archive_topic(topic: str) -> list[str]:
    """What archive_events does in the runtime: the topic's records into the event archive."""
    flush_background()
    by_partition: dict[int, list[Record]] = {}
    for record in get_bus().read_all(topic, timeout_s=1):
        by_partition.setdefault(record.partition, []).append(record)
    for partition, records in by_partition.items():
        archive_events(batch_event(TopicPartition(topic, partition), records))
    return [info.key for info in get_store().list(bucket("events-archive"), f"events/{topic}/")]


def test_the_published_model_folded_from_archived_orders_drives_the_cross_sell(
    live_app: HttpApp,
) -> None:
    publish_many(order_events(EU_BASKETS))
    crosssell = CrossSellStore()
    for key in archive_topic("sales.order-completed"):
        crosssell.fold_archive_object(bucket("events-archive"), key, None)

    doc = get(live_app, "/v1/recommendations/YOGA-PANTS-M?region=eu").json()
    asia = get(live_app, "/v1/recommendations/YOGA-PANTS-M?region=asia").json()

    assert doc["model_version"] == crosssell.current().version
    assert skus(doc["cross_sell"]) == ["YOGA-MAT-4MM", "YOGA-BLOCK"]
    assert doc["cross_sell"][0]["reason"] == (
        "bought together in 83.3% of baskets with this item, lift 3.3"
    )
    assert asia["cold_start"] is True  # no baskets in asia: the category's in-stock items


def test_the_experiment_report_joins_shown_clicked_and_orders_from_the_archive(
    live_app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.crosssell.rules.experiments import ExperimentsConfig, assign

    experiment = ExperimentsConfig.model_validate(EXPERIMENTS).running()
    users = {assign(experiment, f"M-{n}").name: f"M-{n}" for n in range(20)}
    shown = {}
    for variant, user in users.items():
        shown[variant] = get(
            live_app, f"/v1/recommendations/YOGA-PANTS-M?region=eu&user={user}"
        ).json()
    lift = shown["lift"]
    call(
        live_app,
        "POST",
        f"/v1/recommendations/{lift['request_id']}/clicks",
        json_body={
            "sku": lift["cross_sell"][0]["sku"],
            "source_sku": "YOGA-PANTS-M",
            "kind": "cross_sell",
            "user": users["lift"],
        },
    )
    later = [
        new_event(
            e.data.model_copy(update={"completed_at": datetime.now(UTC) + timedelta(minutes=1)}),
            source="/test/shop",
        )
        for e in order_events([[lift["cross_sell"][0]["sku"]]], customer=users["lift"])
    ]
    publish_many(later)
    archive_topic("sales.order-completed")
    archive_topic("recommendations.events")

    rows = {(r.experiment, r.variant): r for r in experiment_report("archive")}
    from_topics = {(r.experiment, r.variant): r for r in experiment_report("topics")}

    assert rows == from_topics
    assert (
        rows[("xsell-ranking", "lift")].shown,
        rows[("xsell-ranking", "lift")].clicked,
        rows[("xsell-ranking", "lift")].orders,
    ) == (1, 1, 1)
    assert (
        rows[("xsell-ranking", "conf")].shown,
        rows[("xsell-ranking", "conf")].clicks,
        rows[("xsell-ranking", "conf")].orders,
    ) == (1, 0, 0)
    assert rows[("xsell-ranking", "lift")].click_through_rate == 1.0
