"""The runtime's HTTP front: routing to each function's own functions-framework app, problem
documents for every error, built-in probes and metrics, request ids and the body limit.

``starlette.testclient`` needs httpx, which the project does not install, so most tests drive the
ASGI app directly with :func:`call`; one group goes through a real uvicorn :class:`HttpServer`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from shared.platform.observability import REGISTRY
from shared.platform.problems import problem_response, unauthorized
from shared.runtime.config import ServiceConfig, parse_service
from shared.runtime.http import HttpApp, build_http_app
from shared.runtime.loader import load_function
from shared.runtime.server import HttpServer
from tests.support import http_functions

SERVICE_YAML = """
service: retailfn-test
functions:
  echo:
    handler: tests.support.http_functions:echo
    events:
      - http: {path: "/v1/partners/{partner}/items/{sku}", method: get}
  validate:
    handler: tests.support.http_functions:validate
    events:
      - http: {path: "/v1/partners/{partner}/stock", method: post}
  crash:
    handler: tests.support.http_functions:crash
    events:
      - http: {path: /v1/crash, method: post}
  sync_hello:
    handler: tests.support.http_functions:sync_hello
    events:
      - http: {path: /v1/hello, method: get}
  slow:
    handler: tests.support.http_functions:slow
    events:
      - http: {path: /v1/slow, method: get}
"""

VALID_REPORT = {"partner": "p1", "lines": [{"sku": "A-1", "quantity": 3}]}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


async def _call(
    app: Any,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    chunks: list[bytes] | None,
) -> Reply:
    headers = {k.lower(): v for k, v in headers.items()}
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    if chunks is None:
        if "content-length" not in headers and (body or method in ("POST", "PUT", "PATCH")):
            raw_headers.append((b"content-length", str(len(body)).encode()))
        messages = [{"type": "http.request", "body": body, "more_body": False}]
    else:
        raw_headers.append((b"transfer-encoding", b"chunked"))
        messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
        messages.append({"type": "http.request", "body": b"", "more_body": False})
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    header_list = [(k.decode().lower(), v.decode()) for k, v in start.get("headers", [])]
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(start["status"], dict(header_list), body_out, header_list)


def call(
    app: Any,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
) -> Reply:
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("content-type", "application/json")
    return asyncio.run(_call(app, method, path, body, headers, chunks))


def build(service: ServiceConfig, **kwargs: Any) -> HttpApp:
    functions = {name: load_function(name, fn.handler) for name, fn in service.functions.items()}
    return build_http_app(service, functions, **kwargs)


@pytest.fixture(scope="module")
def service() -> ServiceConfig:
    return parse_service(SERVICE_YAML, env={})


@pytest.fixture(scope="module")
def app(service: ServiceConfig) -> HttpApp:
    return build(service, body_limits={"validate": 1024})


def is_problem(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    doc = reply.json()
    assert doc["status"] == status
    assert doc["type"] and doc["title"]
    return doc


def requests_counted(function: str, method: str, status: int) -> float:
    labels = {"function": function, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("retailfn_http_requests_total", labels) or 0.0


# --- routing ---------------------------------------------------------------------------------


def test_a_route_with_path_params_reaches_the_function_with_the_real_path(app: HttpApp) -> None:
    reply = call(app, "GET", "/v1/partners/acme/items/SKU-9?lang=de")

    assert reply.status == 200
    assert reply.json() == {
        "method": "GET",
        "path": "/v1/partners/acme/items/SKU-9",
        "params": {"partner": "acme", "sku": "SKU-9"},
        "query": {"lang": "de"},
        "request_id": reply.headers["x-request-id"],
    }


def test_a_sync_function_is_served_too(app: HttpApp) -> None:
    reply = call(app, "GET", "/v1/hello")

    assert reply.status == 200
    assert reply.json() == {"hello": "/v1/hello"}


def test_head_is_answered_by_the_get_route(app: HttpApp) -> None:
    assert call(app, "HEAD", "/v1/hello").status == 200


def test_an_unknown_path_is_a_404_problem(app: HttpApp) -> None:
    doc = is_problem(call(app, "GET", "/v1/nothing/here"), 404)

    assert "/v1/nothing/here" in doc["detail"]


def test_a_path_param_does_not_match_across_segments(app: HttpApp) -> None:
    is_problem(call(app, "GET", "/v1/partners/acme/items/a/b"), 404)


def test_a_known_path_with_the_wrong_method_is_a_405_problem_listing_the_allowed(
    app: HttpApp,
) -> None:
    reply = call(app, "DELETE", "/v1/partners/acme/items/SKU-9")

    is_problem(reply, 405)
    assert reply.headers["allow"] == "GET, HEAD"


# --- built-in endpoints ----------------------------------------------------------------------


def test_healthz_answers_ok(app: HttpApp) -> None:
    reply = call(app, "GET", "/healthz")

    assert reply.status == 200
    assert reply.json() == {"status": "ok"}


def test_readyz_is_200_while_ready(app: HttpApp) -> None:
    assert call(app, "GET", "/readyz").status == 200


def test_readyz_is_a_503_problem_with_retry_after_until_ready(service: ServiceConfig) -> None:
    ready = False
    not_yet = build(service, ready=lambda: ready)

    reply = call(not_yet, "GET", "/readyz")
    is_problem(reply, 503)
    assert reply.headers["retry-after"] == "1"

    ready = True
    assert call(not_yet, "GET", "/readyz").status == 200


def test_metrics_show_the_request_counter_of_the_function_called(app: HttpApp) -> None:
    before = requests_counted("echo", "GET", 200)

    call(app, "GET", "/v1/partners/acme/items/SKU-1")
    reply = call(app, "GET", "/metrics")

    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    assert requests_counted("echo", "GET", 200) == before + 1
    text = reply.body.decode()
    assert 'retailfn_http_requests_total{function="echo",method="GET",status="200"}' in text
    assert 'retailfn_http_request_duration_seconds_count{function="echo"}' in text


def test_unrouted_requests_are_counted_apart_from_functions(app: HttpApp) -> None:
    before = requests_counted("-", "GET", 404)

    call(app, "GET", "/nope")

    assert requests_counted("-", "GET", 404) == before + 1


# --- errors ----------------------------------------------------------------------------------


def test_a_crashing_function_is_a_500_problem_that_leaks_nothing(
    app: HttpApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    reply = call(app, "POST", "/v1/crash", headers={"x-request-id": "req-crash-1"})

    doc = is_problem(reply, 500)
    assert doc["request_id"] == "req-crash-1"
    assert "req-crash-1" in doc["detail"]
    assert b"secret-token-123" not in reply.body
    assert b"Traceback" not in reply.body and b"RuntimeError" not in reply.body
    assert "x-google-status" not in reply.headers
    # ... while the server log has the traceback and the request id to find it by.
    assert "secret-token-123" in caplog.text and "Traceback" in caplog.text
    crashed = [r for r in caplog.records if r.getMessage() == "function crashed"]
    assert crashed and crashed[0].request_id == "req-crash-1"
    assert crashed[0].function == "crash"


def test_malformed_json_is_a_400_problem(app: HttpApp) -> None:
    reply = call(
        app,
        "POST",
        "/v1/partners/p1/stock",
        body=b'{"partner": "p1", "lines": [',
        headers={"content-type": "application/json"},
    )

    doc = is_problem(reply, 400)
    assert "not valid JSON" in doc["detail"]


def test_an_empty_body_is_a_400_problem(app: HttpApp) -> None:
    is_problem(call(app, "POST", "/v1/partners/p1/stock"), 400)


def test_an_invalid_body_is_a_422_problem_listing_each_bad_field(app: HttpApp) -> None:
    report = {
        "partner": "p1",
        "lines": [
            {"sku": "A-1", "quantity": 1},
            {"sku": "", "quantity": 2},
            {"sku": "C-3", "quantity": "hunter2-secret"},
        ],
    }

    reply = call(app, "POST", "/v1/partners/p1/stock", json_body=report)

    doc = is_problem(reply, 422)
    assert doc["type"] == "https://retailfn.dev/problems/validation-error"
    assert [e["loc"] for e in doc["errors"]] == ["lines[1].sku", "lines[2].quantity"]
    assert all(e["msg"] for e in doc["errors"])
    assert b"hunter2-secret" not in reply.body  # the values sent are never echoed


def test_a_valid_body_reaches_the_function(app: HttpApp) -> None:
    reply = call(app, "POST", "/v1/partners/p1/stock", json_body=VALID_REPORT)

    assert reply.status == 202
    assert reply.json() == {"accepted": 1}


def test_a_body_over_the_limit_is_a_413_problem_before_the_function_runs(app: HttpApp) -> None:
    before = requests_counted("validate", "POST", 202)

    reply = call(app, "POST", "/v1/partners/p1/stock", body=b"x" * 1025)

    doc = is_problem(reply, 413)
    assert doc["limit_bytes"] == 1024
    assert requests_counted("validate", "POST", 202) == before


def test_a_chunked_body_over_the_limit_is_a_413_problem(app: HttpApp) -> None:
    is_problem(call(app, "POST", "/v1/partners/p1/stock", chunks=[b"x" * 600, b"x" * 600]), 413)


def test_a_chunked_body_within_the_limit_reaches_the_function(app: HttpApp) -> None:
    body = json.dumps(VALID_REPORT).encode()

    reply = call(app, "POST", "/v1/partners/p1/stock", chunks=[body[:10], body[10:]])

    assert reply.status == 202


def test_the_default_body_limit_is_ten_mebibytes(service: ServiceConfig) -> None:
    default = build(service)

    is_problem(
        call(
            default,
            "POST",
            "/v1/partners/p1/stock",
            headers={"content-length": str(10 * 1024 * 1024 + 1)},
        ),
        413,
    )


# --- request ids and the access log ----------------------------------------------------------


def test_the_callers_request_id_is_echoed_and_given_to_the_function(app: HttpApp) -> None:
    reply = call(app, "GET", "/v1/partners/a/items/b", headers={"X-Request-Id": "abc-123"})

    assert reply.headers["x-request-id"] == "abc-123"
    assert reply.json()["request_id"] == "abc-123"


def test_an_invalid_request_id_is_replaced_by_a_generated_one(app: HttpApp) -> None:
    reply = call(app, "GET", "/v1/partners/a/items/b", headers={"X-Request-Id": "bad id\t!"})

    assert reply.headers["x-request-id"] != "bad id\t!"
    assert len(reply.headers["x-request-id"]) == 32
    assert [k for k, _ in reply.header_list].count("x-request-id") == 1


def test_each_request_writes_one_access_log_line(
    app: HttpApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="retailfn.http")

    call(app, "GET", "/v1/partners/a/items/b", headers={"X-Request-Id": "log-1"})

    [line] = [r for r in caplog.records if r.name == "retailfn.http"]
    assert (line.function, line.method, line.path, line.status, line.request_id) == (
        "echo",
        "GET",
        "/v1/partners/a/items/b",
        200,
        "log-1",
    )
    assert line.latency_ms >= 0


# --- through a real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(app: HttpApp) -> Iterator[HttpServer]:
    with HttpServer(app, "127.0.0.1", 0) as running:
        yield running


def test_the_server_listens_on_a_free_port_and_serves_functions(server: HttpServer) -> None:
    assert server.port > 0

    with requests.Session() as http:
        echoed = http.get(f"{server.url}/v1/partners/acme/items/SKU-9", timeout=5)
        accepted = http.post(f"{server.url}/v1/partners/p1/stock", json=VALID_REPORT, timeout=5)
        health = http.get(f"{server.url}/healthz", timeout=5)

    assert echoed.status_code == 200
    assert echoed.json()["path"] == "/v1/partners/acme/items/SKU-9"
    assert accepted.status_code == 202
    assert health.json() == {"status": "ok"}


def test_the_server_answers_problems_over_the_wire(server: HttpServer) -> None:
    with requests.Session() as http:
        crashed = http.post(f"{server.url}/v1/crash", timeout=5)
        too_big = http.post(f"{server.url}/v1/partners/p1/stock", data=b"x" * 5000, timeout=5)
        after = http.get(f"{server.url}/v1/hello", timeout=5)  # the connection is still usable
        head = http.head(f"{server.url}/v1/hello", timeout=5)

    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == "application/problem+json"
    assert "secret-token-123" not in crashed.text
    assert too_big.status_code == 413
    assert after.status_code == 200
    assert head.status_code == 200 and head.content == b""


def test_the_server_stops_and_frees_its_port(app: HttpApp) -> None:
    server = HttpServer(app).start()
    url = server.url

    server.stop()

    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=2)


def test_stopping_the_server_lets_a_request_in_flight_finish(app: HttpApp) -> None:
    server = HttpServer(app).start()
    http_functions.slow_started.clear()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.get, f"{server.url}/v1/slow?seconds=0.5", timeout=10)
        assert http_functions.slow_started.wait(5)

        server.stop()

        assert pending.result().json() == {"slept": True}


def test_an_unauthorized_problem_asks_for_credentials() -> None:
    response = problem_response(unauthorized("token expired"))

    assert response.status_code == 401
    assert response.media_type == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="retailfn"'
    assert json.loads(response.body)["detail"] == "token expired"
