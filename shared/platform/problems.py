"""HTTP errors as RFC 9457 problem details (``application/problem+json``).

A function raises :class:`Problem` (or one of the helpers below) and wraps its entry point with
:func:`problem_responses`; the caller then gets a problem document instead of functions-framework's
plain-text 500. Problem documents never echo request values back: validation errors name the
field and say what is wrong with it, but not what was sent (it could be a secret).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://retailfn.dev/problems/"


def problem_type(slug: str) -> str:
    """The ``type`` URI of one of our problem kinds, e.g. ``validation-error``."""
    return PROBLEM_TYPE_BASE + slug


class Problem(Exception):
    """An HTTP error the caller is meant to see, as an RFC 9457 problem document.

    ``type`` is ``about:blank`` (then ``title`` is the status phrase) or one of ours from
    :func:`problem_type`. ``errors`` lists ``{"loc": "lines[2].quantity", "msg": ...}`` items;
    ``headers`` go on the response (``Retry-After``, ``Allow``, ``WWW-Authenticate``);
    ``extensions`` become extra members of the document (e.g. ``request_id``).
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        instance: str | None = None,
        errors: Iterable[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type
        self.instance = instance
        self.errors = [dict(e) for e in errors] if errors is not None else None
        self.headers = dict(headers or {})
        self.extensions = extensions
        super().__init__(f"{status} {self.title}" + (f": {detail}" if detail else ""))

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            doc["detail"] = self.detail
        if self.instance is not None:
            doc["instance"] = self.instance
        if self.errors is not None:
            doc["errors"] = self.errors
        for key, value in self.extensions.items():
            doc.setdefault(key, value)
        return doc


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> Response:
    """The ``application/problem+json`` response for ``problem`` (plus any extra ``headers``)."""
    all_headers = dict(problem.headers)
    if headers:
        all_headers.update(headers)
    return ProblemResponse(problem.to_dict(), status_code=problem.status, headers=all_headers)


# --- helpers ---------------------------------------------------------------------------------


def _join_loc(loc: Iterable[int | str], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_validation_error(exc: ValidationError, *, prefix: str = "") -> Problem:
    """422 with one ``{"loc", "msg", "type"}`` per bad field; the offending input is never
    included (pydantic's ``input`` and ``ctx`` are dropped)."""
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = _join_loc(err["loc"], prefix)
        if loc in seen:  # e.g. one message per member of a union; the first says enough
            continue
        seen.add(loc)
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        errors.append({"loc": loc, "msg": msg, "type": err["type"]})
    count = len(errors)
    return Problem(
        422,
        "Request body is not valid",
        f"{count} field{'s' if count != 1 else ''} failed validation",
        type=problem_type("validation-error"),
        errors=errors,
    )


def bad_request(detail: str, **extensions: Any) -> Problem:
    return Problem(400, detail=detail, **extensions)


def unauthorized(detail: str = "Authentication is required", scheme: str = "Bearer") -> Problem:
    return Problem(401, detail=detail, headers={"WWW-Authenticate": f'{scheme} realm="retailfn"'})


def forbidden(detail: str = "Not allowed") -> Problem:
    return Problem(403, detail=detail)


def not_found(detail: str = "Not found") -> Problem:
    return Problem(404, detail=detail)


def method_not_allowed(allowed: Iterable[str], detail: str | None = None) -> Problem:
    allow = ", ".join(m.upper() for m in allowed)
    return Problem(405, detail=detail or f"Allowed methods: {allow}", headers={"Allow": allow})


def payload_too_large(
    detail: str = "The request body is too large", limit_bytes: int | None = None
) -> Problem:
    kind = problem_type("payload-too-large")
    if limit_bytes is None:
        return Problem(413, detail=detail, type=kind)
    return Problem(413, detail=detail, type=kind, limit_bytes=limit_bytes)


def unavailable(detail: str = "Temporarily unavailable", retry_after_s: float = 1) -> Problem:
    return Problem(
        503, detail=detail, headers={"Retry-After": str(max(0, math.ceil(retry_after_s)))}
    )


def internal_error(request_id: str | None = None) -> Problem:
    """The generic 500: says nothing about the failure except where to look it up."""
    detail = "The request failed unexpectedly"
    if request_id:
        return Problem(
            500,
            detail=f"{detail}; it was logged with request id {request_id}",
            request_id=request_id,
        )
    return Problem(500, detail=detail)


# --- inside a function -----------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def problem_responses(func: F) -> F:
    """Answer a :class:`Problem` raised by ``func(request)`` with its problem document.

    Works on async and sync functions and keeps the name, so it composes with
    ``@functions_framework.aio.http`` on either side::

        @functions_framework.aio.http
        @problem_responses
        async def report_stock(request): ...
    """
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except Problem as problem:
                return problem_response(problem)

        return async_wrapper  # type: ignore[return-value]  # func's signature, by functools.wraps

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Problem as problem:
            return problem_response(problem)

    return wrapper  # type: ignore[return-value]  # func's signature, by functools.wraps
