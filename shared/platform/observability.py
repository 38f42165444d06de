"""Structured JSON logs and Prometheus metrics, shared by every function and the runtime.

Logs: one JSON object per line on stderr, with ``time`` in RFC 3339 UTC with milliseconds
(``2026-01-01T12:00:00.123Z``), ``function``, ``event_id``, ``event_type``, ``attempt``,
``outcome`` and ``latency_ms`` where they apply (pass them as ``extra=``).
A function never logs secrets: settings hold them as ``SecretStr`` and the formatter is given
no request headers. Metrics live in one registry exposed at ``/metrics``, without the
``*_created`` series of counters and histograms unless ``RETAILFN_METRICS_CREATED=true``
(:func:`configure_metrics`): most scrapers store each as one more series and never read it.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
)
from pythonjsonlogger.json import JsonFormatter

_configured = False


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time, so a redirected stderr is honoured."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # logging assigns a stream on setStream(); this handler always follows sys.stderr


class LogFormatter(JsonFormatter):
    """``time`` as RFC 3339 in UTC with milliseconds, which log tools parse without a pattern."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return (
            datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every logger's records as JSON lines to ``stream`` (stderr by default). Idempotent."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured:
        return
    handler = logging.StreamHandler(stream) if stream else _StderrHandler()
    handler.setFormatter(
        LogFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root.handlers[:] = [handler]
    # Quiet the chatty clients; their warnings still come through.
    for name in ("kafka", "ibm_botocore", "ibm_boto3", "urllib3", "werkzeug", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    _configured = True


def configure_metrics(created: bool = False) -> None:
    """Expose the ``*_created`` series of counters and histograms, or not (the default)."""
    if created:
        enable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client: untyped
    else:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client: untyped


# Off from the start, so that a function served by plain functions-framework has none either.
configure_metrics(created=False)
REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

EVENTS = Counter(
    "retailfn_events",
    "Events handled by a function, by trigger and outcome (ok, retried, dead_letter, duplicate).",
    ["function", "trigger", "outcome"],
    registry=REGISTRY,
)
EVENT_LATENCY = Histogram(
    "retailfn_event_duration_seconds",
    "Time a function took per event, across all attempts.",
    ["function", "trigger"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "retailfn_dead_letters",
    "Events sent to the dead letter after their last attempt.",
    ["function", "reason"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "retailfn_consumer_lag",
    "Records in a partition not yet processed by the function's consumer group.",
    ["function", "topic", "partition"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "retailfn_http_requests",
    "HTTP requests served, by function, method and status.",
    ["function", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "retailfn_http_request_duration_seconds",
    "HTTP request latency by function.",
    ["function"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
