"""A Kafka trigger: one consumer-group member feeding one function.

At-least-once: offsets are committed only after every record before them has had its effect
(handled, or dead-lettered). ``ordered`` handles a partition's records one after another, so
per-key order holds; ``unordered`` handles a poll's records on a thread pool and commits when the
whole poll is done. A record the function cannot take goes to the dead letter and the records
after it carry on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage, from_binary

from shared.bus.port import Consumer, EventBus, Record, TopicPartition
from shared.config import KafkaTrigger
from shared.observability import CONSUMER_LAG, EVENTS
from shared.runtime.dedup import SeenLog
from shared.runtime.invoker import Invoker

log = logging.getLogger("retailfn.runtime")

KNATIVE_KAFKA_EVENT = "dev.knative.kafka.event"


class UnreadableRecord(Exception):
    """A record that is not a valid binary-mode CloudEvent although it claims to be one."""


def _data(value: bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def record_to_cloudevent(record: Record) -> CloudEvent:
    """The CloudEvent a platform would deliver for this record.

    A binary-mode CloudEvent (``ce_*`` headers) is decoded through the SDK. Any other record (a
    partner streaming plain JSON) becomes what Code Engine's Kafka subscription delivers: type
    ``dev.knative.kafka.event``, id ``partition:<p>/offset:<o>``, the raw value as data and the
    Kafka key in the ``key`` extension.
    """
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    headers = dict(record.headers)
    if "ce_specversion" in headers:
        try:
            return from_binary(KafkaMessage(headers=headers, key=key, value=record.value))
        except Exception as exc:  # the SDK raises several types for a broken record
            raise UnreadableRecord(f"broken binary-mode CloudEvent: {exc}") from exc
    return raw_record_event(record, key)


def raw_record_event(record: Record, key: str | None) -> CloudEvent:
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
    return CloudEvent(attributes, _data(record.value))


@dataclass(frozen=True)
class _Handled:
    delivered: bool
    """``False`` only when shutdown abandoned the record: it must stay uncommitted."""
    dedup_key: str | None = None


def unreadable_record_event(record: Record) -> CloudEvent:
    """The raw record as an event, keeping whatever ``ce_*`` attributes it did carry."""
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    event = raw_record_event(record, key)
    for name, value in record.headers:
        attr = name[3:] if name.startswith("ce_") else None
        if attr in ("id", "source", "type", "subject", "time"):
            event[attr] = value.decode("utf-8", "replace")
    event.data = record.value
    return event


class KafkaTriggerWorker:
    def __init__(self, *, function: str, group: str, trigger: KafkaTrigger, bus: EventBus,
                 invoker: Invoker, seen: SeenLog, stop: threading.Event,
                 on_ready: Callable[[], None] | None = None, poll_timeout_s: float = 0.5) -> None:
        self.function = function
        self.group = group
        self.trigger = trigger
        self.bus = bus
        self.invoker = invoker
        self.seen = seen
        self.stop = stop
        self.on_ready = on_ready
        self.poll_timeout_s = poll_timeout_s
        self.processed = 0
        self._pool = (ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{function}-unordered")
                      if trigger.ordering == "unordered" else None)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"kafka-{self.function}",
                                        daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    def run(self) -> None:
        consumer = self.bus.consumer(self.group, [self.trigger.topic],
                                     start=self.trigger.start_position,
                                     client_id=f"retailfn-{self.function}")
        log.info("consumer started", extra={"function": self.function, "group": self.group,
                                            "topic": self.trigger.topic})
        if self.on_ready:
            self.on_ready()
        try:
            while not self.stop.is_set():
                records = consumer.poll(self.poll_timeout_s, self.trigger.batch_size)
                if records:
                    self._handle_batch(consumer, records)
                self._report_lag(consumer)
        except Exception:
            log.exception("consumer failed", extra={"function": self.function})
            raise
        finally:
            consumer.close()
            if self._pool:
                self._pool.shutdown(wait=True)
            log.info("consumer stopped", extra={"function": self.function,
                                                "processed": self.processed})

    def _handle_batch(self, consumer: Consumer, records: list[Record]) -> None:
        by_partition: dict[TopicPartition, list[Record]] = defaultdict(list)
        for r in records:
            by_partition[r.tp].append(r)
        results: dict[tuple[TopicPartition, int], _Handled] = {}
        if self._pool is None:
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
                handled = results.get((tp, r.offset))
                if handled is None or not handled.delivered:
                    break
                done[tp].append((r, handled.dedup_key))
        self._commit(consumer, done)

    def _commit(self, consumer: Consumer,
                done: dict[TopicPartition, list[tuple[Record, str | None]]]) -> None:
        offsets = {tp: rs[-1][0].offset + 1 for tp, rs in done.items() if rs}
        if not offsets:
            return
        # The poll's ids are durable before its offsets are committed: one object per poll,
        # named after its first record, so a re-delivered poll overwrites its own.
        keys = [k for rs in done.values() for _, k in rs if k]
        first_tp = min(tp for tp, rs in done.items() if rs)
        self.seen.persist(f"{first_tp.topic}+{first_tp.partition}+{done[first_tp][0][0].offset}",
                          keys)
        consumer.commit(offsets)
        self.processed += sum(len(rs) for rs in done.values())

    def _handle(self, record: Record) -> _Handled:
        origin = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            ce = record_to_cloudevent(record)
        except UnreadableRecord as exc:
            self.invoker.dead_letter_now(unreadable_record_event(record), exc, origin)
            return _Handled(True)
        dedup_key = f"{ce['source']}\0{ce['id']}"
        if self.seen.seen(dedup_key):
            EVENTS.labels(self.function, "kafka", "duplicate").inc()
            log.info("duplicate event skipped", extra={
                "function": self.function, "event_id": ce["id"], "event_type": ce["type"],
                "outcome": "duplicate"})
            return _Handled(True)
        outcome = self.invoker.deliver(ce, origin)
        if outcome.status == "abandoned":
            return _Handled(False)
        if outcome.status != "ok":
            return _Handled(True)
        self.seen.add(dedup_key)
        return _Handled(True, dedup_key)

    def _report_lag(self, consumer: Consumer) -> None:
        lag = getattr(consumer, "lag", None)
        if lag is None:
            return
        for tp, n in lag().items():
            CONSUMER_LAG.labels(self.function, tp.topic, str(tp.partition)).set(n)
