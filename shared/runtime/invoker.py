"""Deliver one CloudEvent to one function: retries with backoff, then the dead letter.

This is the part of the runtime every event trigger shares (Kafka, object storage, schedule,
``retailfn invoke`` and ``retailfn dlq replay``). It calls the function's functions-framework
entry point with a ``cloudevents.http.CloudEvent``, exactly what the framework would hand it after
parsing a platform's POST.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cloudevents.http import CloudEvent
from pydantic import ValidationError

from events.deadletter import DeadLetter
from events.envelope import InvalidEvent
from shared.platform.errors import PermanentError
from shared.platform.observability import DEAD_LETTERS, EVENT_LATENCY, EVENTS
from shared.platform.settings import Settings, enter_settings, exit_settings
from shared.runtime.config import Delivery
from shared.runtime.deadletter import dead_letter_id, make_dead_letter
from shared.runtime.loader import LoadedFunction

log = logging.getLogger("retailfn.runtime")

OutcomeStatus = Literal["ok", "dead_letter", "abandoned"]

# Failures that no retry can fix: the event itself is wrong.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (InvalidEvent, ValidationError, PermanentError)


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    attempts: int
    dead_letter_id: str | None = None


_OK_FIRST_TIME = Outcome("ok", 1)


class Invoker:
    def __init__(
        self,
        function: LoadedFunction,
        delivery: Delivery,
        trigger: str,
        dead_letter: Callable[[str, DeadLetter], None],
        stop: threading.Event | None = None,
        sleep: Callable[[float], bool] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.function = function
        self.settings = settings
        """The function's own settings, current while it runs (``None``: the process's)."""
        self.delivery = delivery
        self.trigger = trigger
        self._dead_letter = dead_letter
        self._stop = stop or threading.Event()
        self._wait = sleep or self._stop.wait
        self._local = threading.local()
        # Label lookups cost more than the increments; resolve the hot ones once.
        self._ok = EVENTS.labels(function.name, trigger, "ok")
        self._latency = EVENT_LATENCY.labels(function.name, trigger)

    def _call(self, ce: CloudEvent) -> Any:
        token = enter_settings(self.settings) if self.settings is not None else None
        try:
            if not self.function.is_async:
                return self.function.callable(ce)
            loop = getattr(self._local, "loop", None)
            if loop is None:
                loop = self._local.loop = asyncio.new_event_loop()
            return loop.run_until_complete(self.function.callable(ce))
        finally:
            if token is not None:
                exit_settings(token)

    def deliver(
        self, ce: CloudEvent, origin: dict[str, Any] | None = None, *, deadline: float | None = None
    ) -> Outcome:
        """Call the function until it succeeds, retrying with the delivery's backoff; then the
        dead letter. ``deadline`` (``time.monotonic()``) ends the retries early when the wait
        before the next attempt would pass it: a platform's request timeout."""
        name = self.function.name
        start = time.perf_counter()
        first_failure: datetime | None = None
        attempt = 0
        t0 = start
        while True:
            attempt += 1
            if attempt > 1:
                t0 = time.perf_counter()
            try:
                self._call(ce)
            except Exception as exc:
                first_failure = first_failure or datetime.now(UTC)
                permanent = isinstance(exc, PERMANENT_ERRORS)
                fields = self._fields(ce, attempt, t0)
                if permanent or attempt > self.delivery.retry or self._past(deadline, attempt):
                    dl_id = dead_letter_id(name, ce)
                    self._dead_letter(
                        dl_id,
                        make_dead_letter(
                            name, ce, exc, attempt, first_failure, origin, retryable=not permanent
                        ),
                    )
                    EVENTS.labels(name, self.trigger, "dead_letter").inc()
                    DEAD_LETTERS.labels(name, "invalid" if permanent else "exhausted").inc()
                    self._latency.observe(time.perf_counter() - start)
                    log.error(
                        "event dead-lettered",
                        exc_info=not permanent,
                        extra={
                            **fields,
                            "outcome": "dead_letter",
                            "error": type(exc).__name__,
                            "reason": str(exc)[:500],
                            "dead_letter_id": dl_id,
                        },
                    )
                    return Outcome("dead_letter", attempt, dl_id)
                delay = self.delivery.backoff(attempt)
                EVENTS.labels(name, self.trigger, "retried").inc()
                log.warning(
                    "event failed, will retry",
                    extra={
                        **fields,
                        "outcome": "retry",
                        "error": type(exc).__name__,
                        "retry_in_s": round(delay, 3),
                    },
                )
                if self._wait(delay):
                    log.info(
                        "shutting down: event abandoned, it stays uncommitted",
                        extra={**fields, "outcome": "abandoned"},
                    )
                    return Outcome("abandoned", attempt)
                continue
            self._ok.inc()
            self._latency.observe(time.perf_counter() - start)
            if log.isEnabledFor(logging.INFO):
                log.info("event handled", extra={**self._fields(ce, attempt, t0), "outcome": "ok"})
            return _OK_FIRST_TIME if attempt == 1 else Outcome("ok", attempt)

    def _past(self, deadline: float | None, attempt: int) -> bool:
        return deadline is not None and time.monotonic() + self.delivery.backoff(attempt) > deadline

    def dead_letter_now(
        self, ce: CloudEvent, error: BaseException, origin: dict[str, Any] | None = None
    ) -> str:
        """Dead-letter an event that never reached the function (it could not even be read)."""
        dl_id = dead_letter_id(self.function.name, ce)
        self._dead_letter(
            dl_id,
            make_dead_letter(
                self.function.name, ce, error, 1, datetime.now(UTC), origin, retryable=False
            ),
        )
        EVENTS.labels(self.function.name, self.trigger, "dead_letter").inc()
        DEAD_LETTERS.labels(self.function.name, "unreadable").inc()
        log.error(
            "unreadable event dead-lettered",
            extra={
                "function": self.function.name,
                "trigger": self.trigger,
                "event_id": str(ce["id"])[:256],
                "outcome": "dead_letter",
                "reason": str(error)[:500],
                "dead_letter_id": dl_id,
            },
        )
        return dl_id

    def _fields(self, ce: CloudEvent, attempt: int, t0: float) -> dict[str, Any]:
        # An attribute may be megabytes (that may be why the event failed): log its beginning.
        return {
            "function": self.function.name,
            "trigger": self.trigger,
            "event_id": str(ce["id"])[:256],
            "event_type": str(ce["type"])[:256],
            "event_source": str(ce["source"])[:256],
            "attempt": attempt,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
        }
