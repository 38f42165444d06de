"""report_stock: partners post stock levels over HTTP; each line becomes a stock-reported event."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import functions_framework.aio as ff
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from events.fields import Identifier
from shared.integration.bus import BusError
from shared.integration.state import StateUnavailable
from shared.inventory.reports import StockAccepted, StockPost, stock_events
from shared.platform.auth import authenticate, require_partner
from shared.platform.httpfn import parse_body, path_params
from shared.platform.idempotency import (
    Idempotency,
    StoredAnswer,
    idempotency_key,
    request_fingerprint,
)
from shared.platform.operations import IDEMPOTENCY_KEY, Answer, operation
from shared.platform.problems import payload_too_large, problem_responses, unavailable
from shared.platform.publisher import publish_many
from shared.platform.settings import get_settings

log = logging.getLogger("retailfn.report_stock")

PATH_PARAMS = {"partner": Identifier}
PATH = "/v1/partners/{partner}/stock"


def _batch_limit() -> int:
    return get_settings().stock_batch_limit


@operation(
    "Report stock levels",
    description="One line, or up to `RETAILFN_STOCK_BATCH_LIMIT` (1000) lines, of a partner's "
    "stock per location; each line is published as one `inventory.stock-reported` "
    "event. With `Idempotency-Key`, a retry publishes the same event ids.",
    request=StockPost,
    path_params=PATH_PARAMS,
    headers=[IDEMPOTENCY_KEY],
    responses={
        202: Answer(
            StockAccepted,
            "Every line was published",
            {"Idempotent-Replayed": "`true` when this is the kept first answer"},
        )
    },
    problems={
        400: "The body is not JSON, or the Idempotency-Key is malformed",
        404: "The partner in the path is not a partner id",
        409: "A request with the same Idempotency-Key is still in progress; retry after "
        "`Retry-After` seconds",
        413: "More lines than the batch limit, or a body over the runtime's limit",
        422: "No lines, a line failed validation (`errors` names each field; a `reported_at` "
        "more than `RETAILFN_STOCK_MAX_FUTURE_SKEW_S` (300) s ahead is refused), or the "
        "Idempotency-Key was used before for a different request",
        503: "The event bus (or the key store) cannot take the report; retry with the same "
        "Idempotency-Key",
    },
)
@ff.http
@problem_responses
async def report_stock(request: Request) -> Response:
    partner = path_params(request, PATH, PATH_PARAMS)["partner"]
    body = await request.body()
    # One hop to a worker thread for everything that blocks: the key lookup, the publish.
    status, answer, replayed = await run_in_threadpool(
        _report, request.headers, request.method, request.url.path, partner, body
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(answer, status_code=status, headers=headers)


def _report(
    headers: Headers, method: str, path: str, partner: str, body: bytes
) -> tuple[int, dict[str, Any], bool]:
    principal = authenticate(headers, scopes={"stock:write"})
    require_partner(principal, partner)
    key = idempotency_key(headers)
    if key is None:
        return 202, _publish(partner, body, None), False
    idem = Idempotency(f"report_stock/{partner}")
    try:
        # Reserved before anything is published: of two requests racing with one key, only the
        # holder publishes; the other is told so (409 or 422) instead of getting a 202.
        outcome = idem.begin(key, request_fingerprint(method, path, body))
    except StateUnavailable:
        # Never 202 for a write not taken, nor a publish without the key held.
        log.warning(
            "the Idempotency-Key store is unavailable", exc_info=True, extra={"partner_id": partner}
        )
        raise unavailable(
            "The key store cannot be reached right now; retry", retry_after_s=5
        ) from None
    if isinstance(outcome, StoredAnswer):
        return outcome.status, outcome.body, True
    try:
        answer = _publish(partner, body, key)
    except BaseException:
        try:
            idem.release(outcome)  # nothing was taken, so the retry must not be refused
        except StateUnavailable:  # then the key is free again when its lease ends
            log.warning(
                "an Idempotency-Key reservation could not be released",
                exc_info=True,
                extra={"partner_id": partner},
            )
        raise
    try:
        idem.complete(outcome, 202, answer)
    except StateUnavailable:
        # The write was taken: say so. Until the lease ends a retry gets a 409, then it takes
        # the key over and re-publishes the same event ids, which consumers drop.
        log.warning(
            "the answer to an Idempotency-Key request could not be kept",
            exc_info=True,
            extra={"partner_id": partner},
        )
    return 202, answer, False


def _publish(partner: str, body: bytes, key: str | None) -> dict[str, Any]:
    post = parse_body(body, StockPost)
    if len(post.lines) > _batch_limit():
        raise payload_too_large(
            f"At most {_batch_limit()} lines per request; this one has {len(post.lines)}"
        )
    skew = timedelta(seconds=get_settings().stock_max_future_skew_s)
    events = stock_events(partner, post, idempotency_key=key, max_future_skew=skew)
    try:
        publish_many(events)
    except BusError:
        # Never 202 for a write the bus did not take: the partner retries, same key, same ids.
        raise unavailable(
            "The event bus cannot take the report right now; retry", retry_after_s=5
        ) from None
    return {"accepted": len(events), "event_ids": [e.id for e in events]}
