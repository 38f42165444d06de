"""inventory_api: partners' shared availability, localized per region and language.

``GET /v1/inventory/{sku}`` and ``GET /v1/inventory`` (search). ``region`` is required (``na``,
``eu``, ``asia``, ``au``): it picks the region's catalog, the stock counted and the currency.
Language: ``lang`` query, else ``Accept-Language``; the answer says which in ``Content-Language``.
Answers carry a strong ``ETag`` over everything but ``age_seconds`` (which only says how old
``as_of`` is at the moment of the answer), and a matching ``If-None-Match`` is answered 304.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import functions_framework.aio as ff
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from events.fields import Region, Sku
from shared.inventory import InvalidCursor
from shared.inventory.query import InventoryItem, InventoryQueries, ItemQuery, SearchQuery
from shared.platform.httpfn import path_params
from shared.platform.operations import ACCEPT_LANGUAGE, IF_NONE_MATCH, Answer, operation
from shared.platform.problems import (
    Problem,
    from_validation_error,
    not_found,
    problem_responses,
    problem_type,
)

ITEM_PATH = "/v1/inventory/{sku}"
SEARCH_PATH = "/v1/inventory"
MAX_AGE_S = 5
Q = TypeVar("Q", bound=BaseModel)


# --- the answers, as /openapi.json documents them ---------------------------------------------


class InventoryAnswer(InventoryItem):
    """One SKU in a region, with its stock per partner and location."""

    age_seconds: int | None = Field(
        description="How old `as_of` is at the moment of the answer; null when nothing was "
        "reported."
    )


class InventoryPage(BaseModel):
    """A page of a region's catalog with availability (without per-location stock)."""

    region: Region
    items: list[InventoryItem]
    next_cursor: str | None
    as_of: datetime | None = Field(description="The newest report behind the page's numbers.")
    age_seconds: int | None = Field(description="How old `as_of` is at the moment of the answer.")


_CACHED = {
    "ETag": "Strong, over everything but `age_seconds`",
    "Cache-Control": f"`max-age={MAX_AGE_S}`",
    "Content-Language": "The language(s) of the names in the answer",
    "Vary": "`Accept-Language`",
}
_NOT_MODIFIED = Answer(
    None,
    "The caller's copy (If-None-Match) is current",
    {k: v for k, v in _CACHED.items() if k != "Content-Language"},
)
_BAD_QUERY = "A query parameter is not valid (`errors` names each); the cursor is not ours"


@operation(
    "Search availability",
    path=SEARCH_PATH,
    operation_id="search_inventory",
    description="Products of the region's catalog (optionally under a category), by key order, "
    "in the caller's language and the region's (or the asked-for) currency. With "
    "`partner` or `location`, only products with stock there, counted there alone.",
    query=SearchQuery,
    headers=[IF_NONE_MATCH, ACCEPT_LANGUAGE],
    responses={
        200: Answer(InventoryPage, "A page; `next_cursor` asks for the next", _CACHED),
        304: _NOT_MODIFIED,
    },
    problems={400: _BAD_QUERY},
)
@operation(
    "Get one SKU's availability",
    path=ITEM_PATH,
    operation_id="get_inventory_item",
    description="The product in the caller's language and the region's (or the asked-for) "
    "currency, with its stock in the region per partner and location.",
    query=ItemQuery,
    path_params={"sku": Sku},
    headers=[IF_NONE_MATCH, ACCEPT_LANGUAGE],
    responses={200: Answer(InventoryAnswer, "The SKU in the region", _CACHED), 304: _NOT_MODIFIED},
    problems={400: _BAD_QUERY, 404: "The SKU is not in the region's catalog"},
)
@ff.http
@problem_responses
async def inventory_api(request: Request) -> Response:
    accept_language = request.headers.get("accept-language")
    if request.url.path.rstrip("/") == SEARCH_PATH:
        query = _query(request, SearchQuery)
        try:
            page = await run_in_threadpool(InventoryQueries().search, query, accept_language)
        except InvalidCursor as error:
            raise _invalid_query("cursor", str(error).removeprefix("cursor: ")) from None
        items = [
            item.model_dump(mode="json", exclude_none=False, exclude={"locations"})
            for item in page.items
        ]
        as_of = max((item.as_of for item in page.items if item.as_of), default=None)
        document = {
            "region": query.region,
            "items": items,
            "next_cursor": page.next_cursor,
            "as_of": _iso(as_of),
        }
        languages = sorted({item.locale for item in page.items})
    else:
        sku = path_params(request, ITEM_PATH)["sku"]
        item_query = _query(request, ItemQuery)
        item = await run_in_threadpool(InventoryQueries().item, sku, item_query, accept_language)
        if item is None:
            raise not_found(f"SKU {sku} is not in the {item_query.region} catalog")
        as_of = item.as_of
        document = item.model_dump(mode="json")
        languages = [item.locale]
    return _answer(request, document, as_of, languages)


def _query(request: Request, model: type[Q]) -> Q:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as error:
        problem = from_validation_error(error, prefix="query")
        raise Problem(
            400,
            "Query parameters are not valid",
            problem.detail,
            type=problem_type("invalid-query"),
            errors=problem.errors,
        ) from None


def _invalid_query(name: str, message: str) -> Problem:
    return Problem(
        400,
        "Query parameters are not valid",
        f"{name} is not valid",
        type=problem_type("invalid-query"),
        errors=[{"loc": f"query.{name}", "msg": message, "type": "value_error"}],
    )


def _answer(
    request: Request, document: dict[str, Any], as_of: datetime | None, languages: list[str]
) -> Response:
    body = _json(document)
    headers = {
        "ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        "Cache-Control": f"max-age={MAX_AGE_S}",
        "Vary": "Accept-Language",
    }
    if languages:
        headers["Content-Language"] = ", ".join(languages)
    if _matches(request.headers, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    age = None if as_of is None else max(0, int((datetime.now(UTC) - as_of).total_seconds()))
    return Response(
        _json({**document, "age_seconds": age}), media_type="application/json", headers=headers
    )


def _matches(request_headers: Mapping[str, str], etag: str) -> bool:
    wanted = request_headers.get("if-none-match")
    if not wanted:
        return False
    # If-None-Match compares weakly: W/"x" matches "x".
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    return "*" in tags or etag in tags


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
