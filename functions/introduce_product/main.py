"""introduce_product: a partner registers a product in the shared catalog.

The catalog entry is written first (so the partner's SKU maps at once for its stock reports),
then ``catalog.product-introduced`` is published. Re-posting the same product is harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime

import functions_framework.aio as ff
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from events.envelope import new_event
from events.fields import Identifier
from events.inventory import ProductIntroduced
from shared.integration.bus import BusError
from shared.inventory import CatalogConflict, ProductCatalog
from shared.inventory.products import ProductPost, ProductRegistered, product_event_id
from shared.platform.auth import authenticate, require_partner
from shared.platform.httpfn import json_body, path_params
from shared.platform.operations import Answer, operation
from shared.platform.problems import (
    Problem,
    from_validation_error,
    problem_responses,
    problem_type,
    unavailable,
)
from shared.platform.publisher import publish

PATH_PARAMS = {"partner": Identifier}
PATH = "/v1/partners/{partner}/products"


def _register(product: ProductIntroduced) -> str:
    catalog = ProductCatalog()
    existing = catalog.get(product.sku)
    if existing is not None and existing.partner_id == product.partner_id:
        product = product.model_copy(update={"introduced_at": existing.introduced_at})
    outcome = catalog.put(product)
    # Published even when unchanged: a retry after a failed publish must still announce it,
    # and the content-derived id lets consumers drop the copies.
    publish(
        new_event(
            product, source=f"/partners/{product.partner_id}/products", id=product_event_id(product)
        )
    )
    return outcome


@operation(
    "Introduce a product",
    description="Registers the product in the shared catalog (so the partner's SKU maps at "
    "once for its stock reports), then publishes `catalog.product-introduced`. "
    "Posting the same product again is harmless.",
    request=ProductPost,
    path_params=PATH_PARAMS,
    responses={
        201: Answer(
            ProductRegistered,
            "The product is new in the catalog",
            {"Location": "The product in the inventory API"},
        ),
        200: Answer(
            ProductRegistered,
            "The product was updated, or was already so",
            {"Location": "The product in the inventory API"},
        ),
    },
    problems={
        404: "The partner in the path is not a partner id",
        409: "The SKU belongs to another partner, or the partner SKU maps to another SKU",
        503: "The event bus (or the key store) cannot take the product; retry",
    },
)
@ff.http
@problem_responses
async def introduce_product(request: Request) -> Response:
    partner = path_params(request, PATH, PATH_PARAMS)["partner"]
    principal = await run_in_threadpool(authenticate, request, scopes={"catalog:write"})
    require_partner(principal, partner)
    post = await json_body(request, ProductPost)
    try:
        product = ProductIntroduced(
            partner_id=partner,
            introduced_at=datetime.now(UTC),
            **post.model_dump(exclude_none=True),
        )
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    try:
        outcome = await run_in_threadpool(_register, product)
    except CatalogConflict as exc:
        raise Problem(
            409, "Catalog conflict", str(exc), type=problem_type("catalog-conflict")
        ) from None
    except BusError:
        raise unavailable(
            "The event bus cannot take the product right now; retry", retry_after_s=5
        ) from None
    status = 201 if outcome == "created" else 200
    return JSONResponse(
        {"sku": product.sku, "outcome": outcome},
        status_code=status,
        headers={"Location": f"/v1/inventory/{product.sku}"},
    )
