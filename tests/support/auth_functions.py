"""Example HTTP functions guarded by ``shared.platform.auth``, written like real ones in ``functions/``."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from events.fields import Identifier
from shared.platform.auth import authenticate, require_partner
from shared.platform.httpfn import path_params
from shared.platform.problems import problem_responses

STOCK_PATH = "/v1/partners/{partner}/stock"


@functions_framework.aio.http
@problem_responses
async def report_stock(request: Request) -> Response:
    principal = authenticate(request, scopes={"stock:write"})
    partner = path_params(request, STOCK_PATH, {"partner": Identifier})["partner"]
    require_partner(principal, partner)
    return JSONResponse(
        {"partner": partner, "by": principal.subject, "via": principal.method}, status_code=202
    )


@functions_framework.aio.http
@problem_responses
async def read_inventory(request: Request) -> Response:
    principal = authenticate(request, scopes={"inventory:read"})
    return JSONResponse({"subject": principal.subject, "partner": principal.partner_id})
