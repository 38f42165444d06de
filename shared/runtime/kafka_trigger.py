"""A Kafka trigger: one consumer-group member feeding one function.

At-least-once: offsets are committed only after every record before them has had its effect
(handled, or dead-lettered). ``ordered`` handles a partition's records one after another, so
per-key order holds; ``unordered`` handles a poll's records on a thread pool and commits when the
whole poll is done. A record the function cannot take goes to the dead letter and the records
after it carry on.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cloudevents.http import CloudEvent

from events.envelope import InvalidEvent, identity, kafka_cloudevent
from events.platform import KAFKA_BATCH_TYPE
from shared.integration.bus.port import (
    BusError,
    BusUnavailable,
    Consumer,
    EventBus,
    Record,
    TopicPartition,
)
from shared.integration.objectstore.port import ObjectStoreError
from shared.platform.dedup import SeenLog
from shared.platform.observability import CONSUMER_LAG, EVENTS
from shared.runtime.config import KafkaTrigger
from shared.runtime.invoker import Invoker

log = logging.getLogger("retailfn.runtime")

KNATIVE_KAFKA_EVENT = "dev.knative.kafka.event"
COMMIT_MAX_RECORDS = 10_000
"""Commit at once when this many handled records wait, whatever the interval."""


class UnreadableRecord(Exception):
    """A record that is not a valid CloudEvent although it claims to be one."""


def _data(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        # Not JSON (or nested too deeply to parse): the function gets the bytes, and its
        # parse_event says what is wrong with them.
        return value


def record_to_cloudevent(record: Record) -> CloudEvent:
    """The CloudEvent a platform would deliver for this record.

    A CloudEvent in structured mode (``content-type: application/cloudevents+json``) or binary
    mode (``ce_*`` headers) is decoded through the SDK; one without an id is refused
    (:class:`UnreadableRecord`), since the SDK would invent an id that can never deduplicate.
    Any other record (a partner streaming plain JSON) becomes what Code Engine's Kafka
    subscription delivers: type ``dev.knative.kafka.event``, id ``partition:<p>/offset:<o>``,
    the raw value as data and the Kafka key in the ``key`` extension.
    """
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    headers = {name.lower(): value for name, value in record.headers if value is not None}
    try:
        # A binary-mode value stays bytes, as a platform's HTTP delivery leaves it to the
        # function: parse_event decodes it once, where it is needed.
        ce = kafka_cloudevent(headers, key, record.value)
    except InvalidEvent as exc:
        raise UnreadableRecord(exc.reason) from exc
    return ce if ce is not None else raw_record_event(record, key)


def _raw_attributes(record: Record, key: str | None) -> dict[str, Any]:
    attributes = {
        "type": KNATIVE_KAFKA_EVENT,
        "source": f"/kafka/{record.topic}",
        "id": f"partition:{record.partition}/offset:{record.offset}",
        "subject": f"partition:{record.partition}#{record.offset}",
        "topic": record.topic,
        "datacontenttype": "application/json",
    }
    if key is not None:
        attributes["key"] = key
    return attributes


def raw_record_event(record: Record, key: str | None) -> CloudEvent:
    return CloudEvent(_raw_attributes(record, key), _data(record.value))


@dataclass(frozen=True)
class _Handled:
    delivered: bool
    """``False`` only when shutdown abandoned the record: it must stay uncommitted."""
    dedup_key: str | None = None


def unreadable_record_event(record: Record) -> CloudEvent:
    """The raw record as an event, keeping whatever ``ce_*`` attributes it did carry. Its value
    is not parsed: this is what is left when reading the record failed."""
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    attributes = _raw_attributes(record, key)
    for name, value in record.headers:
        attr = name[3:] if name.startswith("ce_") else None
        if attr in ("id", "source", "type", "subject", "time") and value:
            attributes[attr] = value.decode("utf-8", "replace")
    return CloudEvent(attributes, record.value)


def batch_event(tp: TopicPartition, records: list[Record]) -> CloudEvent:
    """One ``mode: batch`` delivery: consecutive records of one partition, values untouched."""
    items = []
    for r in records:
        try:
            value, encoding = r.value.decode("utf-8"), "text"
        except UnicodeDecodeError:
            value, encoding = base64.b64encode(r.value).decode("ascii"), "base64"
        items.append(
            {
                "offset": r.offset,
                "timestamp_ms": r.timestamp_ms,
                "key": r.key.decode("utf-8", "replace") if r.key is not None else None,
                "headers": {k: (v or b"").decode("utf-8", "replace") for k, v in r.headers},
                "value": value,
                "value_encoding": encoding,
            }
        )
    first, last = records[0].offset, records[-1].offset
    return CloudEvent(
        {
            "type": KAFKA_BATCH_TYPE,
            "source": f"/kafka/{tp.topic}",
            "id": f"{tp.topic}+{tp.partition}+{first}+{last}",
            "subject": f"partition:{tp.partition}#{first}-{last}",
            "datacontenttype": "application/json",
        },
        {"topic": tp.topic, "partition": tp.partition, "records": items},
    )


@dataclass(frozen=True)
class _Finished:
    """A handled poll: the offsets to commit and the dedup keys to persist first."""

    offsets: dict[TopicPartition, int]
    keys: list[str]
    name: str
    count: int


class KafkaTriggerWorker:
    def __init__(
        self,
        *,
        function: str,
        group: str,
        trigger: KafkaTrigger,
        bus: EventBus,
        invoker: Invoker,
        seen: SeenLog,
        stop: threading.Event,
        on_ready: Callable[[], None] | None = None,
        poll_timeout_s: float = 0.5,
        commit_interval_s: float = 1.0,
    ) -> None:
        self.function = function
        self.group = group
        self.trigger = trigger
        self.bus = bus
        self.invoker = invoker
        self.seen = seen
        self.stop = stop
        self.on_ready = on_ready
        self.poll_timeout_s = poll_timeout_s
        self.commit_interval_s = commit_interval_s
        self._pending: list[_Finished] = []
        self._committed_at = time.monotonic()
        self.processed = 0
        self._pool = (
            ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{function}-unordered")
            if trigger.ordering == "unordered"
            else None
        )
        self._thread: threading.Thread | None = None
        self._lag_reported = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"kafka-{self.function}", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Poll on this thread, handle on another, so the broker round trip and the function's
        work overlap. Only this thread touches the consumer (it is not thread-safe): the handler
        hands back the offsets it finished and this thread commits them before its next poll."""
        consumer = self.bus.consumer(
            self.group,
            self.trigger.topics,
            start=self.trigger.start_position,
            client_id=f"retailfn-{self.function}",
        )
        log.info(
            "consumer started",
            extra={"function": self.function, "group": self.group, "topics": self.trigger.topics},
        )
        if self.on_ready:
            self.on_ready()
        handoff: queue.Queue[list[Record] | None] = queue.Queue(maxsize=1)
        finished: queue.SimpleQueue[_Finished] = queue.SimpleQueue()
        halt = threading.Event()  # this trigger's handler only; the runtime's stop is shared
        handler = threading.Thread(
            target=self._handle_loop,
            args=(handoff, finished, halt),
            name=f"handle-{self.function}",
            daemon=True,
        )
        handler.start()
        outages = 0
        try:
            while not self.stop.is_set() and handler.is_alive():
                self._commit_finished(consumer, finished)
                try:
                    records = consumer.poll(self.poll_timeout_s, self.trigger.batch_size)
                    outages = 0
                except BusUnavailable:
                    # The broker is away: keep the member, wait, try again. Nothing is lost:
                    # what was not committed is read again.
                    outages += 1
                    delay = min(0.5 * 2**outages, 30.0)
                    log.warning(
                        "poll failed; retrying",
                        exc_info=True,
                        extra={"function": self.function, "retry_in_s": delay},
                    )
                    self.stop.wait(delay)
                    continue
                while records and not self.stop.is_set() and handler.is_alive():
                    try:
                        handoff.put(records, timeout=0.05)
                        records = []
                    except queue.Full:
                        self._commit_finished(consumer, finished)
                self._report_lag(consumer)
        except Exception:
            # Logged once, as JSON; the thread then ends, which turns /readyz to 503 so the
            # platform restarts the process (re-raising would only print a plain traceback).
            log.exception("consumer failed", extra={"function": self.function})
        finally:
            halt.set()
            with contextlib.suppress(queue.Full):
                handoff.put_nowait(None)
            handler.join()
            self._commit_finished(consumer, finished, force=True)
            consumer.close()
            if self._pool:
                self._pool.shutdown(wait=True)
            log.info(
                "consumer stopped", extra={"function": self.function, "processed": self.processed}
            )

    def _handle_loop(
        self,
        handoff: queue.Queue[list[Record] | None],
        finished: queue.SimpleQueue[_Finished],
        halt: threading.Event,
    ) -> None:
        while not (self.stop.is_set() or halt.is_set()):
            try:
                records = handoff.get(timeout=0.1)
            except queue.Empty:
                continue
            if records is None:
                return
            try:
                done = self._handle_batch(records)
            except Exception:
                # Only a dead letter that could not be written gets here: the trigger stops
                # (uncommitted, so nothing is lost) and /readyz turns 503 for a restart.
                log.exception("handler failed; trigger stops", extra={"function": self.function})
                return  # logged once, as JSON; re-raising would print a plain traceback too
            if done is not None:
                finished.put(done)

    def _commit_finished(
        self, consumer: Consumer, finished: queue.SimpleQueue[_Finished], *, force: bool = False
    ) -> None:
        """Commit what the handler finished, at most every ``commit_interval_s`` (or sooner when
        many records wait, or at shutdown), as Kafka's own auto-commit would: a crash re-delivers
        at most that much, and idempotent effects plus the dedup log absorb it."""
        while True:
            try:
                self._pending.append(finished.get_nowait())
            except queue.Empty:
                break
        if not self._pending:
            return
        waiting = sum(done.count for done in self._pending)
        now = time.monotonic()
        if not (
            force
            or waiting >= COMMIT_MAX_RECORDS
            or now - self._committed_at >= self.commit_interval_s
        ):
            return
        # The ids are durable before the offsets are committed: one object per commit, named
        # after its first record, so a re-delivered range overwrites its own.
        try:
            self.seen.persist(
                self._pending[0].name, [k for done in self._pending for k in done.keys]
            )
        except ObjectStoreError:
            # The store is away: commit nothing (the records stay uncommitted, so nothing is
            # lost) and try again after the interval; a blip must not end the consumer.
            self._committed_at = now
            log.warning(
                "dedup ids not written; the commit waits for the object store",
                exc_info=True,
                extra={"function": self.function, "waiting": waiting},
            )
            return
        offsets: dict[TopicPartition, int] = {}
        for done in self._pending:
            for tp, offset in done.offsets.items():
                offsets[tp] = max(offset, offsets.get(tp, 0))
        self._pending.clear()
        self._committed_at = now
        try:
            consumer.commit(offsets)
        except BusError:
            # Partitions moved to another member meanwhile: it re-reads from the last commit
            # (at least once), and the dedup log keeps the effects single.
            log.warning(
                "commit failed; records will be redelivered",
                extra={"function": self.function},
                exc_info=True,
            )

    def _handle_batch(self, records: list[Record]) -> _Finished | None:
        """Handle one poll; return the offsets to commit (up to the first abandoned record)."""
        by_partition: dict[TopicPartition, list[Record]] = defaultdict(list)
        for r in records:
            by_partition[r.tp].append(r)
        results: dict[tuple[TopicPartition, int], _Handled] = {}
        if self.trigger.mode == "batch":
            for tp, rs in by_partition.items():
                handled = self._handle_partition_batch(tp, rs)
                for r in rs:
                    results[(tp, r.offset)] = handled
                if not handled.delivered:
                    break
        elif self._pool is None:
            for tp, rs in by_partition.items():
                for r in rs:
                    results[(tp, r.offset)] = handled = self._handle(r)
                    if not handled.delivered:
                        break  # shutting down: leave this and later records uncommitted
                if self.stop.is_set():
                    break
        else:
            handled_all = self._pool.map(self._handle, records)
            results = {(r.tp, r.offset): h for r, h in zip(records, handled_all, strict=True)}
        done: dict[TopicPartition, list[tuple[Record, str | None]]] = {}
        for tp, rs in by_partition.items():
            done[tp] = []
            for r in rs:  # commit a partition only up to its first abandoned record
                result = results.get((tp, r.offset))
                if result is None or not result.delivered:
                    break
                done[tp].append((r, result.dedup_key))
        offsets = {tp: rs[-1][0].offset + 1 for tp, rs in done.items() if rs}
        if not offsets:
            return None
        first_tp = min(tp for tp, rs in done.items() if rs)
        self.processed += sum(len(rs) for rs in done.values())
        return _Finished(
            offsets=offsets,
            keys=[k for rs in done.values() for _, k in rs if k],
            name=f"{first_tp.topic}+{first_tp.partition}+{done[first_tp][0][0].offset}",
            count=sum(len(rs) for rs in done.values()),
        )

    def _handle(self, record: Record) -> _Handled:
        origin = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            return self._handle_readable(record, origin)
        except UnreadableRecord as exc:
            self.invoker.dead_letter_now(unreadable_record_event(record), exc, origin)
            return _Handled(True)
        except Exception as exc:
            # Only a failure to handle the record gets here (the function's own failures are
            # the invoker's): dead-letter it and carry on. Should the dead letter fail as well
            # (its store or topic is down), that escapes, the trigger dies and /readyz says so.
            log.exception(
                "record could not be handled",
                extra={"function": self.function, **origin, "error": type(exc).__name__},
            )
            self.invoker.dead_letter_now(unreadable_record_event(record), exc, origin)
            return _Handled(True)

    def _handle_readable(self, record: Record, origin: dict[str, Any]) -> _Handled:
        ce = record_to_cloudevent(record)
        dedup_key = identity(ce["source"], ce["id"], sep="\0")
        if self.seen.seen(dedup_key):
            EVENTS.labels(self.function, "kafka", "duplicate").inc()
            log.info(
                "duplicate event skipped",
                extra={
                    "function": self.function,
                    "event_id": ce["id"],
                    "event_type": ce["type"],
                    "outcome": "duplicate",
                },
            )
            return _Handled(True)
        outcome = self.invoker.deliver(ce, origin)
        if outcome.status == "abandoned":
            return _Handled(False)
        if outcome.status != "ok":
            return _Handled(True)
        self.seen.add(dedup_key)
        return _Handled(True, dedup_key)

    def _handle_partition_batch(self, tp: TopicPartition, records: list[Record]) -> _Handled:
        origin = {"topic": tp.topic, "partition": tp.partition, "offset": records[0].offset}
        outcome = self.invoker.deliver(batch_event(tp, records), origin)
        return _Handled(outcome.status != "abandoned")

    def _report_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._lag_reported < 1.0:
            return  # a gauge: once a second is plenty
        self._lag_reported = now
        for tp, n in consumer.lag().items():
            CONSUMER_LAG.labels(self.function, tp.topic, str(tp.partition)).set(n)
