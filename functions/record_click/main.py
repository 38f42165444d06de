"""record_click: a shopper followed a recommendation; published as ``recommendation.clicked``.

``POST /v1/recommendations/{request_id}/clicks`` with ``{"sku", "source_sku", "kind", "user"}``.
The experiment and variant are assigned again from ``user`` (deterministic), not taken from the
client. A public write like a web analytics beacon; the event id comes from the request id and
the SKU, so a repeated click is one click to every consumer.
"""

from __future__ import annotations

import functions_framework.aio as ff
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from events.fields import Identifier
from shared.crosssell.recommendations import ClickAccepted, ClickPost, click_event
from shared.integration.bus import BusError
from shared.platform.httpfn import json_body, path_params
from shared.platform.operations import Answer, operation
from shared.platform.problems import not_found, problem_responses, unavailable
from shared.platform.publisher import publish_many

PATH = "/v1/recommendations/{request_id}/clicks"
_REQUEST_ID = TypeAdapter(Identifier)


@operation(
    "Record a click on a recommendation",
    path=PATH,
    operation_id="record_recommendation_click",
    description="Publishes `recommendation.clicked` for the answer named by `request_id`; the "
    "variant is the user's (assigned again), so the A/B report can join it.",
    request=ClickPost,
    path_params={"request_id": Identifier},
    responses={202: Answer(ClickAccepted, "The click was published")},
    problems={
        400: "The body is not JSON",
        422: "A field failed validation",
        503: "The event bus cannot take the click; retry",
    },
)
@ff.http
@problem_responses
async def record_click(request: Request) -> Response:
    request_id = path_params(request, PATH)["request_id"]
    click = await json_body(request, ClickPost)
    try:
        request_id = _REQUEST_ID.validate_python(request_id)
    except ValidationError:
        raise not_found("The path does not name a recommendation answer") from None
    event = click_event(request_id, click)
    try:
        await run_in_threadpool(publish_many, [event])
    except BusError:
        raise unavailable(
            "The event bus cannot take the click right now; retry", retry_after_s=5
        ) from None
    answer = ClickAccepted(
        event_id=event.id, experiment=event.data.experiment, variant=event.data.variant
    )
    return JSONResponse(answer.model_dump(), status_code=202)
