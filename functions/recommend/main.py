"""recommend: cross-sell and up-sell for a SKU, only of what partners have in stock in the region.

``GET /v1/recommendations/{sku}?region=&lang=&currency=&user=&limit=``. A public read like the
inventory API: ``user`` is an opaque shopper id for the A/B assignment, not a login. Names and
prices are negotiated like the inventory API's (``Content-Language`` says which). The answer is
announced as ``recommendation.shown`` on ``recommendations.events`` after it is sent; a bus that
cannot take it is logged, never turned into a failed read.
"""

from __future__ import annotations

import json
import logging

import functions_framework.aio as ff
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from events.fields import Sku
from shared.crosssell.recommendations import (
    Recommendations,
    Recommender,
    RecommendQuery,
    shown_events,
)
from shared.platform.httpfn import path_params
from shared.platform.operations import ACCEPT_LANGUAGE, Answer, operation
from shared.platform.problems import (
    Problem,
    from_validation_error,
    not_found,
    problem_responses,
    problem_type,
)
from shared.platform.publisher import publish_later

PATH = "/v1/recommendations/{sku}"
log = logging.getLogger("retailfn.recommend")


@operation(
    "Recommend cross-sells and up-sells",
    path=PATH,
    operation_id="get_recommendations",
    description="Items bought together with the SKU (from the co-occurrence model of the "
    "region's baskets; the category's best sellers when it knows none) and better "
    "variants of it, each only if available in the region now, with the reason and "
    "the age of the stock figure. `user` picks the A/B variant (none: control).",
    query=RecommendQuery,
    path_params={"sku": Sku},
    headers=[ACCEPT_LANGUAGE],
    responses={
        200: Answer(
            Recommendations,
            "The lists (possibly empty)",
            {
                "Content-Language": "The language(s) of the names in the answer",
                "Cache-Control": "`no-store`: stock and variants change",
            },
        )
    },
    problems={
        400: "A query parameter is not valid (`errors` names each)",
        404: "The SKU is not in the region's catalog",
    },
)
@ff.http
@problem_responses
async def recommend(request: Request) -> Response:
    sku = path_params(request, PATH)["sku"]
    try:
        query = RecommendQuery.model_validate(dict(request.query_params))
    except ValidationError as error:
        problem = from_validation_error(error, prefix="query")
        raise Problem(
            400,
            "Query parameters are not valid",
            problem.detail,
            type=problem_type("invalid-query"),
            errors=problem.errors,
        ) from None
    answer = await run_in_threadpool(
        Recommender().recommend, sku, query, request.headers.get("accept-language")
    )
    if answer is None:
        raise not_found(f"SKU {sku} is not in the {query.region} catalog")
    languages = sorted({item.locale for item in (*answer.cross_sell, *answer.up_sell)})
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Language"}
    if languages:
        headers["Content-Language"] = ", ".join(languages)
    body = json.dumps(
        answer.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")
    ).encode()
    return Response(
        body,
        media_type="application/json",
        headers=headers,
        background=BackgroundTask(_announce, answer, query.user),
    )


async def _announce(answer: Recommendations, user: str | None) -> None:
    try:
        events = shown_events(answer, user)
        if events:
            publish_later(events)  # batched off the request path: it feeds a statistic
    except Exception:
        log.warning(
            "recommendation.shown not published",
            exc_info=True,
            extra={"request_id": answer.request_id, "sku": answer.sku},
        )
