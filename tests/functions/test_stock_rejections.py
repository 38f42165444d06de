"""Stock reports refused by ingest_stock are kept per partner and listed by stock_rejections:
ingest_stock through its entry point, the listing through the runtime's HTTP front as
serverless.yaml routes it, on the embedded adapters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cloudevents.http import CloudEvent

from events.envelope import event_from_sample, new_event
from events.inventory import StockReported
from functions.ingest_stock.main import ingest_stock
from shared.inventory import ProductCatalog
from shared.platform import auth
from shared.platform.adapters import get_bus, get_store
from shared.platform.auth import create_api_key, dev_api_key
from shared.platform.errors import PermanentError
from shared.runtime.app import provision
from shared.runtime.config import ServiceConfig, load_service
from shared.runtime.http import HttpApp, build_http_app
from shared.runtime.loader import load_function
from tests.functions.test_http_server import Reply, call, is_problem

PATH = "/v1/partners/acme/rejections"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def service() -> ServiceConfig:
    return load_service("serverless.yaml", env={})


@pytest.fixture(scope="module")
def app(service: ServiceConfig) -> HttpApp:
    return build_http_app(
        service,
        {
            "stock_rejections": load_function(
                "stock_rejections", service.functions["stock_rejections"].handler
            )
        },
    )


@pytest.fixture(autouse=True)
def _embedded() -> Iterator[None]:
    auth.reset_auth_caches()
    provision(get_bus(), get_store())
    ProductCatalog().put(event_from_sample("product-introduced").data)  # acme's YM-4MM-PURPLE
    yield
    auth.reset_auth_caches()


def report(
    partner_sku: str = "NEVER-INTRODUCED",
    *,
    partner: str = "acme",
    source: str = "/partners/acme/stock",
    event_id: str | None = None,
    at: datetime = NOW,
    on_hand: int = 5,
) -> CloudEvent:
    data = StockReported(
        partner_id=partner,
        partner_sku=partner_sku,
        location_id="BERLIN-1",
        region="eu",
        on_hand=Decimal(on_hand),
        reported_at=at,
    )
    return new_event(data, source=source, id=event_id).to_cloudevent()


def refused(event: CloudEvent) -> None:
    with pytest.raises(PermanentError):
        ingest_stock(event)


def listing(app: HttpApp, path: str = PATH, key: str | None = None) -> Reply:
    return call(app, "GET", path, headers={"X-API-Key": key or dev_api_key("acme")})


def test_a_report_of_a_partner_sku_never_introduced_is_dead_lettered_and_listed_for_its_partner(
    app: HttpApp,
) -> None:
    event = report("NEVER-INTRODUCED", event_id="acme-report-1")

    refused(event)

    reply = listing(app)
    assert reply.status == 200, reply.body
    [item] = reply.json()["items"]
    assert {
        k: item[k]
        for k in (
            "partner_id",
            "partner_sku",
            "location_id",
            "region",
            "channel",
            "source",
            "event_id",
        )
    } == {
        "partner_id": "acme",
        "partner_sku": "NEVER-INTRODUCED",
        "location_id": "BERLIN-1",
        "region": "eu",
        "channel": "http",
        "source": "/partners/acme/stock",
        "event_id": "acme-report-1",
    }
    assert "introduce the product first" in item["reason"]
    assert reply.json()["next_cursor"] is None


def test_the_same_refused_event_delivered_twice_is_listed_once(app: HttpApp) -> None:
    event = report(event_id="acme-report-1")

    refused(event)
    refused(event)  # a redelivery, or `retailfn dlq replay`

    assert len(listing(app).json()["items"]) == 1


def test_a_report_dated_too_far_ahead_is_listed_with_its_reason(app: HttpApp) -> None:
    refused(report("YM-4MM-PURPLE", at=NOW + timedelta(days=1)))

    [item] = listing(app).json()["items"]
    assert item["reason"].startswith("reported_at: more than 300 s ahead")


def test_an_applied_report_is_not_listed(app: HttpApp) -> None:
    ingest_stock(report("YM-4MM-PURPLE"))

    assert listing(app).json()["items"] == []


def test_rejections_are_listed_newest_first_across_pages(app: HttpApp) -> None:
    for n in range(5):
        refused(report(f"UNKNOWN-{n}"))

    first = listing(app, PATH + "?limit=3").json()
    second = listing(app, f"{PATH}?limit=3&cursor={first['next_cursor']}").json()

    skus = [item["partner_sku"] for item in first["items"] + second["items"]]
    assert skus == [f"UNKNOWN-{n}" for n in reversed(range(5))]
    assert second["next_cursor"] is None


def test_a_partner_sees_only_its_own_rejections(app: HttpApp) -> None:
    refused(report("GLOBEX-ONLY", partner="globex", source="/partners/globex/stock"))

    assert listing(app).json()["items"] == []
    [item] = listing(app, "/v1/partners/globex/rejections", dev_api_key("globex")).json()["items"]
    assert item["partner_sku"] == "GLOBEX-ONLY"


def test_another_partners_listing_is_a_403(app: HttpApp) -> None:
    reply = listing(app, "/v1/partners/globex/rejections")

    assert "partner" in is_problem(reply, 403)["detail"]


def test_a_key_without_a_read_scope_is_a_403(app: HttpApp) -> None:
    _, key = create_api_key("acme", "stock:write")

    assert "inventory:read" in is_problem(listing(app, key=key), 403)["detail"]


def test_no_credentials_is_a_401(app: HttpApp) -> None:
    is_problem(call(app, "GET", PATH), 401)


def test_a_cursor_of_another_partners_listing_is_a_400_naming_the_cursor(app: HttpApp) -> None:
    for n in range(2):
        refused(report(f"G-{n}", partner="globex", source="/partners/globex/stock"))
    theirs = listing(app, "/v1/partners/globex/rejections?limit=1", dev_api_key("globex")).json()[
        "next_cursor"
    ]

    doc = is_problem(listing(app, f"{PATH}?cursor={theirs}"), 400)

    assert doc["errors"][0]["loc"] == "query.cursor"


def test_a_limit_out_of_range_is_a_400_naming_it(app: HttpApp) -> None:
    doc = is_problem(listing(app, PATH + "?limit=0"), 400)

    assert doc["errors"][0]["loc"] == "query.limit"


def test_a_path_whose_partner_is_not_a_partner_id_is_a_404(app: HttpApp) -> None:
    is_problem(listing(app, "/v1/partners/not%20a%20partner/rejections"), 404)
