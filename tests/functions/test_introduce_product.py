"""introduce_product through the runtime's HTTP front, as serverless.yaml routes it, on the
embedded adapters: the catalog entry, the SKU mapping and the product event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from events.envelope import Event, from_kafka
from events.samples import load_sample
from shared.inventory import ProductCatalog
from shared.platform import auth
from shared.platform.adapters import get_bus, get_store
from shared.platform.auth import create_api_key, dev_api_key
from shared.runtime.app import provision
from shared.runtime.config import load_service
from shared.runtime.http import HttpApp, build_http_app
from shared.runtime.loader import load_function
from tests.functions.test_http_server import Reply, call, is_problem

TOPIC = "catalog.product-introduced"


def product(**changes: Any) -> dict[str, Any]:
    data = dict(load_sample("product-introduced")["data"])
    del data["partner_id"], data["introduced_at"]  # the path says who, the function says when
    return {**data, **changes}


@pytest.fixture(scope="module")
def app() -> HttpApp:
    service = load_service("serverless.yaml", env={})
    handler = service.functions["introduce_product"].handler
    return build_http_app(
        service, {"introduce_product": load_function("introduce_product", handler)}
    )


@pytest.fixture(autouse=True)
def _embedded() -> Iterator[None]:
    auth.reset_auth_caches()
    provision(get_bus(), get_store())
    yield
    auth.reset_auth_caches()


def post(
    app: HttpApp, body: dict[str, Any], *, partner: str = "acme", key: str | None = None
) -> Reply:
    key = key or dev_api_key(partner)
    reply = call(
        app,
        "POST",
        f"/v1/partners/{partner}/products",
        json_body=body,
        headers={"Authorization": f"ApiKey {key}"},
    )
    assert key.encode() not in reply.body
    return reply


def published() -> list[Event[Any]]:
    return [
        from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
        for r in get_bus().read_all(TOPIC)
    ]


def test_a_new_product_is_created_and_posting_it_again_changes_nothing(app: HttpApp) -> None:
    first = post(app, product())
    again = post(app, product())

    assert (first.status, first.json()) == (201, {"sku": "YOGA-MAT-4MM", "outcome": "created"})
    assert first.headers["location"] == "/v1/inventory/YOGA-MAT-4MM"
    assert (again.status, again.json()["outcome"]) == (200, "unchanged")


def test_the_partner_sku_maps_to_the_catalog_sku_as_soon_as_the_post_returns(app: HttpApp) -> None:
    assert ProductCatalog().sku_for("acme", "YM-4MM-PURPLE") is None

    post(app, product())

    assert ProductCatalog().sku_for("acme", "YM-4MM-PURPLE") == "YOGA-MAT-4MM"
    assert ProductCatalog().get("YOGA-MAT-4MM").partner_id == "acme"  # type: ignore[union-attr]


def test_another_partner_claiming_the_same_sku_is_a_409_problem(app: HttpApp) -> None:
    post(app, product())

    reply = post(app, product(partner_sku="GLX-MAT"), partner="globex")

    doc = is_problem(reply, 409)
    assert doc["type"].endswith("/catalog-conflict")
    assert ProductCatalog().get("YOGA-MAT-4MM").partner_id == "acme"  # type: ignore[union-attr]
    assert ProductCatalog().sku_for("globex", "GLX-MAT") is None
    assert [e.data.partner_id for e in published()] == ["acme"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"default_locale": "fr-FR"}, "default_locale"),
        ({"prices": {"USD": "39.90", "XXQ": "1.00"}}, "prices"),
    ],
)
def test_an_invalid_product_is_a_422_naming_the_field(
    app: HttpApp, change: dict[str, Any], field: str
) -> None:
    reply = post(app, product(**change))

    doc = is_problem(reply, 422)
    assert [e["loc"].split(".")[0] for e in doc["errors"]] == [field], doc["errors"]
    assert ProductCatalog().get("YOGA-MAT-4MM") is None
    assert published() == []


def test_a_non_ascii_partner_in_the_path_is_a_404_problem(app: HttpApp) -> None:
    reply = post(app, product(), partner="acm\u00e9", key=dev_api_key("acme"))

    assert "{partner}" in is_problem(reply, 404)["detail"]
    assert ProductCatalog().get("YOGA-MAT-4MM") is None
    assert published() == []


def test_a_key_with_only_the_stock_scope_cannot_introduce_products(app: HttpApp) -> None:
    _, key = create_api_key("acme", "stock:write")

    reply = post(app, product(), key=key)

    assert "catalog:write" in is_problem(reply, 403)["detail"]
    assert ProductCatalog().get("YOGA-MAT-4MM") is None
    assert published() == []


def test_the_product_event_has_an_id_derived_from_the_content(app: HttpApp) -> None:
    post(app, product())
    post(app, product())
    post(app, product(brand="Acme Active Pro"))

    events = published()
    assert [e.type for e in events] == ["com.retailfn.catalog.product-introduced.v1"] * 3
    assert {e.partitionkey for e in events} == {"YOGA-MAT-4MM"}
    first, repeat, changed = (e.id for e in events)
    assert first == repeat  # a re-post is the same event; consumers drop the copy
    assert changed != first
    assert json.loads(json.dumps(events[0].data.names))["ja-JP"] == "ヨガマット 4mm パープル"
