"""report_stock through the runtime's HTTP front, as serverless.yaml routes it, on the embedded
adapters: what a partner gets back, and what lands (or does not land) on the topic."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from events.envelope import Event, from_kafka
from shared.platform import auth, idempotency
from shared.platform.adapters import get_bus, get_store, reset_adapters
from shared.platform.auth import create_api_key, dev_api_key, issue_dev_token, revoke_api_key
from shared.platform.idempotency import Idempotency, request_fingerprint
from shared.platform.settings import reset_settings
from shared.runtime.app import provision
from shared.runtime.config import ServiceConfig, load_service
from shared.runtime.http import HttpApp, build_http_app
from shared.runtime.loader import load_function
from tests.functions.test_http_server import Reply, call, is_problem

TOPIC = "inventory.stock-reported"
BATCH_LIMIT = 5
ACME_KEY = dev_api_key("acme")
LINE = {
    "partner_sku": "YM-4MM-PURPLE",
    "location_id": "BERLIN-1",
    "region": "eu",
    "on_hand": 12,
    "reserved": 2,
}


def line(**changes: Any) -> dict[str, Any]:
    return {**LINE, **changes}


@pytest.fixture(scope="module")
def service() -> ServiceConfig:
    return load_service("serverless.yaml", env={})


def serve(service: ServiceConfig, **kwargs: Any) -> HttpApp:
    return build_http_app(
        service,
        {"report_stock": load_function("report_stock", service.functions["report_stock"].handler)},
        **kwargs,
    )


@pytest.fixture(scope="module")
def app(service: ServiceConfig) -> HttpApp:
    return serve(service)


@pytest.fixture(autouse=True)
def _embedded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RETAILFN_STOCK_BATCH_LIMIT", str(BATCH_LIMIT))
    auth.reset_auth_caches()
    provision(get_bus(), get_store())
    yield
    auth.reset_auth_caches()


def post(
    app: HttpApp,
    body: Any,
    *,
    partner: str = "acme",
    key: str | None = ACME_KEY,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Reply:
    all_headers = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"ApiKey {key}"
    reply = call(
        app,
        "POST",
        f"/v1/partners/{partner}/stock",
        body=raw if raw is not None else json.dumps(body).encode(),
        headers=all_headers,
    )
    assert b"local-dev-secret" not in reply.body  # no answer ever echoes a credential
    return reply


def published() -> list[Event[Any]]:
    return [
        from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
        for r in get_bus().read_all(TOPIC)
    ]


# --- accepted ---------------------------------------------------------------------------------


def test_a_single_line_is_accepted_and_lands_on_the_topic_keyed_by_partner_and_location(
    app: HttpApp,
) -> None:
    reply = post(app, line())

    assert reply.status == 202, reply.body
    answer = reply.json()
    assert answer["accepted"] == 1
    [event] = published()
    assert answer["event_ids"] == [event.id]
    assert event.type == "com.retailfn.inventory.stock-reported.v1"
    assert event.partitionkey == "acme:BERLIN-1"
    assert (
        event.data.partner_id,
        event.data.partner_sku,
        event.data.on_hand,
        event.data.reserved,
    ) == ("acme", "YM-4MM-PURPLE", 12, 2)
    assert event.data.reported_at is not None


def test_a_batch_is_accepted_with_one_event_per_line_in_order_per_location(app: HttpApp) -> None:
    lines = [
        line(on_hand=1),
        line(location_id="PARIS-2", on_hand=2),
        line(on_hand=3),
        line(unit="pack", units_per_pack=6, on_hand=4),
    ]

    reply = post(app, {"lines": lines})

    assert reply.status == 202, reply.body
    assert reply.json()["accepted"] == 4
    events = published()
    assert sorted(e.id for e in events) == sorted(reply.json()["event_ids"])
    berlin = [e.data.on_hand for e in events if e.partitionkey == "acme:BERLIN-1"]
    assert berlin == [1, 3, 4]  # one key, one partition: the order of the request
    assert [e.data.on_hand for e in events if e.partitionkey == "acme:PARIS-2"] == [2]
    assert {e.data.partner_id for e in events} == {"acme"}


# --- Idempotency-Key --------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_publishes_nothing_more(
    app: HttpApp,
) -> None:
    body = {"lines": [line(on_hand=1), line(location_id="PARIS-2", on_hand=2)]}
    key = {"Idempotency-Key": "order-sync-2026-11-27T08:00"}

    first = post(app, body, headers=key)
    again = post(app, body, headers=key)

    assert first.status == again.status == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert sorted(e.id for e in published()) == sorted(first.json()["event_ids"])


def test_the_same_idempotency_key_with_another_body_is_a_422_that_publishes_nothing(
    app: HttpApp,
) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = post(app, line(on_hand=1), headers=key)

    reply = post(app, line(on_hand=99), headers=key)

    assert first.status == 202
    doc = is_problem(reply, 422)
    assert doc["type"].endswith("/idempotency-key-reused")
    assert [e.id for e in published()] == first.json()["event_ids"]


class HeldPublish:
    """Holds every publish until ``parties`` requests reach it or one request is answered: so
    two concurrent requests both get as far as they can before either finishes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, parties: int = 2) -> None:
        self._state = threading.Condition()
        self._arrived = 0
        self._answered = 0
        self._parties = parties
        bus = get_bus()
        real = bus.publish_many

        def held(*args: Any, **kwargs: Any) -> Any:
            with self._state:
                self._arrived += 1
                self._state.notify_all()
                self._state.wait_for(
                    lambda: self._arrived >= self._parties or self._answered > 0, timeout=10
                )
            return real(*args, **kwargs)

        monkeypatch.setattr(bus, "publish_many", held)

    def post_at_once(self, app: HttpApp, bodies: list[Any], headers: dict[str, str]) -> list[Reply]:
        replies: list[Reply | None] = [None] * len(bodies)
        start = threading.Barrier(len(bodies))

        def send(n: int) -> None:
            start.wait()
            replies[n] = post(app, bodies[n], headers=headers)
            with self._state:
                self._answered += 1
                self._state.notify_all()

        threads = [threading.Thread(target=send, args=(n,)) for n in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert all(r is not None for r in replies)
        return [r for r in replies if r is not None]


def test_the_same_idempotency_key_sent_at_once_with_two_bodies_gets_one_202_and_one_422(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldPublish(monkeypatch)
    bodies = [line(on_hand=1), line(on_hand=2)]

    replies = held.post_at_once(app, bodies, {"Idempotency-Key": "race-1"})

    [accepted] = [r for r in replies if r.status == 202]
    [refused] = [r for r in replies if r.status != 202]
    assert is_problem(refused, 422)["type"].endswith("/idempotency-key-reused")
    events = published()
    assert [e.id for e in events] == accepted.json()["event_ids"]
    # what was published is the accepted body, not some mix of the two
    winner = bodies[replies.index(accepted)]
    assert [e.data.on_hand for e in events] == [winner["on_hand"]]


def test_the_same_request_sent_at_once_twice_gets_one_202_and_one_409_with_retry_after(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldPublish(monkeypatch)
    key = {"Idempotency-Key": "race-2"}

    replies = held.post_at_once(app, [line(), line()], key)

    [accepted] = [r for r in replies if r.status == 202]
    [busy] = [r for r in replies if r.status != 202]
    assert is_problem(busy, 409)["type"].endswith("/idempotency-key-in-use")
    assert int(busy.headers["retry-after"]) > 0
    retried = post(app, line(), headers=key)  # as told: after the first one is done
    assert retried.json() == accepted.json()
    assert retried.headers["idempotent-replayed"] == "true"
    assert [e.id for e in published()] == accepted.json()["event_ids"]


def test_a_key_left_reserved_by_a_request_that_died_is_taken_over_after_its_lease(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request that reserved its key and died before publishing or releasing it
    body = json.dumps(line()).encode()
    monkeypatch.setattr(idempotency, "LEASE", timedelta(0))
    Idempotency("report_stock/acme").begin(
        "died-1", request_fingerprint("POST", "/v1/partners/acme/stock", body)
    )

    reply = post(app, None, raw=body, headers={"Idempotency-Key": "died-1"})

    assert reply.status == 202, reply.body
    assert [e.id for e in published()] == reply.json()["event_ids"]


# --- bad requests -----------------------------------------------------------------------------


def test_a_non_ascii_partner_in_the_path_is_a_404_problem_that_publishes_nothing(
    app: HttpApp,
) -> None:
    reply = post(app, line(), partner="acm\u00e9")

    assert "{partner}" in is_problem(reply, 404)["detail"]
    assert published() == []


def test_an_empty_list_of_lines_is_a_422_naming_lines_that_publishes_nothing(app: HttpApp) -> None:
    reply = post(app, {"lines": []})

    assert [e["loc"] for e in is_problem(reply, 422)["errors"]] == ["lines"]
    assert published() == []


def test_a_reported_at_outside_the_years_of_utc_is_a_422_naming_the_field(app: HttpApp) -> None:
    reply = post(app, {"lines": [line(), line(reported_at="0001-01-01T00:00:00+14:00")]})

    [error] = is_problem(reply, 422)["errors"]
    assert error["loc"] == "lines[1].reported_at"
    assert "UTC" in error["msg"]
    assert published() == []


def test_a_reported_at_beyond_the_clock_skew_is_a_422_naming_the_field(app: HttpApp) -> None:
    ahead = (datetime.now(UTC) + timedelta(seconds=301)).isoformat()

    reply = post(app, {"lines": [line(), line(reported_at=ahead)]})

    [error] = is_problem(reply, 422)["errors"]
    assert error["loc"] == "lines[1].reported_at"
    assert "300 s ahead" in error["msg"]
    assert published() == []


def test_the_clock_skew_allowed_is_set_by_the_environment(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAILFN_STOCK_MAX_FUTURE_SKEW_S", "3600")
    reset_settings()
    ahead = datetime.now(UTC) + timedelta(minutes=30)

    reply = post(app, line(reported_at=ahead.isoformat()))

    assert reply.status == 202, reply.body
    [event] = published()
    assert event.data.reported_at == ahead


# --- bad requests -----------------------------------------------------------------------------


def test_malformed_json_is_a_400_problem_that_publishes_nothing(app: HttpApp) -> None:
    reply = post(app, None, raw=b'{"partner_sku": "YM-1", "on_hand": 3,')

    assert "not valid JSON" in is_problem(reply, 400)["detail"]
    assert published() == []


def test_invalid_lines_are_a_422_naming_every_bad_line_and_field(app: HttpApp) -> None:
    lines = [line(), line(on_hand=-1), line(unit="pack"), line(region="mars")]

    reply = post(app, {"lines": lines})

    doc = is_problem(reply, 422)
    assert {e["loc"] for e in doc["errors"]} == {
        "lines[1].on_hand",
        "lines[2].units_per_pack",
        "lines[3].region",
    }
    assert "mars" not in reply.body.decode()  # says what is wrong, never what was sent
    assert published() == []


def test_more_lines_than_the_batch_limit_is_a_413_that_publishes_nothing(app: HttpApp) -> None:
    reply = post(app, {"lines": [line(on_hand=n) for n in range(BATCH_LIMIT + 1)]})

    doc = is_problem(reply, 413)
    assert str(BATCH_LIMIT) in doc["detail"]
    assert published() == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_runtimes_byte_limit_is_a_413_that_publishes_nothing(
    service: ServiceConfig, framing: str
) -> None:
    small = serve(service, body_limits={"report_stock": 1024})
    # within the line limit, so only the byte count can refuse it
    lines = [line(location_id=f"{n}-{'L' * 120}") for n in range(BATCH_LIMIT)]
    body = json.dumps({"lines": lines}).encode()
    assert len(body) > 1024
    headers = {"content-type": "application/json", "Authorization": f"ApiKey {ACME_KEY}"}

    if framing == "chunked":
        reply = call(
            small,
            "POST",
            "/v1/partners/acme/stock",
            headers=headers,
            chunks=[body[:600], body[600:]],
        )
    else:
        reply = call(small, "POST", "/v1/partners/acme/stock", body=body, headers=headers)

    assert is_problem(reply, 413)["limit_bytes"] == 1024
    assert published() == []


# --- who may post -----------------------------------------------------------------------------


def _forged_unsigned_token() -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": auth.DEV_ISSUER,
        "aud": auth.DEV_AUDIENCE,
        "sub": "mallory",
        "iat": now,
        "exp": now + 600,
        "scope": "stock:write",
        "partner_id": "acme",
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _tampered_token() -> str:
    header, claims, signature = issue_dev_token("alice", partner_id="globex").split(".")
    doc = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    doc["partner_id"] = "acme"
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _revoked_key() -> str:
    key_id, key = create_api_key("acme", "stock:write")
    revoke_api_key(key_id)
    return key


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _api_key(key: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {key}"}


BAD_CREDENTIALS: dict[str, Callable[[], dict[str, str]]] = {
    "missing": dict,
    "unknown-api-key": lambda: _api_key("rfk_0123456789abcdef_" + "A" * 43),
    "wrong-secret": lambda: _api_key(ACME_KEY.replace("secret", "sekret")),
    "revoked-api-key": lambda: _api_key(_revoked_key()),
    "expired-token": lambda: _bearer(issue_dev_token("alice", partner_id="acme", ttl=-120)),
    "wrong-audience": lambda: _bearer(
        issue_dev_token("alice", partner_id="acme", extra_claims={"aud": "another-service"})
    ),
    "wrong-issuer": lambda: _bearer(
        issue_dev_token(
            "alice", partner_id="acme", extra_claims={"iss": "https://evil.example/issuer"}
        )
    ),
    "alg-none": lambda: _bearer(_forged_unsigned_token()),
    "tampered-token": lambda: _bearer(_tampered_token()),
}


@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
def test_bad_credentials_are_a_401_with_a_challenge_and_publish_nothing(
    app: HttpApp, credentials: str
) -> None:
    headers = BAD_CREDENTIALS[credentials]()

    reply = post(app, line(), key=None, headers=headers)

    is_problem(reply, 401)
    assert 'realm="retailfn"' in reply.headers["www-authenticate"]
    for value in headers.values():
        secret = value.split(" ", 1)[1]
        assert secret.encode() not in reply.body
        assert all(part.encode() not in reply.body for part in secret.split(".") if len(part) > 8)
    assert published() == []


def test_a_partners_key_on_another_partners_path_is_a_403_that_publishes_nothing(
    app: HttpApp,
) -> None:
    reply = post(app, line(), partner="globex", key=ACME_KEY)

    assert "partner" in is_problem(reply, 403)["detail"]
    assert published() == []


def test_a_key_without_the_stock_scope_is_a_403_that_publishes_nothing(app: HttpApp) -> None:
    _, key = create_api_key("acme", "catalog:write")

    reply = post(app, line(), key=key)

    assert "stock:write" in is_problem(reply, 403)["detail"]
    assert key.encode() not in reply.body
    assert published() == []


# --- the bus cannot take the write ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_bus_that_cannot_take_the_write_is_a_503_with_retry_after_and_nothing_accepted(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a real Kafka client pointed at a port nobody listens on. kafka-python waits 30 s to
    # bootstrap and neither KafkaBus nor the settings expose that, so the test shortens the
    # library's own default; the failure is still a real connection failure.
    monkeypatch.setitem(KafkaAdminClient.DEFAULT_CONFIG, "bootstrap_timeout_ms", 2000)
    monkeypatch.setenv("RETAILFN_BUS", "kafka")
    monkeypatch.setenv("RETAILFN_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_free_port()}")
    reset_settings()
    reset_adapters()
    retry_key = {"Idempotency-Key": "report-503"}

    # When
    started = time.monotonic()
    reply = post(app, {"lines": [line(on_hand=1), line(on_hand=2)]}, headers=retry_key)

    # Then: a 503 saying when to come back, and no accepted count or event id
    assert time.monotonic() - started < 15
    doc = is_problem(reply, 503)
    assert int(reply.headers["retry-after"]) > 0
    assert "accepted" not in doc and "event_ids" not in doc
    # ... nor a remembered answer: once the bus is back, the same retry is really accepted.
    monkeypatch.delenv("RETAILFN_BUS")
    monkeypatch.delenv("RETAILFN_KAFKA_BOOTSTRAP_SERVERS")
    reset_settings()
    reset_adapters()
    assert published() == []
    retried = post(app, {"lines": [line(on_hand=1), line(on_hand=2)]}, headers=retry_key)
    assert retried.status == 202, retried.body
    assert "idempotent-replayed" not in retried.headers
    assert sorted(e.id for e in published()) == sorted(retried.json()["event_ids"])


def test_a_key_store_that_cannot_be_reached_is_a_503_with_retry_after_and_nothing_published(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the claims on a real PostgreSQL client pointed at a port nobody listens on
    monkeypatch.setenv(
        "RETAILFN_DATABASE_URL", f"postgresql://retailfn@127.0.0.1:{_free_port()}/state"
    )
    monkeypatch.setenv("RETAILFN_DATABASE_CONNECT_TIMEOUT_S", "2")
    reset_settings()
    reset_adapters()
    retry_key = {"Idempotency-Key": "report-db-503"}

    # When
    started = time.monotonic()
    reply = post(app, {"lines": [line(on_hand=1)]}, headers=retry_key)

    # Then: a 503 problem saying when to come back; nothing was published without the key held
    assert time.monotonic() - started < 10
    doc = is_problem(reply, 503)
    assert int(reply.headers["retry-after"]) > 0
    assert "accepted" not in doc and "event_ids" not in doc
    assert published() == []
    # ... and once the database is back, the same retry is really accepted.
    monkeypatch.delenv("RETAILFN_DATABASE_URL")
    reset_settings()
    reset_adapters()
    retried = post(app, {"lines": [line(on_hand=1)]}, headers=retry_key)
    assert retried.status == 202, retried.body
    assert "idempotent-replayed" not in retried.headers
    assert [e.id for e in published()] == retried.json()["event_ids"]
