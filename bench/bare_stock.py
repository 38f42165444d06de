"""Baselines of ``bench.http_stock``: bare functions-framework functions that parse a stock post
with the same model as ``report_stock`` and answer 202, without auth, idempotency or the runtime's
router in front.

``bare_stock`` does nothing else; ``bare_stock_publishing`` also publishes the same events to the
bus (the same ``stock_events`` and ``publish_many`` as ``report_stock``), to tell the runtime's
own cost from the bus's.
"""

from __future__ import annotations

import functions_framework.aio as ff
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.inventory.reports import StockPost, stock_events
from shared.platform.publisher import publish_many


@ff.http
async def bare_stock(request: Request) -> Response:
    post = StockPost.model_validate_json(await request.body())
    return JSONResponse({"accepted": len(post.lines)}, status_code=202)


@ff.http
async def bare_stock_publishing(request: Request) -> Response:
    post = StockPost.model_validate_json(await request.body())
    events = stock_events("acme", post)
    await run_in_threadpool(publish_many, events)
    return JSONResponse(
        {"accepted": len(events), "event_ids": [e.id for e in events]}, status_code=202
    )
