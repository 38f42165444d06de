"""Subscription mode on the embedded adapters: the claim's lease and the request's time budget."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent

from events.envelope import event_from_sample
from shared.integration.objectstore.port import ObjectNotFound
from shared.platform.adapters import bucket, get_bus, get_claim_store, get_store, reset_adapters
from shared.platform.settings import reset_settings
from shared.runtime.app import provision
from shared.runtime.config import load_service
from shared.runtime.deadletter import DeadLetterStore
from shared.runtime.server import HttpServer
from shared.runtime.subscription import (
    SubscriptionFunction,
    build_app,
    identity_of,
    take_claim,
)
from tests.servers import free_port

SERVICE = """\
service: shop
provider:
  environment:
    FLAKY_SWITCH: /nonexistent
functions:
  record_order:
    handler: tests.support.event_functions:record_order
    deploy: subscription
    events:
      - kafka: {topic: sales.order-completed, ordering: unordered}
  flaky:
    handler: tests.support.event_functions:flaky
    deploy: subscription
    timeout: 1
    events:
      - kafka: {topic: loyalty.coupon-redeemed, ordering: unordered}
    delivery: {retry: 10, backoffPolicy: exponential, backoffDelay: PT0.2S, backoffMax: PT5S}
"""


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLAKY_SWITCH", "/nonexistent")
    path = tmp_path / "serverless.yaml"
    path.write_text(SERVICE, encoding="utf-8")
    svc = load_service(path, env={})
    provision(get_bus(), get_store())
    return svc


def order_event(offset: int) -> CloudEvent:
    data = event_from_sample("order-completed").data.model_dump(mode="json")
    return CloudEvent(
        {
            "type": "dev.knative.kafka.event",
            "id": f"partition:0/offset:{offset}",
            "source": "/kafkasources/orders#sales.order-completed",
            "datacontenttype": "application/json",
        },
        data,
    )


def effects(name: str) -> list[dict]:
    try:
        return json.loads(get_store().get(bucket("state"), f"effects/{name}.json").body)
    except ObjectNotFound:
        return []


def test_a_redelivery_while_the_first_is_in_progress_is_refused_with_retry_after(service) -> None:  # type: ignore[no-untyped-def]
    fn = SubscriptionFunction(service, "record_order")
    event = order_event(7)
    held = take_claim(fn.claims, identity_of("record_order", event), timedelta(minutes=1))
    assert held.state == "held"

    answer = fn.handle(event)

    assert (answer.status, answer.headers) == (409, {"Retry-After": "5"})
    assert effects("record_order") == []


def test_a_delivery_whose_holder_died_is_taken_over_once_its_lease_is_over(service) -> None:  # type: ignore[no-untyped-def]
    fn = SubscriptionFunction(service, "record_order")
    event = order_event(8)
    take_claim(fn.claims, identity_of("record_order", event), timedelta(seconds=-1))

    answer = fn.handle(event)

    assert (answer.status, answer.body["outcome"]) == (200, "ok")
    assert len(effects("record_order")) == 1


def test_a_claim_the_local_watcher_took_counts_as_done(service) -> None:  # type: ignore[no-untyped-def]
    fn = SubscriptionFunction(service, "record_order")
    event = order_event(9)
    ident = identity_of("record_order", event)
    get_claim_store().claim(ident.scope, ident.key)

    assert fn.handle(event).body == {"outcome": "duplicate"}


def test_retries_stop_before_the_next_wait_would_pass_the_request_timeout(service) -> None:  # type: ignore[no-untyped-def]
    fn = SubscriptionFunction(service, "flaky")  # timeout 1 s: 0.75 s for the retries

    answer = fn.handle(order_event(10))

    # attempts at 0, 0.2 and 0.6 s; the next wait (0.8 s) would end past the budget
    assert (answer.status, answer.body["outcome"], answer.body["attempts"]) == (
        200,
        "dead_letter",
        3,
    )
    assert len(effects("flaky-attempts")) == 3


def test_an_event_whose_dead_letter_cannot_be_written_is_a_500_and_stays_deliverable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAKY_SWITCH", "/nonexistent")
    path = tmp_path / "serverless.yaml"
    path.write_text(SERVICE, encoding="utf-8")
    get_store().create_bucket(bucket("state"))  # no dead-letters bucket, no dead-letter topic
    fn = SubscriptionFunction(load_service(path, env={}), "flaky")
    event = order_event(11)

    answer = fn.handle(event)

    assert answer.status == 500
    assert answer.body["detail"] == (
        "the event failed and its dead letter could not be written; deliver it again"
    )
    ident = identity_of("flaky", event)
    assert fn.claims.lookup(ident.scope, ident.key) is None  # released: a redelivery runs it


def test_an_event_waiting_for_a_retry_when_the_app_stops_is_dead_lettered(service) -> None:  # type: ignore[no-untyped-def]
    fn = SubscriptionFunction(service, "flaky")
    fn.stop.set()  # stopping: the first wait for a retry ends the delivery

    answer = fn.handle(order_event(12))

    assert (answer.status, answer.body["outcome"], answer.body["attempts"]) == (
        200,
        "dead_letter",
        1,
    )
    dead = list(DeadLetterStore(get_store(), bucket("dead-letters")).list("flaky"))
    assert [d.dead_letter.error.message for d in dead] == [
        "the app stopped before the retries were done"
    ]


def post(url: str, body: bytes, content_type: str) -> tuple[int, str, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["content-type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], json.loads(error.read())


def test_a_structured_mode_event_is_taken_and_a_post_that_is_no_event_is_a_400_problem(
    service,
) -> None:  # type: ignore[no-untyped-def]
    fn = SubscriptionFunction(service, "record_order")
    event = order_event(13)
    structured = json.dumps(
        {"specversion": "1.0", **event.get_attributes(), "data": event.get_data()}
    ).encode()
    with HttpServer(build_app(fn)) as server:
        taken = post(f"{server.url}/", structured, "application/cloudevents+json")
        refused = post(f"{server.url}/", b"{}", "application/json")

    assert taken == (
        200,
        "application/json",
        {"outcome": "ok", "attempts": 1, "dead_letter_id": None},
    )
    assert refused[:2] == (400, "application/problem+json")
    assert refused[2]["title"] == "Not a CloudEvent"


def test_the_apps_metrics_count_the_events_it_handled(service) -> None:  # type: ignore[no-untyped-def]
    fn = SubscriptionFunction(service, "record_order")
    with HttpServer(build_app(fn)) as server:
        post(
            f"{server.url}/",
            json.dumps(
                {
                    "specversion": "1.0",
                    **order_event(14).get_attributes(),
                    "data": order_event(14).get_data(),
                }
            ).encode(),
            "application/cloudevents+json",
        )
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            metrics = response.read().decode()

    assert (
        'retailfn_events_total{function="record_order",outcome="ok",trigger="subscription"}'
        in metrics
    ), metrics


def test_an_event_whose_claims_cannot_be_reached_is_retried_then_dead_lettered_and_not_run(
    service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    # Given the claims on a real PostgreSQL client pointed at a closed loopback port
    monkeypatch.setenv("RETAILFN_DATABASE_URL", f"postgresql://retailfn@127.0.0.1:{free_port()}/s")
    monkeypatch.setenv("RETAILFN_DATABASE_CONNECT_TIMEOUT_S", "2")
    reset_settings()
    reset_adapters()
    fn = SubscriptionFunction(service, "flaky")  # retry 10 at 0.2 s, within a 0.75 s budget

    answer = fn.handle(order_event(14))

    # Then: taken (200) as a dead letter that a replay can retry; the function never ran
    assert (answer.status, answer.body["outcome"]) == (200, "dead_letter"), answer.body
    retries = [r for r in caplog.records if r.getMessage() == "dedup store unavailable, will retry"]
    assert len(retries) >= 2
    [dead] = DeadLetterStore(get_store(), bucket("dead-letters")).list("flaky")
    assert dead.dead_letter.error.type == "StateUnavailable"
    assert dead.dead_letter.error.retryable is True
    assert effects("flaky-attempts") == []
