"""Publish typed events to their topics, in CloudEvents binary mode."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from events.catalog import topic_for_type
from events.envelope import Event, to_kafka
from shared.integration.bus.port import RecordMetadata
from shared.platform.adapters import get_bus

log = logging.getLogger("retailfn.publisher")


def publish(event: Event[Any], *, topic: str | None = None) -> RecordMetadata:
    """Append one event to its primary topic (or ``topic``); durable when this returns."""
    key, value, headers = to_kafka(event)
    return get_bus().publish(topic or topic_for_type(event.type), value, key=key, headers=headers)


def publish_many(events: Iterable[Event[Any]], *, topic: str | None = None) -> list[RecordMetadata]:
    """Append many events, grouped by topic, keeping their order within each topic."""
    by_topic: dict[str, list[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]]] = {}
    for event in events:
        key, value, headers = to_kafka(event)
        by_topic.setdefault(topic or topic_for_type(event.type), []).append((key, value, headers))
    out: list[RecordMetadata] = []
    bus = get_bus()
    for name, records in by_topic.items():
        out.extend(bus.publish_many(name, records))
    return out


class BackgroundPublisher:
    """Publishes events a moment later, many at a time, off the request's path.

    For events whose loss in a crash costs a statistic, not a fact: ``recommendation.shown`` feeds
    the A/B report; no stock or money depends on it. Events wait at most ``interval_s`` (or until
    ``max_batch`` are queued) and then go out in one ``publish_many``, so a busy API pays one bus
    append and one fsync per batch instead of one per request. A failed batch is logged and
    dropped, as a failed direct publish would have been.
    """

    def __init__(self, interval_s: float = 0.1, max_batch: int = 1000) -> None:
        self.interval_s = interval_s
        self.max_batch = max_batch
        self._queue: list[Event[Any]] = []
        self._lock = threading.Condition()
        self._flushing = threading.Lock()  # a flush waits for one in flight, then does its own
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, events: Iterable[Event[Any]]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the background publisher is closed")
            self._queue.extend(events)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="background-publisher", daemon=True
                )
                self._thread.start()
            if len(self._queue) >= self.max_batch:
                self._lock.notify()

    def flush(self) -> None:
        """Publish what is queued now, on the caller's thread."""
        with self._flushing:
            with self._lock:
                batch, self._queue = self._queue, []
            if batch:
                try:
                    publish_many(batch)
                except Exception:  # a statistic is lost, never a request
                    log.warning(
                        "background publish failed; %d events dropped", len(batch), exc_info=True
                    )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closed and len(self._queue) < self.max_batch:
                    self._lock.wait(self.interval_s)
                if self._closed:
                    return
            self.flush()


_background: BackgroundPublisher | None = None
_background_lock = threading.Lock()


def publish_later(events: Iterable[Event[Any]]) -> None:
    """Queue events on the process's :class:`BackgroundPublisher` (flushed at exit too)."""
    global _background
    if _background is None:
        with _background_lock:
            if _background is None:
                _background = BackgroundPublisher()
                atexit.register(_background.close)
    _background.submit(events)


def flush_background() -> None:
    """Publish whatever :func:`publish_later` still holds (tests, shutdown)."""
    if _background is not None:
        _background.flush()
