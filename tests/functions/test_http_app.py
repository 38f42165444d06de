"""One HTTP function's app (``python -m shared.runtime.http_app``): the runtime's HTTP front for
that function alone, through a real uvicorn server, and its start-up refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import shared.platform.observability
from shared.runtime import http_app
from shared.runtime.config import ServiceConfig, load_service
from shared.runtime.http_app import build_app
from shared.runtime.server import HttpServer

SERVICE_YAML = """\
service: shop
stages:
  prod:
    environment:
      RETAILFN_JWT_ISSUER: https://issuer.example
functions:
  echo:
    handler: tests.support.http_functions:echo
    events:
      - http: {path: "/v1/partners/{partner}/items/{sku}", method: get}
  hello:
    handler: tests.support.http_functions:sync_hello
    events:
      - http: {path: /v1/hello, method: get}
  record_order:
    handler: tests.support.event_functions:record_order
    deploy: subscription
    events:
      - kafka: {topic: sales.order-completed, ordering: unordered}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "serverless.yaml"
    path.write_text(SERVICE_YAML, encoding="utf-8")
    return path


@pytest.fixture
def service(config: Path) -> ServiceConfig:
    return load_service(config, env={})


@pytest.fixture
def echo_app(service: ServiceConfig) -> Iterator[str]:
    with HttpServer(build_app(service, "echo")) as server:
        yield server.url


@pytest.fixture
def quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # main() would make the root logger JSON on stderr for the rest of the test session.
    monkeypatch.setattr(shared.platform.observability, "configure_logging", lambda *a, **k: None)


def test_the_functions_route_reaches_the_function_with_its_path_and_a_request_id(
    echo_app: str,
) -> None:
    reply = requests.get(f"{echo_app}/v1/partners/acme/items/SKU-1?region=eu", timeout=5)

    assert reply.status_code == 200
    body = reply.json()
    assert body["path"] == "/v1/partners/acme/items/SKU-1"
    assert body["params"] == {"partner": "acme", "sku": "SKU-1"}
    assert body["request_id"] == reply.headers["X-Request-Id"]


def test_the_app_answers_its_health_and_readiness_probes(echo_app: str) -> None:
    assert requests.get(f"{echo_app}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{echo_app}/readyz", timeout=5).json() == {"status": "ready"}


def test_the_app_is_unready_until_it_says_it_serves(service: ServiceConfig) -> None:
    with HttpServer(build_app(service, "echo", ready=lambda: False)) as server:
        reply = requests.get(f"{server.url}/readyz", timeout=5)

    assert reply.status_code == 503
    assert reply.headers["Content-Type"] == "application/problem+json"


def test_an_unknown_path_is_a_404_problem_document(echo_app: str) -> None:
    reply = requests.get(f"{echo_app}/nope", timeout=5)

    assert reply.status_code == 404
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.json()["detail"] == "No function serves /nope"


def test_another_functions_route_is_not_served_by_this_app(echo_app: str) -> None:
    reply = requests.get(f"{echo_app}/v1/hello", timeout=5)

    assert (reply.status_code, reply.headers["Content-Type"]) == (404, "application/problem+json")


def test_the_metrics_count_the_functions_requests(echo_app: str) -> None:
    requests.get(f"{echo_app}/v1/partners/acme/items/SKU-1", timeout=5)

    metrics = requests.get(f"{echo_app}/metrics", timeout=5).text
    assert 'retailfn_http_requests_total{function="echo",method="GET",status="200"}' in metrics


def test_the_api_document_lists_only_this_functions_routes(echo_app: str) -> None:
    document = requests.get(f"{echo_app}/openapi.json", timeout=5).json()

    assert list(document["paths"]) == ["/v1/partners/{partner}/items/{sku}"]


def test_an_event_function_is_refused_with_one_error_line(
    config: Path, quiet_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = http_app.main(["--config", str(config), "--function", "record_order"])

    assert code == 2
    assert capsys.readouterr().err == (
        "Error: functions.record_order is deploy: subscription, "
        "not an HTTP function; start it with its own start "
        "command\n"
    )


def test_an_unknown_function_is_refused_naming_the_known_ones(
    config: Path, quiet_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = http_app.main(["--config", str(config), "--function", "nope"])

    err = capsys.readouterr().err
    assert code == 2 and err.startswith("Error: ") and len(err.splitlines()) == 1
    assert "no function 'nope'; known: echo, hello, record_order" in err


def test_a_cloud_stage_on_the_embedded_adapters_is_refused(
    config: Path, quiet_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = http_app.main(["--config", str(config), "--stage", "prod", "--function", "echo"])

    err = capsys.readouterr().err
    assert code == 2 and err.startswith("Error: stage 'prod' would run on the embedded bus")
