"""Example HTTP functions for the runtime's tests, written like real ones in ``functions/``."""

from __future__ import annotations

import asyncio
import threading

import functions_framework.aio
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.platform.httpfn import json_body, path_params
from shared.platform.problems import problem_responses
from shared.runtime.http import current_request_id

ECHO_PATH = "/v1/partners/{partner}/items/{sku}"


@functions_framework.aio.http
@problem_responses
async def echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "params": path_params(request, ECHO_PATH),
            "query": dict(request.query_params),
            "request_id": current_request_id(),
        }
    )


@functions_framework.aio.http
async def crash(request: Request) -> Response:
    raise RuntimeError("secret-token-123")


class StockLine(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=0)


class StockReport(BaseModel):
    partner: str
    lines: list[StockLine] = Field(min_length=1)


@functions_framework.aio.http
@problem_responses
async def validate(request: Request) -> Response:
    report = await json_body(request, StockReport)
    return JSONResponse({"accepted": len(report.lines)}, status_code=202)


@functions_framework.aio.http
@problem_responses
def sync_hello(request: Request) -> Response:
    return JSONResponse({"hello": request.url.path})


slow_started = threading.Event()
"""Set once ``slow`` is running, so a test can act while a request is in flight."""


@functions_framework.aio.http
async def slow(request: Request) -> Response:
    slow_started.set()
    await asyncio.sleep(float(request.query_params.get("seconds", "0.5")))
    return JSONResponse({"slept": True})
