"""What an HTTP function declares about its routes, for the API document the runtime serves.

Declared next to the function, with the pydantic models the function validates with::

    @operation(summary="Report stock levels", request=StockPost,
               path_params={"partner": Identifier}, headers=[IDEMPOTENCY_KEY],
               responses={202: Answer(StockAccepted, "Published, one event per line")},
               problems={503: "The event bus cannot take the report; retry"})
    @ff.http
    @problem_responses
    async def report_stock(request): ...

``@operation`` only attaches an :class:`Operation` to the function object: the function, its
functions-framework registration and what the loader sees stay as they were. A function serving
several routes stacks one ``@operation(path=...)`` per route. The document itself is built by
:mod:`shared.runtime.openapi`, which reads these declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, StringConstraints

OPERATIONS_ATTRIBUTE = "__openapi_operations__"
JSON = "application/json"

F = TypeVar("F", bound=Callable[..., Any])


# --- declarations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A request header an operation reads. ``schema`` is a type (``str``, an ``Annotated``...)."""

    name: str
    description: str
    schema: Any = str
    required: bool = False


@dataclass(frozen=True)
class Answer:
    """A success answer: its body model (``None``: no body), what it means, and the response
    headers it carries (name -> description)."""

    model: Any = None
    description: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = JSON


@dataclass(frozen=True)
class Operation:
    """What one route of a function takes and answers. ``path`` picks the route when the
    function serves several; ``None`` applies to all of them."""

    summary: str
    description: str = ""
    path: str | None = None
    operation_id: str | None = None
    request: Any = None
    """The body's type, validated as JSON (e.g. the model passed to ``json_body``)."""
    query: type[BaseModel] | None = None
    """A model whose fields are the query parameters."""
    path_params: Mapping[str, Any] = field(default_factory=dict)
    """Types of the path's ``{param}`` placeholders; an undeclared one is a plain string."""
    headers: tuple[Header, ...] = ()
    responses: Mapping[int, Any] = field(default_factory=dict)
    """Status -> a model, an :class:`Answer`, or ``None`` for no body."""
    problems: Mapping[int, str] = field(default_factory=dict)
    """Error statuses the function answers, with when; they are problem documents."""
    tags: tuple[str, ...] = ()


def operation(summary: str, **details: Any) -> Callable[[F], F]:
    """Declare a route's operation on an HTTP function (see :class:`Operation` for the fields).

    Put it above ``@ff.http``: it sets an attribute and returns the function unchanged.
    """
    details["headers"] = tuple(details.get("headers", ()))
    details["tags"] = tuple(details.get("tags", ()))
    declared = Operation(summary, **details)

    def attach(func: F) -> F:
        setattr(func, OPERATIONS_ATTRIBUTE, (*declared_operations(func), declared))
        return func

    return attach


def declared_operations(func: Callable[..., Any]) -> tuple[Operation, ...]:
    """The operations declared on ``func`` or on any function it wraps."""
    seen: Callable[..., Any] | None = func
    while seen is not None:
        found = getattr(seen, OPERATIONS_ATTRIBUTE, None)
        if found:
            return tuple(found)
        seen = getattr(seen, "__wrapped__", None)
    return ()


# --- headers several functions read ----------------------------------------------------------

IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "Makes a retry safe: the first answer to a key is kept for 24 hours and given again "
    "(with `Idempotent-Replayed: true`) to a retry of the same request; the same key with a "
    "different request is a 422.",
    Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,255}$")],
)
IF_NONE_MATCH = Header(
    "If-None-Match",
    "ETags of answers the caller holds (weak comparison, `*` matches any); a match is "
    "answered 304 without a body.",
)
ACCEPT_LANGUAGE = Header(
    "Accept-Language",
    "Preferred languages, used when the `lang` query parameter is not given.",
)
