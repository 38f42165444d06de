"""Subscription mode: one function's app behind a platform subscription, with its guarantees.

Code Engine's Kafka and COS subscriptions POST each event to an app and keep no promise of their
own: an answer other than 2xx is logged and the event is gone (no retry, no dead letter). So
the app keeps the promises itself, the same ones the local runtime keeps
(``shared.runtime.invoker``): on each POSTed CloudEvent it

1. deduplicates: a create-only claim in the state database on (bucket, key, etag, operation) for an
   object-storage event (the same claim the local watcher takes) and on (source, id) otherwise.
   The claim is taken *in progress* (with a lease of the function's timeout) before the function
   runs and turned *done* after, so a redelivery that arrives meanwhile does not run it twice
   (it gets 409 and a ``Retry-After``), and one that arrives after has no effect (200);
2. calls the function through the same :class:`~shared.runtime.invoker.Invoker`: retries with the
   function's ``delivery`` backoff, but only while the next attempt still fits in the function's
   ``timeout`` (the app's request timeout in the generated Terraform, minus a margin for the
   dead letter), then the dead letter (object and topic, as locally);
3. answers 200 when the event was handled, found a duplicate or dead-lettered, and 5xx only when
   not even the dead letter could be written (the claim is released, so a redelivery runs it).
   An app stopping while an event waits for a retry dead-letters it too: nobody redelivers it.

Start it as ``python -m shared.runtime.subscription --function <name>`` (what
:func:`shared.runtime.commands.start_command` gives the package's Dockerfile and the generated
Terraform); it reads ``serverless.yaml`` from the working folder and serves on ``$PORT`` (8080),
with ``/healthz``, ``/readyz`` and ``/metrics`` beside the event endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from cloudevents.http import CloudEvent, from_http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.platform.observability import EVENTS, REGISTRY
from shared.runtime.config import ServiceConfig
from shared.runtime.deadletter import dead_letter_id, make_dead_letter
from shared.runtime.invoker import Invoker, Outcome

if TYPE_CHECKING:
    from shared.integration.state.claims import SqlClaimStore

log = logging.getLogger("retailfn.subscription")

COS_TYPES = {
    "com.ibm.cloud.cos.document.write": "write",
    "com.ibm.cloud.cos.document.delete": "delete",
}
KNATIVE_KAFKA_TYPE = "dev.knative.kafka.event"
_PARTITION_OFFSET = re.compile(r"^partition:(\d+)/offset:(\d+)$")
SWEEP_EVERY_S = 3600.0


# --- what makes two deliveries the same event ----------------------------------------------------


@dataclass(frozen=True)
class Identity:
    scope: str
    key: str
    origin: dict[str, Any]


def _data_dict(ce: CloudEvent) -> dict[str, Any]:
    data = ce.get_data()
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            return {}
    return data if isinstance(data, dict) else {}


def identity_of(function: str, ce: CloudEvent) -> Identity:
    """Object events by (bucket, key, etag, operation), as the local watcher claims them; Kafka
    events by the producer's (source, id) when the record carried them, else the platform's."""
    attrs = ce.get_attributes()
    operation = COS_TYPES.get(attrs["type"])
    if operation is not None:
        data = _data_dict(ce)
        notification = data.get("notification")
        note: dict[str, Any] = notification if isinstance(notification, dict) else {}
        bucket = data.get("bucket") or note.get("bucket_name")
        key = note.get("object_name") or data.get("key") or attrs.get("subject")
        etag = str(note.get("object_etag") or "").strip('"')
        if bucket and key and etag:
            return Identity(
                f"cos/{function}",
                f"{bucket}\0{key}\0{etag}\0{operation}",
                {"bucket": bucket, "key": key, "etag": etag},
            )
    source, event_id = attrs["source"], attrs["id"]
    origin: dict[str, Any] = {}
    if attrs["type"] == KNATIVE_KAFKA_TYPE:
        match = _PARTITION_OFFSET.match(str(event_id))
        topic = attrs.get("topic") or str(source).rstrip("/").rsplit("/", 1)[-1]
        origin = {
            "topic": topic,
            **({"partition": int(match[1]), "offset": int(match[2])} if match else {}),
        }
        carried_id = attrs.get("kafkaheaderce_id") or attrs.get("kafkaheaderceid")
        carried_source = attrs.get("kafkaheaderce_source") or attrs.get("kafkaheadercesource")
        if carried_id and carried_source:
            source, event_id = carried_source, carried_id
    return Identity(f"events/{function}", f"{source}\0{event_id}", origin)


# --- the claim: in progress, then done ---------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    state: Literal["held", "done", "busy"]
    version: str | None = None


def take_claim(claims: SqlClaimStore, ident: Identity, lease: timedelta) -> Claim:
    """Hold the event's claim, or say it is done, or held by a delivery still within its lease.

    A holder that died (its lease is over) is taken over, by compare-and-swap."""
    now = datetime.now(UTC)
    value = {"state": "in_progress", "lease_until": (now + lease).isoformat()}
    for _ in range(3):  # a claim can expire or go between the write and the read
        version = claims.claim_version(ident.scope, ident.key, value)
        if version is not None:
            return Claim("held", version)
        entry = claims.lookup_version(ident.scope, ident.key)
        if entry is None:
            continue
        doc, version = entry
        held = doc.get("value") or {}  # the local watcher's claims carry no value: done
        if held.get("state") != "in_progress":
            return Claim("done")
        if datetime.fromisoformat(held["lease_until"]) > now:
            return Claim("busy")
        taken = claims.replace(ident.scope, ident.key, value, version=version)
        return Claim("held", taken) if taken else Claim("busy")
    return Claim("busy")


# --- the app -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


def _problem(status: int, title: str, detail: str, **extra: Any) -> Answer:
    return Answer(
        status, {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    )


class SubscriptionFunction:
    """One function behind a subscription: dedup, the invoker's retries, the dead letter."""

    def __init__(
        self, service: ServiceConfig, name: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from shared.platform.adapters import get_bus, get_claim_store, get_store
        from shared.runtime.app import DeadLetterSink
        from shared.runtime.loader import load_function

        fn = service.functions[name]
        if fn.deployment != "subscription":
            raise ValueError(
                f"functions.{name} is deploy: {fn.deployment or 'http'}, not "
                "subscription; start it with its own start command"
            )
        loaded = load_function(name, fn.handler)
        if loaded.signature != "cloudevent":
            raise ValueError(f"functions.{name}: {fn.handler} is not a CloudEvent function")
        self.name = name
        self.stop = threading.Event()
        self.sink = DeadLetterSink(get_store(), get_bus(), fn.delivery.dead_letter)
        self.invoker = Invoker(loaded, fn.delivery, "subscription", self.sink, self.stop)
        self.claims = get_claim_store()
        self.delivery = fn.delivery
        timeout = fn.timeout.total_seconds()
        # What the platform allows: the request times out after the function's timeout; keep
        # room to write the dead letter and answer before it does.
        self.budget_s = max(timeout - min(5.0, timeout / 4), 0.0)
        self.lease = fn.timeout + timedelta(seconds=5)
        self._clock = clock

    def handle(self, ce: CloudEvent) -> Answer:
        """Deliver one POSTed event; the answer tells the platform whether it was taken."""
        deadline = self._clock() + self.budget_s
        ident = identity_of(self.name, ce)
        try:
            claim = self._with_retries(lambda: take_claim(self.claims, ident, self.lease), deadline)
        except Exception as exc:  # noqa: BLE001 - the dedup store stayed unreachable
            return self._dead_letter_directly(ce, ident, exc, 1)
        if claim.state == "done":
            EVENTS.labels(self.name, "subscription", "duplicate").inc()
            log.info(
                "duplicate event skipped",
                extra={
                    "function": self.name,
                    "event_id": ce["id"],
                    "event_type": ce["type"],
                    "outcome": "duplicate",
                },
            )
            return Answer(200, {"outcome": "duplicate"})
        if claim.state == "busy":
            return Answer(
                409,
                _problem(
                    409, "Event in progress", "another delivery of this event is being handled"
                ).body,
                {"Retry-After": "5"},
            )
        assert claim.version is not None
        try:
            outcome = self.invoker.deliver(ce, ident.origin, deadline=deadline)
        except Exception as exc:
            self.claims.release(ident.scope, ident.key, version=claim.version)
            log.exception(
                "event neither handled nor dead-lettered",
                extra={
                    "function": self.name,
                    "event_id": ce["id"],
                    "outcome": "failed",
                    "error": type(exc).__name__,
                },
            )
            return _problem(
                500,
                "Event not handled",
                "the event failed and its dead letter could not be written; deliver it again",
            )
        if outcome.status == "abandoned":
            # Stopped while waiting for a retry. A subscription never delivers the event again,
            # so it becomes a dead letter (retryable) rather than an answer nobody acts on.
            answer = self._dead_letter_directly(
                ce,
                ident,
                RuntimeError("the app stopped before the retries were done"),
                outcome.attempts,
            )
            if answer.status != 200:
                self.claims.release(ident.scope, ident.key, version=claim.version)
                return answer
            outcome = Outcome("dead_letter", outcome.attempts, answer.body["dead_letter_id"])
        self._finish(ident, claim.version, outcome, deadline)
        return Answer(
            200,
            {
                "outcome": outcome.status,
                "attempts": outcome.attempts,
                "dead_letter_id": outcome.dead_letter_id,
            },
        )

    def _finish(self, ident: Identity, version: str, outcome: Outcome, deadline: float) -> None:
        done = {
            "state": "done",
            "outcome": outcome.status,
            "dead_letter_id": outcome.dead_letter_id,
        }
        try:
            # Late deliveries of the event are duplicates from now on. If this write is lost,
            # the claim stays in progress until its lease ends and a redelivery runs again.
            self._with_retries(
                lambda: self.claims.replace(ident.scope, ident.key, done, version=version), deadline
            )
        except Exception:
            log.warning(
                "could not mark the event done",
                exc_info=True,
                extra={"function": self.name, "dedup_scope": ident.scope},
            )

    def _with_retries(self, op: Callable[[], Any], deadline: float) -> Any:
        """``op()``, retried with the function's backoff while the next try fits the deadline."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return op()
            except Exception:
                delay = self.delivery.backoff(attempt)
                if attempt > self.delivery.retry or self._clock() + delay > deadline:
                    raise
                log.warning(
                    "dedup store unavailable, will retry",
                    exc_info=True,
                    extra={
                        "function": self.name,
                        "attempt": attempt,
                        "retry_in_s": round(delay, 3),
                    },
                )
                if self.stop.wait(delay):
                    raise

    def _dead_letter_directly(
        self, ce: CloudEvent, ident: Identity, error: BaseException, attempts: int
    ) -> Answer:
        """Dead-letter an event the invoker did not finish (retryable: a replay may work)."""
        dl_id = dead_letter_id(self.name, ce)
        try:
            self.sink(
                dl_id,
                make_dead_letter(self.name, ce, error, attempts, datetime.now(UTC), ident.origin),
            )
        except Exception:
            log.exception(
                "event neither handled nor dead-lettered",
                extra={"function": self.name, "event_id": ce["id"], "outcome": "failed"},
            )
            return _problem(
                500,
                "Event not handled",
                "neither the event nor its dead letter could be stored; deliver the event again",
            )
        EVENTS.labels(self.name, "subscription", "dead_letter").inc()
        log.error(
            "event dead-lettered",
            extra={
                "function": self.name,
                "event_id": ce["id"],
                "outcome": "dead_letter",
                "reason": str(error)[:500],
                "dead_letter_id": dl_id,
            },
        )
        return Answer(
            200, {"outcome": "dead_letter", "attempts": attempts, "dead_letter_id": dl_id}
        )

    def sweep_claims(self) -> None:
        """Expired dedup claims go hourly, so the claims table does not grow forever."""
        while not self.stop.wait(SWEEP_EVERY_S):
            try:
                self.claims.sweep()
            except Exception:  # housekeeping never takes the app down
                log.exception("claim sweep failed")


def build_app(function: SubscriptionFunction) -> Starlette:
    """The ASGI app: any POST is an event (binary or structured CloudEvent, as
    functions-framework reads it); ``/healthz``, ``/readyz``, ``/metrics``."""

    async def event(request: Request) -> Response:
        try:
            ce = from_http(dict(request.headers), await request.body())
        except Exception as exc:  # noqa: BLE001 - the SDK raises several types
            answer = _problem(400, "Not a CloudEvent", str(exc)[:300])
        else:
            answer = await asyncio.to_thread(function.handle, ce)
        media = "application/json" if answer.status < 300 else "application/problem+json"
        return JSONResponse(answer.body, answer.status, headers=answer.headers, media_type=media)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        stopping = function.stop.is_set()
        return JSONResponse({"status": "stopping" if stopping else "ok"}, 503 if stopping else 200)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=function.sweep_claims, name="claim-sweep", daemon=True).start()
        log.info("subscription app ready", extra={"function": function.name})
        yield
        function.stop.set()  # a delivery waiting for a retry is abandoned and answered 503
        from shared.platform.publisher import flush_background

        flush_background()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", event, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from shared.platform.observability import configure_logging, configure_metrics
    from shared.platform.settings import get_settings
    from shared.runtime.commands import app_arguments, load_app_service
    from shared.runtime.config import ConfigError
    from shared.runtime.loader import HandlerError
    from shared.runtime.stage import StageGuardError, apply_function

    args = app_arguments(
        "python -m shared.runtime.subscription", __doc__.split("\n", 1)[0]
    ).parse_args(argv)
    if not args.function:
        print("Error: no function: give --function or set RETAILFN_FUNCTION", file=sys.stderr)
        return 2
    try:
        service = load_app_service(args)
        # One function per app: its environment is the process's (see apply_function).
        settings = apply_function(service, args.function)
        configure_logging(get_settings().log_level)
        configure_metrics(created=settings.metrics_created)
        function = SubscriptionFunction(service, args.function)
    except (ConfigError, HandlerError, StageGuardError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        build_app(function),
        host=args.host,
        port=args.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(function.budget_s) + 5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
