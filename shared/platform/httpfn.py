"""Small helpers for the edge of an HTTP function: path parameters and a typed JSON body.

A function sees the real request path (as behind Code Engine or Cloud Run, where there is no
router in front of it), so it pulls its parameters out with the same pattern it is routed by in
``serverless.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from re import Pattern
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.routing import compile_path

from shared.platform.problems import bad_request, from_validation_error, not_found

M = TypeVar("M", bound=BaseModel)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> tuple[Pattern[str], dict[str, Any]]:
    regex, _format, convertors = compile_path(pattern)
    return regex, convertors


@lru_cache(maxsize=64)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def path_params(
    request: Request, pattern: str, types: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``{param}`` values of ``pattern`` (e.g. ``/v1/partners/{partner}/stock``) in the
    request's path, each validated as its annotation in ``types`` (e.g. ``{"partner":
    Identifier}``). A path that does not fit the pattern, or a value that does not fit its type,
    is a 404 :class:`Problem`: such a path names no resource that could exist, just as a typed
    router would not match it. The message names the parameter, never the value sent."""
    regex, convertors = _compiled(pattern)
    match = regex.match(request.url.path)
    if match is None:
        raise not_found(f"The path does not match {pattern}")
    params = {key: convertors[key].convert(value) for key, value in match.groupdict().items()}
    for key, annotation in (types or {}).items():
        try:
            params[key] = _adapter(annotation).validate_python(params[key])
        except ValidationError as exc:
            msg = exc.errors(include_url=False, include_input=False, include_context=False)[0][
                "msg"
            ]
            raise not_found(
                f"The path does not match {pattern}: {{{key}}} is not valid ({msg})"
            ) from None
    return params


async def json_body(request: Request, model: type[M]) -> M:
    """The request body as ``model``: not JSON is a 400, not valid is a 422 naming each field."""
    return parse_body(await request.body(), model)


def parse_body(body: bytes, model: type[M]) -> M:
    """:func:`json_body` for a body already read (from a worker thread, say)."""
    if not body.strip():
        raise bad_request("The request body is empty; expected a JSON document")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(err["type"] == "json_invalid" for err in errors):
            # pydantic's message names the position only, never the content.
            raise bad_request(f"The request body is not valid JSON: {errors[0]['msg']}") from None
        raise from_validation_error(exc) from None
