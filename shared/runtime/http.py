"""The HTTP front of the local runtime: one ASGI app for every http trigger in serverless.yaml.

Each function keeps its own functions-framework ASGI app (built once), exactly what
``functions-framework --target <fn> --asgi`` would serve on Code Engine or Cloud Run. This app only
routes to it and adds what a platform's ingress would: 404/405 as problem documents, a body limit,
request ids, metrics, one access-log line per request, and a problem document instead of a
plain-text 500 when a function crashes. The ASGI scope is forwarded unchanged, so a function
sees the real path, as it would behind a real platform.

It is a bare ASGI callable rather than a Starlette app on purpose: it sits in front of every
request, and the functions' own apps already are Starlette.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from re import Pattern
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import compile_path

from shared.platform.observability import HTTP_LATENCY, HTTP_REQUESTS, REGISTRY
from shared.platform.problems import (
    PROBLEM_JSON,
    Problem,
    bad_request,
    internal_error,
    method_not_allowed,
    not_found,
    payload_too_large,
    unavailable,
)
from shared.platform.settings import Settings, enter_settings, exit_settings
from shared.runtime.config import ServiceConfig
from shared.runtime.loader import LoadedFunction
from shared.runtime.openapi import openapi_document, render_docs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
UNROUTED = "-"
"""The ``function`` label of requests that matched no route (404, 405)."""

access_log = logging.getLogger("retailfn.http")

_REQUEST_ID: ContextVar[str | None] = ContextVar("retailfn_request_id", default=None)
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
_CRASH_HEADER = b"x-google-status"  # functions-framework marks its own crash response with it
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


_id_prefix: str
_id_counter: Iterator[int]


def _reseed() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = itertools.count(1)


_reseed()
os.register_at_fork(after_in_child=_reseed)  # a forked worker must not repeat its parent's ids


def _new_request_id() -> bytes:
    # 32 hex digits like a uuid4, but a random per-process prefix plus a counter: uuid4() per
    # request costs more than the rest of the routing.
    return f"{_id_prefix}{next(_id_counter):016x}".encode()


def current_request_id() -> str | None:
    """The id of the request being handled (set for the function's whole call), for logs."""
    return _REQUEST_ID.get()


@dataclass(frozen=True, slots=True)
class _Target:
    function: str
    app: ASGIApp
    max_body: int
    latency: Any  # the function's HTTP_LATENCY child, bound once
    settings: Settings | None = None  # the function's own, current while it runs


class HttpApp:
    """The ASGI app built by :func:`build_http_app`."""

    def __init__(
        self,
        static: dict[str, dict[str, _Target]],
        dynamic: list[tuple[Pattern[str], dict[str, _Target]]],
        ready: Callable[[], bool],
        documents: Mapping[str, Callable[[], tuple[int, bytes, bytes] | Problem]] | None = None,
    ) -> None:
        self._static = static
        self._dynamic = dynamic
        self._ready = ready
        self._builtins: dict[str, Callable[[], tuple[int, bytes, bytes] | Problem]] = {
            "/healthz": lambda: (200, b"application/json", b'{"status":"ok"}'),
            "/readyz": self._readyz,
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST.encode(), generate_latest(REGISTRY)),
            **(documents or {}),
        }
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._unrouted_latency = HTTP_LATENCY.labels(UNROUTED)

    def _readyz(self) -> tuple[int, bytes, bytes] | Problem:
        if self._ready():
            return 200, b"application/json", b'{"status":"ready"}'
        return unavailable("Not ready to serve requests yet", retry_after_s=1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            await _non_http(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]

        request_id: bytes | None = None
        content_length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
        if request_id is None or not _VALID_REQUEST_ID.fullmatch(request_id):
            request_id = _new_request_id()
        rid = request_id.decode()

        builtin = self._builtins.get(path)
        if builtin is not None:
            await self._builtin(builtin, method, rid, scope, receive, send)
            return

        target, allowed = self._match(path, method)
        if target is None:
            problem = (
                method_not_allowed(sorted(allowed))
                if allowed
                else not_found(f"No function serves {path}")
            )
            status = await _send_problem(problem, rid, scope, receive, send)
            self._record(UNROUTED, self._unrouted_latency, method, path, status, rid, start)
            return

        if content_length is not None:
            try:
                too_big = int(content_length) > target.max_body
            except ValueError:
                status = await _send_problem(
                    bad_request("Content-Length is not a number"), rid, scope, receive, send
                )
                self._record(target.function, target.latency, method, path, status, rid, start)
                return
            if too_big:
                status = await _send_problem(_too_large(target.max_body), rid, scope, receive, send)
                self._record(target.function, target.latency, method, path, status, rid, start)
                return
        elif chunked and method in _BODY_METHODS:
            # No length up front: read the body (up to the limit) before the function runs.
            buffered = await _buffer_body(receive, target.max_body)
            if buffered is None:
                status = await _send_problem(_too_large(target.max_body), rid, scope, receive, send)
                self._record(target.function, target.latency, method, path, status, rid, start)
                return
            receive = buffered

        status = await self._forward(target, rid, request_id, scope, receive, send)
        self._record(target.function, target.latency, method, path, status, rid, start)

    def _match(self, path: str, method: str) -> tuple[_Target | None, set[str]]:
        allowed: set[str] = set()
        methods = self._static.get(path)
        if methods is not None:
            target = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
            if target is not None:
                return target, allowed
            allowed.update(methods)
        for regex, methods in self._dynamic:
            if regex.match(path):
                target = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
                if target is not None:
                    return target, allowed
                allowed.update(methods)
        if "GET" in allowed:
            allowed.add("HEAD")
        return None, allowed

    async def _forward(
        self,
        target: _Target,
        rid: str,
        request_id: bytes,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> int:
        status = 0
        started = False
        crashed = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started, crashed
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers") or []
                if status == 500 and any(
                    n.lower() == _CRASH_HEADER and v == b"crash" for n, v in headers
                ):
                    crashed = True  # replaced by a problem document below
                    return
                started = True
                message["headers"] = [*headers, (b"x-request-id", request_id)]
            elif crashed:
                return
            await send(message)

        token = _REQUEST_ID.set(rid)
        settings_token = enter_settings(target.settings) if target.settings is not None else None
        try:
            await target.app(scope, receive, send_with_id)
        except Exception:
            # functions-framework catches the function's exceptions itself; this is anything
            # else going wrong on the way.
            access_log.exception(
                "function failed",
                extra={
                    "function": target.function,
                    "request_id": rid,
                    "method": scope["method"],
                    "path": scope["path"],
                },
            )
            if started:
                raise
            crashed = True
        finally:
            _REQUEST_ID.reset(token)
            if settings_token is not None:
                exit_settings(settings_token)
        if crashed:
            # The traceback was logged server-side (by functions-framework, on the root logger);
            # the caller learns only the request id to quote.
            access_log.error(
                "function crashed",
                extra={
                    "function": target.function,
                    "request_id": rid,
                    "method": scope["method"],
                    "path": scope["path"],
                },
            )
            return await _send_problem(internal_error(rid), rid, scope, receive, send)
        return status

    async def _builtin(
        self,
        builtin: Callable[[], tuple[int, bytes, bytes] | Problem],
        method: str,
        rid: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if method not in ("GET", "HEAD"):
            await _send_problem(method_not_allowed(["GET", "HEAD"]), rid, scope, receive, send)
            return
        result = builtin()
        if isinstance(result, Problem):
            await _send_problem(result, rid, scope, receive, send)
            return
        status, content_type, body = result
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-request-id", rid.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def _record(
        self,
        function: str,
        latency: Any,
        method: str,
        path: str,
        status: int,
        rid: str,
        start: float,
    ) -> None:
        elapsed = time.perf_counter() - start
        key = (function, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = HTTP_REQUESTS.labels(function, method, str(status))
        counter.inc()
        latency.observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            # makeRecord + handle is logger.info() without its caller lookup, which is a
            # stack walk per request and would only ever name this line.
            access_log.handle(
                access_log.makeRecord(
                    access_log.name,
                    logging.INFO,
                    __file__,
                    0,
                    "%s %s %s",
                    (method, path, status),
                    None,
                    extra={
                        "function": function,
                        "method": method,
                        "path": path,
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 3),
                        "request_id": rid,
                    },
                )
            )


def build_http_app(
    service: ServiceConfig,
    functions: Mapping[str, LoadedFunction],
    *,
    ready: Callable[[], bool] = lambda: True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_limits: Mapping[str, int] | None = None,
    settings: Mapping[str, Settings] | None = None,
) -> HttpApp:
    """One ASGI app serving every http trigger of ``service`` plus ``/healthz``, ``/readyz``
    (200 while ``ready()``, else 503), ``/metrics``, and the served routes' OpenAPI document at
    ``/openapi.json`` with its HTML rendering at ``/docs`` (both built here, once).

    ``functions`` maps function names to their loaded handlers; a function left out is not
    served (a warning is logged if it has http triggers). ``body_limits`` overrides
    ``max_body_bytes`` per function name. ``settings`` maps function names to the settings
    that are current while each one handles a request (the process's for one left out).
    """
    body_limits = body_limits or {}
    unknown = set(body_limits) - set(service.functions)
    if unknown:
        raise ValueError(f"body_limits names unknown functions: {', '.join(sorted(unknown))}")
    static: dict[str, dict[str, _Target]] = {}
    patterns: dict[str, dict[str, _Target]] = {}
    served: dict[str, LoadedFunction] = {}
    for name, fn in service.functions.items():
        triggers = fn.triggers("http")
        if not triggers:
            continue
        if name not in functions:
            # The caller chose not to serve it (e.g. a CloudEvent function); say so once, as
            # its paths will answer 404.
            access_log.warning(
                "function has http triggers but is not served", extra={"function": name}
            )
            continue
        target = _Target(
            function=name,
            app=functions[name].asgi_app(),
            max_body=body_limits.get(name, max_body_bytes),
            latency=HTTP_LATENCY.labels(name),
            settings=(settings or {}).get(name),
        )
        served[name] = functions[name]
        for trigger in triggers:
            table = patterns if trigger.path_params else static
            table.setdefault(trigger.path, {})[trigger.method.upper()] = target
    dynamic = [(compile_path(path)[0], methods) for path, methods in patterns.items()]
    return HttpApp(static, dynamic, ready, _api_documents(service, served))


def _api_documents(
    service: ServiceConfig,
    served: Mapping[str, LoadedFunction],
) -> dict[str, Callable[[], tuple[int, bytes, bytes] | Problem]]:
    try:
        document = openapi_document(service, served)
        spec = json.dumps(document, ensure_ascii=False, indent=1).encode()
        page = render_docs(document).encode()
    except Exception:  # noqa: BLE001  # the API must come up even if its description fails
        # The API itself must come up even if its description cannot be built.
        access_log.exception("the OpenAPI document could not be built")
        failed = Problem(500, detail="The API description could not be built; see the log")
        return {"/openapi.json": lambda: failed, "/docs": lambda: failed}
    return {
        "/openapi.json": lambda: (200, b"application/json", spec),
        "/docs": lambda: (200, b"text/html; charset=utf-8", page),
    }


# --- plumbing --------------------------------------------------------------------------------


def _too_large(limit: int) -> Problem:
    return payload_too_large(f"The request body is larger than {limit} bytes", limit_bytes=limit)


async def _send_problem(
    problem: Problem, rid: str, scope: Scope, receive: Receive, send: Send
) -> int:
    body = json.dumps(problem.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()
    ]
    headers += [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid.encode()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
    return problem.status


async def _buffer_body(receive: Receive, limit: int) -> Receive | None:
    """Read the whole body; ``None`` if it is over ``limit``, else a ``receive`` replaying it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # client went away; let the app see that
            first: Message = message
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return replay


async def _non_http(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
