"""stock_rejections: a partner's stock reports that ingest_stock refused, newest first.

``GET /v1/partners/{partner}/rejections?cursor=&limit=``. A report accepted at the edge (a 202
over HTTP, a record on Kafka) can still be refused when it is applied: a partner SKU the partner
never introduced, a ``reported_at`` too far ahead, a quantity its unit does not allow. Such a
report is dead-lettered for operators and listed here for its partner (see
:mod:`shared.inventory.rejections`). A partner sees only its own.
"""

from __future__ import annotations

import functions_framework.aio as ff
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from events.fields import Identifier
from shared.integration.objectstore import ObjectStoreError
from shared.inventory import InvalidCursor
from shared.inventory.rejections import StockRejection, StockRejections
from shared.platform.auth import authenticate, require_partner
from shared.platform.httpfn import path_params
from shared.platform.operations import Answer, operation
from shared.platform.problems import (
    Problem,
    from_validation_error,
    problem_responses,
    problem_type,
    unavailable,
)

PATH = "/v1/partners/{partner}/rejections"
PATH_PARAMS = {"partner": Identifier}
MAX_PAGE = 200


class RejectionsQuery(BaseModel):
    """Query of ``GET /v1/partners/{partner}/rejections``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    cursor: str | None = Field(
        None, min_length=1, max_length=4096, description="`next_cursor` of the previous page."
    )
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class RejectionsPage(BaseModel):
    """A page of the partner's refused stock reports, newest first."""

    partner_id: str
    items: list[StockRejection]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )


@operation(
    "List refused stock reports",
    description="The partner's stock reports that were accepted at the edge but refused when "
    "applied (a partner SKU not introduced yet, a `reported_at` too far ahead, a "
    "quantity its unit does not allow), from every channel (HTTP, file drops, "
    "Kafka), newest first. A bad line of a file drop is in the drop's report as well.",
    operation_id="list_stock_rejections",
    query=RejectionsQuery,
    path_params=PATH_PARAMS,
    responses={200: Answer(RejectionsPage, "A page; `next_cursor` asks for the next")},
    problems={
        400: "A query parameter is not valid (`errors` names each); the cursor is not "
        "one of this listing",
        404: "The partner in the path is not a partner id",
        503: "The state store cannot be reached; retry after `Retry-After` seconds",
    },
)
@ff.http
@problem_responses
async def stock_rejections(request: Request) -> Response:
    partner = path_params(request, PATH, PATH_PARAMS)["partner"]
    page = await run_in_threadpool(_page, request.headers, request.query_params, partner)
    return JSONResponse(page.model_dump(mode="json"))


def _page(headers: Headers, params: QueryParams, partner: str) -> RejectionsPage:
    principal = authenticate(headers, scopes={"inventory:read"})
    require_partner(principal, partner)
    try:
        query = RejectionsQuery.model_validate(dict(params))
    except ValidationError as error:
        problem = from_validation_error(error, prefix="query")
        raise Problem(
            400,
            "Query parameters are not valid",
            problem.detail,
            type=problem_type("invalid-query"),
            errors=problem.errors,
        ) from None
    try:
        found = StockRejections().list(partner, cursor=query.cursor, limit=query.limit)
    except InvalidCursor:
        raise Problem(
            400,
            "Query parameters are not valid",
            "cursor is not valid",
            type=problem_type("invalid-query"),
            errors=[
                {
                    "loc": "query.cursor",
                    "msg": "not a cursor of this listing",
                    "type": "value_error",
                }
            ],
        ) from None
    except ObjectStoreError:
        raise unavailable(
            "The state store cannot be reached right now; retry", retry_after_s=5
        ) from None
    return RejectionsPage(partner_id=partner, items=found.items, next_cursor=found.next_cursor)
