from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.envelope import event_from_sample
from events.inventory import ProductIntroduced
from shared.inventory import AvailabilityView, ProductCatalog
from shared.inventory.rules import NormalizedReport
from shared.platform.adapters import get_bus, get_store
from shared.runtime.app import provision
from shared.runtime.config import parse_service
from shared.runtime.http import HttpApp
from tests.functions.test_http_server import Reply, build, call, is_problem

SERVICE_YAML = """
service: retailfn-test
functions:
  inventory_api:
    handler: functions.inventory_api.main:inventory_api
    events:
      - http: {path: /v1/inventory, method: get}
      - http: {path: "/v1/inventory/{sku}", method: get}
"""
SKU = "YOGA-MAT-4MM"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def app() -> HttpApp:
    provision(get_bus(), get_store())
    sample = event_from_sample("product-introduced").data  # priced in USD, EUR, CNY and JPY
    ProductCatalog().put(sample.model_copy(update={"regions": ("eu", "na", "asia")}))
    return build(parse_service(SERVICE_YAML, env={}))


def stock(
    sku: str,
    partner: str,
    location: str,
    on_hand: int,
    *,
    region: str = "eu",
    reserved: int = 0,
    minutes_ago: int = 1,
) -> None:
    AvailabilityView().apply(
        sku,
        NormalizedReport(
            partner_id=partner,
            location_id=location,
            region=region,  # type: ignore[arg-type]
            on_hand=on_hand,
            reserved=reserved,
            incoming=0,
            unit="each",
            reported_at=NOW - timedelta(minutes=minutes_ago),
        ),
    )


def get(app: HttpApp, path: str, **headers: str) -> Reply:
    return call(app, "GET", path, headers=headers)


def test_the_same_sku_answers_in_german_with_euros_and_in_japanese_with_yen(app: HttpApp) -> None:
    german = get(app, f"/v1/inventory/{SKU}?region=eu", **{"Accept-Language": "de-DE,de;q=0.9"})
    japanese = get(app, f"/v1/inventory/{SKU}?region=asia&lang=ja-JP")

    assert german.status == 200 and japanese.status == 200
    assert german.headers["content-language"] == "de-DE"
    assert (german.json()["name"], german.json()["price"]) == (
        "Yogamatte 4 mm, lila",
        {"currency": "EUR", "amount": "36.95", "note": None},
    )
    assert german.json()["description"].startswith("Rutschfeste")
    assert japanese.headers["content-language"] == "ja-JP"
    assert (japanese.json()["name"], japanese.json()["price"]["amount"]) == (
        "ヨガマット 4mm パープル",
        "5900",
    )
    assert japanese.json()["price"]["currency"] == "JPY"


def test_a_currency_the_product_has_no_price_in_is_said_so_not_converted(app: HttpApp) -> None:
    reply = get(app, f"/v1/inventory/{SKU}?region=eu&currency=GBP")

    assert reply.json()["price"]["amount"] is None
    assert "GBP" in reply.json()["price"]["note"]


def test_totals_add_up_every_partner_and_location_in_the_region_only(app: HttpApp) -> None:
    stock(SKU, "acme", "BERLIN", 10, reserved=2)
    stock(SKU, "acme", "PARIS", 5)
    stock(SKU, "zen", "MUNICH", 7, minutes_ago=3)
    stock(SKU, "zen", "CHICAGO", 100, region="na")

    doc = get(app, f"/v1/inventory/{SKU}?region=eu").json()

    assert (doc["available"], doc["on_hand"], doc["reserved"]) == (20, 22, 2)
    assert [(p["partner_id"], p["available"], p["locations"]) for p in doc["partners"]] == [
        ("acme", 13, 2),
        ("zen", 7, 1),
    ]
    assert {loc["location_id"] for loc in doc["locations"]} == {"BERLIN", "PARIS", "MUNICH"}
    assert doc["as_of"] == (NOW - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    # as_of is one minute before NOW (taken at import); the suite may have run a while since
    elapsed = (datetime.now(UTC) - NOW).total_seconds()
    assert 60 <= doc["age_seconds"] < 120 + elapsed


def test_a_matching_if_none_match_is_answered_304(app: HttpApp) -> None:
    stock(SKU, "acme", "BERLIN", 10)
    first = get(app, f"/v1/inventory/{SKU}?region=eu")

    again = get(app, f"/v1/inventory/{SKU}?region=eu", **{"If-None-Match": first.headers["etag"]})

    assert first.headers["etag"].startswith('"')
    assert first.headers["cache-control"] == "max-age=5"
    assert again.status == 304 and again.body == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_a_stock_change_changes_the_etag(app: HttpApp) -> None:
    stock(SKU, "acme", "BERLIN", 10)
    first = get(app, f"/v1/inventory/{SKU}?region=eu")
    stock(SKU, "acme", "BERLIN", 9, minutes_ago=0)

    again = get(app, f"/v1/inventory/{SKU}?region=eu", **{"If-None-Match": first.headers["etag"]})

    assert again.status == 200 and again.json()["available"] == 9


def test_pagination_visits_every_sku_once(app: HttpApp) -> None:
    sample = event_from_sample("product-introduced").data
    catalog = ProductCatalog()
    for n in range(119):  # plus the sample's product: 120
        catalog.put(
            ProductIntroduced.model_validate(
                {**sample.model_dump(), "sku": f"MAT-{n:03d}", "partner_sku": f"mat-{n:03d}"}
            )
        )

    seen: list[str] = []
    pages = 0
    path = "/v1/inventory?region=eu&limit=50"
    while True:
        doc = get(app, path).json()
        pages += 1
        seen += [item["sku"] for item in doc["items"]]
        if doc["next_cursor"] is None:
            break
        path = f"/v1/inventory?region=eu&limit=50&cursor={doc['next_cursor']}"

    assert pages == 3
    assert len(seen) == len(set(seen)) == 120


def test_search_narrows_by_category_and_partner(app: HttpApp) -> None:
    sample = event_from_sample("product-introduced").data
    ProductCatalog().put(
        ProductIntroduced.model_validate(
            {
                **sample.model_dump(),
                "sku": "YOGA-PANTS",
                "partner_sku": "pants",
                "category": "sports/yoga/apparel",
            }
        )
    )
    ProductCatalog().put(
        ProductIntroduced.model_validate(
            {
                **sample.model_dump(),
                "sku": "RUN-SHOE",
                "partner_sku": "shoe",
                "category": "sports/running",
            }
        )
    )
    stock("YOGA-PANTS", "zen", "MUNICH", 4)
    stock(SKU, "acme", "BERLIN", 4)

    yoga = get(app, "/v1/inventory?region=eu&category=sports/yoga").json()
    zen = get(app, "/v1/inventory?region=eu&partner=zen").json()

    assert sorted(item["sku"] for item in yoga["items"]) == ["YOGA-MAT-4MM", "YOGA-PANTS"]
    assert [item["sku"] for item in zen["items"]] == ["YOGA-PANTS"]


def test_a_product_not_offered_in_the_region_is_not_found_there(app: HttpApp) -> None:
    is_problem(get(app, f"/v1/inventory/{SKU}?region=au"), 404)


def test_an_unknown_sku_is_a_404_problem(app: HttpApp) -> None:
    doc = is_problem(get(app, "/v1/inventory/NO-SUCH-SKU?region=eu"), 404)

    assert "NO-SUCH-SKU" in doc["detail"]


@pytest.mark.parametrize("limit", ["0", "201", "ten"])
def test_a_bad_limit_is_a_400_problem_naming_it(app: HttpApp, limit: str) -> None:
    doc = is_problem(get(app, f"/v1/inventory?region=eu&limit={limit}"), 400)

    assert [e["loc"] for e in doc["errors"]] == ["query.limit"]


def test_a_missing_region_is_a_400_problem_naming_it(app: HttpApp) -> None:
    doc = is_problem(get(app, f"/v1/inventory/{SKU}"), 400)

    assert [e["loc"] for e in doc["errors"]] == ["query.region"]


def test_a_forged_cursor_is_a_400_problem_naming_it(app: HttpApp) -> None:
    doc = is_problem(get(app, "/v1/inventory?region=eu&cursor=bm90LWEtY3Vyc29y"), 400)

    assert [e["loc"] for e in doc["errors"]] == ["query.cursor"]
