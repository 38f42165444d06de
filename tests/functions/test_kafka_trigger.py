"""The Kafka trigger's own behaviour around a consumer that misbehaves (a scripted consumer stands
in for the broker; the bus adapters themselves are covered by the contract suite)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from events.envelope import event_from_sample, to_kafka
from shared.adapters import bucket, get_store
from shared.bus.port import BusUnavailable, Consumer, Record, TopicPartition
from shared.config import Delivery, KafkaTrigger
from shared.runtime.dedup import SeenLog
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
    function = LoadedFunction("record_ids", "tests:record_ids",
                              lambda ce: handled.append(ce["id"]), "cloudevent", False)
    invoker = Invoker(function, Delivery(), "kafka", lambda *_: None, stop)
    worker = KafkaTriggerWorker(function="record_order", group="g",
                                trigger=KafkaTrigger(topic=TP.topic), bus=ScriptedBus(consumer),
                                invoker=invoker, seen=SeenLog(store, bucket("state"), "f"),
                                stop=stop, commit_interval_s=0)
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
