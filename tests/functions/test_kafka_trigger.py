"""The Kafka trigger's own behaviour around a consumer that misbehaves (a scripted consumer stands
in for the broker; the bus adapters themselves are covered by the contract suite)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from events.deadletter import MAX_DATA_CHARS, DeadLetter
from events.envelope import Event, event_from_sample, parse_event, to_kafka
from events.samples import load_sample
from shared.integration.bus.port import BusUnavailable, Consumer, Record, TopicPartition
from shared.integration.objectstore.port import ObjectStoreError
from shared.platform.adapters import bucket, get_bus, get_store
from shared.platform.dedup import SeenLog
from shared.runtime.app import DeadLetterSink, provision
from shared.runtime.config import Delivery, KafkaTrigger
from shared.runtime.deadletter import DeadLetterStore
from shared.runtime.invoker import Invoker
from shared.runtime.kafka_trigger import KafkaTriggerWorker
from shared.runtime.loader import LoadedFunction

TP = TopicPartition("sales.order-completed", 0)


class ScriptedConsumer(Consumer):
    """Polls answer from a script: an exception is raised, a list is returned."""

    def __init__(self, script: list[object]) -> None:
        self.script = script
        self.commits: list[dict[TopicPartition, int]] = []
        self.closed = False

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        if not self.script:
            time.sleep(min(timeout_s, 0.05))
            return []
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[return-value]

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self.commits.append(dict(offsets or {}))

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def committed(self, tp: TopicPartition) -> int | None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def lag(self) -> dict[TopicPartition, int]:
        return {}

    def close(self) -> None:
        self.closed = True


class ScriptedBus:
    def __init__(self, consumer: ScriptedConsumer) -> None:
        self._consumer = consumer

    def consumer(self, *args: object, **kwargs: object) -> ScriptedConsumer:
        return self._consumer


def test_a_broker_outage_is_waited_out_and_the_records_after_it_are_handled() -> None:
    store = get_store()
    store.create_bucket(bucket("state"))
    key, value, headers = to_kafka(event_from_sample("order-completed"))
    record = Record(TP.topic, 0, 7, key, value, tuple(headers), 0)
    consumer = ScriptedConsumer([BusUnavailable("broker away"), [record]])
    stop = threading.Event()
    handled: list[str] = []
    function = LoadedFunction(
        "record_ids", "tests:record_ids", lambda ce: handled.append(ce["id"]), "cloudevent", False
    )
    invoker = Invoker(function, Delivery(), "kafka", lambda *_: None, stop)
    worker = KafkaTriggerWorker(
        function="record_order",
        group="g",
        trigger=KafkaTrigger(topic=TP.topic),
        bus=ScriptedBus(consumer),
        invoker=invoker,
        seen=SeenLog(store, bucket("state"), "f"),
        stop=stop,
        commit_interval_s=0,
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not consumer.commits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.alive and not stop.is_set(), "an outage must not stop the runtime"
    stop.set()
    worker.join(10)

    assert handled == [event_from_sample("order-completed").id]
    assert {TP: 8} in consumer.commits
    assert consumer.closed


class FlakySeenLog(SeenLog):
    """A dedup log whose first ``failures`` writes find the object store away."""

    def __init__(self, *args: Any, failures: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures = failures

    def persist(self, batch_name: str, keys: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise ObjectStoreError("object store away")
        super().persist(batch_name, keys)


def test_an_object_store_away_at_commit_time_delays_the_commit_and_the_consumer_carries_on() -> (
    None
):
    store = get_store()
    store.create_bucket(bucket("state"))
    key, value, headers = to_kafka(event_from_sample("order-completed"))
    consumer = ScriptedConsumer([[Record(TP.topic, 0, 7, key, value, tuple(headers), 0)]])
    stop = threading.Event()
    function = LoadedFunction(
        "record_ids", "tests:record_ids", lambda ce: None, "cloudevent", False
    )
    seen = FlakySeenLog(store, bucket("state"), "f", failures=2)
    worker = KafkaTriggerWorker(
        function="record_order",
        group="g",
        trigger=KafkaTrigger(topic=TP.topic),
        bus=ScriptedBus(consumer),
        invoker=Invoker(function, Delivery(), "kafka", lambda *_: None, stop),
        seen=seen,
        stop=stop,
        commit_interval_s=0,
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not consumer.commits and worker.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = worker.alive
    stop.set()
    worker.join(10)

    assert alive, "a store blip at commit time must not end the consumer"
    assert seen.failures == 0 and consumer.commits[0] == {TP: 8}
    assert list(store.list(bucket("state"), "runtime/seen/f/"))  # the ids, before the commit


# --- records that are not what they claim to be ----------------------------------------------

STOCK = TopicPartition("inventory.stock-reported", 0)


def stock_record(offset: int, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record(STOCK.topic, 0, offset, b"acme:DC-BERLIN-1", value, headers, 0)


def good_stock_value(on_hand: int) -> bytes:
    return json.dumps({**load_sample("stock-reported")["data"], "on_hand": on_hand}).encode()


def run_until_committed(
    records: list[Record], sink: Callable[[str, DeadLetter], None]
) -> tuple[KafkaTriggerWorker, ScriptedConsumer, list[Event[Any]]]:
    """Run a worker whose function parses each event (as every event function does) over one
    poll of ``records``; stop once it committed past the last one."""
    store = get_store()
    store.create_bucket(bucket("state"))
    consumer = ScriptedConsumer([records])
    stop = threading.Event()
    handled: list[Event[Any]] = []
    function = LoadedFunction(
        "parse", "tests:parse", lambda ce: handled.append(parse_event(ce)), "cloudevent", False
    )
    worker = KafkaTriggerWorker(
        function="parse",
        group="g",
        trigger=KafkaTrigger(topic=STOCK.topic),
        bus=ScriptedBus(consumer),
        invoker=Invoker(function, Delivery(), "kafka", sink, stop),
        seen=SeenLog(store, bucket("state"), "parse"),
        stop=stop,
        commit_interval_s=0,
    )
    worker.start()
    end = {STOCK: records[-1].offset + 1}
    deadline = time.monotonic() + 20
    while end not in consumer.commits and worker.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = worker.alive
    stop.set()
    worker.join(10)
    assert alive, "the consumer died on a record"
    assert end in consumer.commits
    return worker, consumer, handled


def test_a_record_of_deeply_nested_brackets_is_dead_lettered_and_the_next_one_is_handled() -> None:
    letters: list[DeadLetter] = []

    _, _, handled = run_until_committed(
        [stock_record(0, b"[" * 200_000), stock_record(1, good_stock_value(5))],
        lambda _id, dl: letters.append(dl),
    )

    assert [e.data.on_hand for e in handled] == [5]
    [letter] = letters
    assert letter.error.type == "InvalidEvent" and not letter.error.retryable
    assert "nested too deeply" in letter.error.message
    assert (letter.event.offset, letter.event.data) == (0, "[" * 200_000)


def test_a_5_mb_record_is_dead_lettered_cut_with_its_size_and_digest_and_the_next_one_handled() -> (
    None
):
    provision(get_bus(), get_store())
    poison = b"x" * 5_000_000
    sink = DeadLetterSink(get_store(), get_bus(), "platform.dead-letter")

    _, _, handled = run_until_committed(
        [stock_record(0, poison), stock_record(1, good_stock_value(6))], sink
    )

    assert [e.data.on_hand for e in handled] == [6]
    [stored] = list(DeadLetterStore(get_store(), bucket("dead-letters")).list())
    kept = stored.dead_letter.event
    assert (kept.data_truncated, kept.data_size) == (True, len(poison))
    assert kept.data_sha256 == hashlib.sha256(poison).hexdigest()
    assert poison.startswith(kept.data.encode()) and len(kept.data) <= MAX_DATA_CHARS
    [announced] = get_bus().read_all("platform.dead-letter")
    assert len(announced.value) < 1024 * 1024, "the dead letter must fit a Kafka record"
    assert json.loads(announced.value)["event"]["data_sha256"] == kept.data_sha256


def test_a_record_with_an_oversized_ce_id_is_dead_lettered_and_the_next_one_handled() -> None:
    letters: list[DeadLetter] = []
    _, value, headers = to_kafka(event_from_sample("stock-reported"))
    huge = tuple((n, b"i" * 100_000 if n == "ce_id" else h) for n, h in headers)

    _, _, handled = run_until_committed(
        [stock_record(0, value, huge), stock_record(1, good_stock_value(7))],
        lambda _id, dl: letters.append(dl),
    )

    assert [e.data.on_hand for e in handled] == [7]
    [letter] = letters
    assert letter.event.id is not None and letter.event.id.startswith("iii")
    assert letter.error.message.startswith("id: ")


def test_a_binary_mode_record_without_ce_id_is_dead_lettered_with_the_reason() -> None:
    letters: list[DeadLetter] = []
    _, value, headers = to_kafka(event_from_sample("stock-reported"))
    no_id = tuple((n, h) for n, h in headers if n != "ce_id")

    _, _, handled = run_until_committed(
        [stock_record(0, value, no_id)], lambda _id, dl: letters.append(dl)
    )

    assert handled == []
    [letter] = letters
    assert letter.error.message == "id: Field required (header ce_id)"
    assert letter.event.id == "partition:0/offset:0"  # stable: a re-delivery is the same letter


def test_a_structured_mode_record_reaches_the_function_as_its_own_event() -> None:
    sent = event_from_sample("stock-reported")
    record = stock_record(
        0, json.dumps(sent.to_dict()).encode(), (("content-type", b"application/cloudevents+json"),)
    )

    _, _, handled = run_until_committed([record], lambda *_: None)

    assert [(e.source, e.id, e.data) for e in handled] == [(sent.source, sent.id, sent.data)]


def test_a_dead_letter_that_cannot_be_written_stops_the_trigger_leaving_the_record_uncommitted() -> (
    None
):
    def sink_down(_id: str, _dl: DeadLetter) -> None:
        raise BusUnavailable("dead-letter topic away")

    store = get_store()
    store.create_bucket(bucket("state"))
    consumer = ScriptedConsumer([[stock_record(0, b"not json"), stock_record(1, b"{}")]])
    stop = threading.Event()
    function = LoadedFunction("parse", "tests:parse", parse_event, "cloudevent", False)
    worker = KafkaTriggerWorker(
        function="parse",
        group="g",
        trigger=KafkaTrigger(topic=STOCK.topic),
        bus=ScriptedBus(consumer),
        invoker=Invoker(function, Delivery(), "kafka", sink_down, stop),
        seen=SeenLog(store, bucket("state"), "parse"),
        stop=stop,
        commit_interval_s=0,
    )
    worker.start()
    worker.join(10)

    assert not worker.alive, "a trigger that cannot dead-letter must say so (/readyz 503)"
    assert not [c for c in consumer.commits if c], "the record must be read again after restart"
    assert consumer.closed
