"""The OpenAPI 3.1 document of the project's HTTP routes, and its /openapi.json and /docs pages:
valid, complete, and true to what the functions accept and answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from events.envelope import event_from_sample
from shared.inventory import ProductCatalog
from shared.platform import auth
from shared.platform.adapters import get_bus, get_store
from shared.platform.auth import dev_api_key
from shared.runtime.app import provision
from shared.runtime.config import ServiceConfig, load_service, parse_service
from shared.runtime.http import HttpApp
from shared.runtime.openapi import openapi_document
from tests.functions.test_http_server import Reply, build, call

STOCK = "/v1/partners/{partner}/stock"
ITEM = "/v1/inventory/{sku}"
SEARCH = "/v1/inventory"
LINE = {
    "partner_sku": "YM-4MM-PURPLE",
    "location_id": "BERLIN-1",
    "region": "eu",
    "on_hand": 12,
    "reserved": 2,
}


@pytest.fixture(scope="module")
def service() -> ServiceConfig:
    return load_service("serverless.yaml", env={})


@pytest.fixture(scope="module")
def document(service: ServiceConfig) -> dict[str, Any]:
    return openapi_document(service)


@pytest.fixture(scope="module")
def app(service: ServiceConfig) -> HttpApp:
    return build(service)


@pytest.fixture
def embedded() -> Iterator[None]:
    auth.reset_auth_caches()
    provision(get_bus(), get_store())
    yield
    auth.reset_auth_caches()


def schema_of(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` refs resolve in ``document``."""
    return Draft202012Validator({**schema, "components": document["components"]})


def component(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]


def body_schema(document: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    return document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


# --- the document ------------------------------------------------------------------------------


def test_the_projects_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)

    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] == "retailfn"
    assert document["info"]["version"]


def test_every_http_route_of_serverless_yaml_is_documented_with_its_method(
    service: ServiceConfig, document: dict[str, Any]
) -> None:
    routes = {(t.path, t.method) for fn in service.functions.values() for t in fn.triggers("http")}

    documented = {(path, method) for path, item in document["paths"].items() for method in item}

    assert documented == routes
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_a_stock_line_requires_its_sku_location_region_and_on_hand(
    document: dict[str, Any],
) -> None:
    post = component(document, body_schema(document, STOCK))
    batch, one_line = post["anyOf"]  # {"lines": [...]} or a single line

    line = component(document, batch["properties"]["lines"]["items"])

    assert one_line == batch["properties"]["lines"]["items"]
    assert {"partner_sku", "location_id", "region", "on_hand"} <= set(line["required"])
    assert line["additionalProperties"] is False


def test_report_stock_errors_are_problem_documents(document: dict[str, Any]) -> None:
    responses = document["paths"][STOCK]["post"]["responses"]
    problem = document["components"]["schemas"]["Problem"]

    for status in ("400", "401", "403", "413", "422", "500", "503"):
        content = responses[status]["content"]
        assert list(content) == ["application/problem+json"], status
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    assert set(responses["202"]["content"]) == {"application/json"}
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    assert "Retry-After" in responses["503"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]


def test_report_stock_takes_an_idempotency_key_header(document: dict[str, Any]) -> None:
    parameters = document["paths"][STOCK]["post"]["parameters"]

    header = next(p for p in parameters if p["name"] == "Idempotency-Key")
    partner = next(p for p in parameters if p["name"] == "partner")

    assert (header["in"], header["required"]) == ("header", False)
    assert (partner["in"], partner["required"]) == ("path", True)


def test_partner_routes_take_an_api_key_or_a_bearer_token_with_their_scope(
    document: dict[str, Any],
) -> None:
    stock = document["paths"][STOCK]["post"]["security"]
    products = document["paths"]["/v1/partners/{partner}/products"]["post"]["security"]
    schemes = document["components"]["securitySchemes"]

    assert stock == [{"ApiKey": ["stock:write"]}, {"bearerAuth": ["stock:write"]}]
    assert products == [{"ApiKey": ["catalog:write"]}, {"bearerAuth": ["catalog:write"]}]
    assert (schemes["ApiKey"]["in"], schemes["ApiKey"]["name"]) == ("header", "X-API-Key")
    assert "Authorization: ApiKey" in schemes["ApiKey"]["description"]
    assert (schemes["bearerAuth"]["scheme"], schemes["bearerAuth"]["bearerFormat"]) == (
        "bearer",
        "JWT",
    )
    assert document["paths"][ITEM]["get"]["security"] == []


def test_the_inventory_routes_require_a_region_and_answer_304_to_if_none_match(
    document: dict[str, Any],
) -> None:
    for path in (SEARCH, ITEM):
        operation = document["paths"][path]["get"]
        parameters = {(p["in"], p["name"]): p for p in operation["parameters"]}

        assert parameters[("query", "region")]["required"] is True
        assert parameters[("query", "region")]["schema"]["enum"] == ["na", "eu", "asia", "au"]
        assert parameters[("header", "If-None-Match")]["required"] is False
        assert "content" not in operation["responses"]["304"]
        assert "ETag" in operation["responses"]["200"]["headers"]
    search = {p["name"] for p in document["paths"][SEARCH]["get"]["parameters"]}
    assert {"cursor", "limit", "category", "partner", "location"} <= search
    assert "404" in document["paths"][ITEM]["get"]["responses"]


def test_a_route_without_a_declaration_is_documented_from_serverless_yaml() -> None:
    service = parse_service(
        """
service: retailfn-test
functions:
  echo:
    handler: tests.support.http_functions:echo
    description: Echoes the request.
    events:
      - http: {path: "/v1/partners/{partner}/items/{sku}", method: get, auth: jwt}
""",
        env={},
    )

    document = openapi_document(service)

    validate(document)
    operation = document["paths"]["/v1/partners/{partner}/items/{sku}"]["get"]
    assert (operation["operationId"], operation["summary"]) == ("echo", "Echoes the request.")
    assert [p["name"] for p in operation["parameters"]] == ["partner", "sku"]
    assert {"401", "403", "500", "503"} <= set(operation["responses"])


# --- true to the functions ---------------------------------------------------------------------


def post_stock(app: HttpApp, body: Any) -> Reply:
    return call(
        app,
        "POST",
        "/v1/partners/acme/stock",
        json_body=body,
        headers={"X-API-Key": dev_api_key("acme")},
    )


@pytest.mark.usefixtures("embedded")
def test_the_body_schema_accepts_what_report_stock_accepts_and_rejects_what_it_422s(
    app: HttpApp, document: dict[str, Any]
) -> None:
    validator = schema_of(document, body_schema(document, STOCK))
    good = {
        "lines": [
            LINE,
            {
                **LINE,
                "location_id": "PARIS-2",
                "unit": "pack",
                "units_per_pack": 6,
                "reported_at": "2026-01-05T10:00:00Z",
            },
        ]
    }
    bad = {"lines": [LINE, {k: v for k, v in LINE.items() if k != "on_hand"}]}

    accepted, rejected = post_stock(app, good), post_stock(app, bad)

    assert accepted.status == 202, accepted.body
    assert list(validator.iter_errors(good)) == []
    assert validator.is_valid(LINE)  # a single line is a body too
    assert post_stock(app, LINE).status == 202
    assert rejected.status == 422
    assert rejected.headers["content-type"] == "application/problem+json"
    assert not validator.is_valid(bad)
    answer = document["paths"][STOCK]["post"]["responses"]["202"]["content"]["application/json"]
    assert schema_of(document, answer["schema"]).is_valid(accepted.json())
    problem = {"$ref": "#/components/schemas/Problem"}
    assert list(schema_of(document, problem).iter_errors(rejected.json())) == []


@pytest.mark.usefixtures("embedded")
def test_inventory_answers_fit_their_documented_schemas(
    app: HttpApp, document: dict[str, Any]
) -> None:
    sample = event_from_sample("product-introduced").data
    ProductCatalog().put(sample.model_copy(update={"regions": ("eu", "na")}))

    item = call(app, "GET", f"/v1/inventory/{sample.sku}?region=eu")
    page = call(app, "GET", "/v1/inventory?region=eu")
    missing_region = call(app, "GET", f"/v1/inventory/{sample.sku}")

    for path, reply in ((ITEM, item), (SEARCH, page)):
        assert reply.status == 200, reply.body
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert (
            list(
                schema_of(document, content["application/json"]["schema"]).iter_errors(reply.json())
            )
            == []
        )
    assert missing_region.status == 400
    assert any(e["loc"] == "query.region" for e in missing_region.json()["errors"])


# --- served by the runtime ---------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.fetches: list[str] = []  # anything the browser would load from elsewhere

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "link", "img", "iframe") or any(k == "src" for k, _ in attrs):
            self.fetches.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_runtime_serves_the_document_at_openapi_json(
    app: HttpApp, document: dict[str, Any]
) -> None:
    reply = call(app, "GET", "/openapi.json")

    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == json.loads(json.dumps(document))
    assert call(app, "HEAD", "/openapi.json").body == b""
    assert call(app, "POST", "/openapi.json").status == 405


def test_the_runtime_serves_a_self_contained_docs_page_naming_every_operation(
    app: HttpApp, document: dict[str, Any]
) -> None:
    reply = call(app, "GET", "/docs")
    page = _Page()
    page.feed(reply.body.decode())
    text = " ".join(page.text)

    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert page.fetches == []
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["operationId"] in text
            assert operation["summary"] in text
            assert path in text
    for name in ("Idempotency-Key", "If-None-Match", "region", "StockLine", "Problem"):
        assert name in text


def test_an_operation_declared_for_a_path_serverless_yaml_does_not_route_is_an_error() -> None:
    service = parse_service(
        """
service: retailfn-test
functions:
  inventory_api:
    handler: functions.inventory_api.main:inventory_api
    events:
      - http: {path: /v2/inventory, method: get}
""",
        env={},
    )

    with pytest.raises(ValueError, match="/v1/inventory"):
        openapi_document(service)
