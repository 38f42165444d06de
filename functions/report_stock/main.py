"""report_stock: partners post stock levels over HTTP; each line becomes a stock-reported event."""

from __future__ import annotations

from typing import Any

import functions_framework.aio as ff
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from events.fields import Identifier
from shared.auth import authenticate, require_partner
from shared.bus import BusError
from shared.httpfn import parse_body, path_params
from shared.idempotency import Idempotency, idempotency_key, request_fingerprint
from shared.openapi import IDEMPOTENCY_KEY, Answer, operation
from shared.problems import payload_too_large, problem_responses, unavailable
from shared.publisher import publish_many
from shared.settings import get_settings
from shared.stock_reports import StockAccepted, StockPost, stock_events

PATH = "/v1/partners/{partner}/stock"


def _batch_limit() -> int:
    return get_settings().stock_batch_limit


@operation(
    "Report stock levels",
    description="One line, or up to `RETAILFN_STOCK_BATCH_LIMIT` (1000) lines, of a partner's "
                "stock per location; each line is published as one `inventory.stock-reported` "
                "event. With `Idempotency-Key`, a retry publishes the same event ids.",
    request=StockPost,
    path_params={"partner": Identifier},
    headers=[IDEMPOTENCY_KEY],
    responses={202: Answer(StockAccepted, "Every line was published",
                           {"Idempotent-Replayed": "`true` when this is the kept first answer"})},
    problems={
        400: "The body is not JSON, or the Idempotency-Key is malformed",
        413: "More lines than the batch limit, or a body over the runtime's limit",
        422: "A line failed validation (`errors` names each field), or the Idempotency-Key "
             "was used before for a different request",
        503: "The event bus (or the key store) cannot take the report; retry with the same "
             "Idempotency-Key",
    },
)
@ff.http
@problem_responses
async def report_stock(request: Request) -> Response:
    partner = path_params(request, PATH)["partner"]
    body = await request.body()
    # One hop to a worker thread for everything that blocks: the key lookup, the publish.
    status, answer, replayed = await run_in_threadpool(
        _report, request.headers, request.method, request.url.path, partner, body)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(answer, status_code=status, headers=headers)


def _report(headers: Headers, method: str, path: str, partner: str,
            body: bytes) -> tuple[int, dict[str, Any], bool]:
    principal = authenticate(headers, scopes={"stock:write"})
    require_partner(principal, partner)
    key = idempotency_key(headers)
    fingerprint = request_fingerprint(method, path, body)
    idem = Idempotency(f"report_stock/{partner}") if key else None
    if idem is not None and key:
        previous = idem.previous(key, fingerprint)
        if previous is not None:
            return previous.status, previous.body, True
    post = parse_body(body, StockPost)
    if len(post.lines) > _batch_limit():
        raise payload_too_large(f"At most {_batch_limit()} lines per request; "
                                f"this one has {len(post.lines)}")
    events = stock_events(partner, post, idempotency_key=key)
    try:
        publish_many(events)
    except BusError:
        # Never 202 for a write the bus did not take: the partner retries, same key, same ids.
        raise unavailable("The event bus cannot take the report right now; retry",
                          retry_after_s=5) from None
    answer = {"accepted": len(events), "event_ids": [e.id for e in events]}
    if idem is not None and key:
        idem.remember(key, fingerprint, 202, answer)
    return 202, answer, False
