"""Load a function the way functions-framework does, from its ``handler`` in serverless.yaml.

Functions are written against ``functions_framework.aio`` (``@http`` gets a Starlette request,
``@cloud_event`` a ``cloudevents.http.CloudEvent``), so that the same module runs unchanged under
``functions-framework --target <fn> --asgi`` on Code Engine, Knative or Cloud Run.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from functions_framework import _function_registry
from functions_framework.aio import create_asgi_app_from_module

SignatureType = Literal["http", "cloudevent"]


class HandlerError(Exception):
    """A handler in serverless.yaml cannot be imported or is not a functions-framework function."""


@dataclass(frozen=True)
class LoadedFunction:
    name: str
    handler: str
    callable: Callable[..., Any]
    signature: SignatureType
    is_async: bool

    def asgi_app(self) -> Any:
        """The function's own functions-framework ASGI app, as ``--asgi`` would serve it."""
        module_name, target = self.handler.split(":")
        module = importlib.import_module(module_name)
        return create_asgi_app_from_module(  # type: ignore[no-untyped-call]  # functions-framework leaves it unannotated
            target, module.__file__, self.signature, module, None
        )


def load_function(name: str, handler: str) -> LoadedFunction:
    module_name, _, target = handler.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import error of any kind is a configuration problem here
        raise HandlerError(
            f"functions.{name}.handler: cannot import {module_name!r}: {exc}"
        ) from exc
    func = getattr(module, target, None)
    if not callable(func):
        raise HandlerError(f"functions.{name}.handler: {module_name!r} has no function {target!r}")
    # functions-framework keys its registry by bare name; the decorator's wrapper is what tells
    # this function from an undecorated namesake elsewhere.
    signature = _function_registry.REGISTRY_MAP.get(func.__name__)
    if signature not in ("http", "cloudevent") or not hasattr(func, "__wrapped__"):
        raise HandlerError(
            f"functions.{name}.handler: {handler!r} is not decorated with "
            "@functions_framework.aio.http or @functions_framework.aio.cloud_event"
        )
    return LoadedFunction(name, handler, func, signature, inspect.iscoroutinefunction(func))
