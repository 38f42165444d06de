"""One contract, two adapters: every test runs on the embedded bus and on Kafka (Tansu).

Topic and group names are unique per test, so the Kafka tests share one session broker.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.partitioner.default import DefaultPartitioner

from shared.integration.bus import (
    BusUnavailable,
    Consumer,
    EventBus,
    Record,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from shared.integration.bus.embedded import EmbeddedBus, partition_for_key
from shared.integration.bus.kafka import KafkaBus
from shared.platform.adapters import event_bus_from_settings
from shared.platform.settings import Settings
from tests.servers import Tansu

PARTITIONS = 3
# Tansu holds a group join for about half the session timeout (6 s -> 3 s, 2 s -> 1 s; the
# library default of 45 s -> 22 s), whatever max_poll_interval_ms is: a short session makes joins
# and rebalances take about 1 s.
KAFKA_TEST_TIMEOUTS = {
    "max_poll_interval_ms": 10_000,
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 400,
}


@pytest.fixture(scope="module")
def kafka_bus(tansu: Tansu) -> Iterator[KafkaBus]:
    bus = KafkaBus(tansu.bootstrap, **KAFKA_TEST_TIMEOUTS)
    yield bus
    bus.close()


@pytest.fixture(params=["embedded", "kafka"])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventBus]:
    if request.param == "kafka":
        yield request.getfixturevalue("kafka_bus")
        return
    embedded = EmbeddedBus(tmp_path / "bus")
    yield embedded
    embedded.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def topic(bus: EventBus) -> str:
    name = unique("t")
    assert bus.create_topics([TopicSpec(name, PARTITIONS, {"retention.ms": "604800000"})]) == [name]
    return name


def publish_numbered(bus: EventBus, topic: str, n: int, prefix: str = "e") -> list[bytes]:
    values = [f"{prefix}{i}".encode() for i in range(n)]
    bus.publish_many(topic, [(f"k{i % 7}", v, ()) for i, v in enumerate(values)])
    return values


def drain(
    consumer: Consumer, n: int, timeout_s: float = 20.0, linger_s: float = 0.3
) -> list[Record]:
    """Poll until ``n`` records came (then a little longer, to catch extras) or time runs out."""
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += consumer.poll(timeout_s=0.2)
    end = time.monotonic() + linger_s
    while time.monotonic() < end:
        out += consumer.poll(timeout_s=0.1)
    return out


def wait_assigned(consumer: Consumer, timeout_s: float = 20.0) -> set[TopicPartition]:
    deadline = time.monotonic() + timeout_s
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_s=0.1)
    # One more poll resolves the starting positions of the new assignment.
    consumer.poll(timeout_s=0.2)
    return consumer.assignment()


def ids(records: list[Record]) -> list[tuple[int, int]]:
    return sorted((r.partition, r.offset) for r in records)


def test_topics_are_created_once_and_listed_with_partition_counts(
    bus: EventBus, topic: str
) -> None:
    assert bus.create_topics([TopicSpec(topic, PARTITIONS)]) == []
    assert bus.list_topics()[topic] == PARTITIONS


def test_published_records_come_back_with_key_value_and_headers(bus: EventBus, topic: str) -> None:
    headers = (("ce-type", b"order.placed"), ("ce-id", b"\x00\x01binary"))
    md = bus.publish(topic, b'{"n": 1}', key="order-1", headers=headers)
    bus.publish(topic, b"no key, no headers")
    bus.publish(topic, b"", key=b"empty-value")

    records = bus.read_all(topic)

    by_value = {r.value: r for r in records}
    assert len(records) == 3
    first = by_value[b'{"n": 1}']
    assert (first.key, first.headers, first.partition, first.offset) == (
        b"order-1",
        headers,
        md.partition,
        md.offset,
    )
    assert first.timestamp_ms > 0
    assert by_value[b"no key, no headers"].key is None
    assert by_value[b"no key, no headers"].headers == ()
    assert by_value[b""].key == b"empty-value"


def test_same_key_same_partition_and_per_key_order_holds(bus: EventBus, topic: str) -> None:
    keys = [f"sku-{i}" for i in range(10)]
    batch = [(k, f"{k}:{seq}".encode(), ()) for seq in range(50) for k in keys]
    metadata = bus.publish_many(topic, batch)
    partition_of: dict[str, set[int]] = defaultdict(set)
    for (k, _, _), md in zip(batch, metadata, strict=True):
        partition_of[k].add(md.partition)
    assert all(len(ps) == 1 for ps in partition_of.values())

    with bus.consumer(unique("g"), [topic]) as consumer:
        records = drain(consumer, len(batch))

    assert len(records) == len(batch)
    seqs: dict[str, list[int]] = defaultdict(list)
    for r in records:
        key, seq = r.value.decode().split(":")
        assert r.key == key.encode() and {r.partition} == partition_of[key]
        seqs[key].append(int(seq))
    assert all(s == list(range(50)) for s in seqs.values())


def test_a_consumer_that_crashes_before_commit_gets_the_same_events_again(
    bus: EventBus, topic: str
) -> None:
    publish_numbered(bus, topic, 20)
    group = unique("g")
    first = bus.consumer(group, [topic])
    seen = drain(first, 20)
    assert len(seen) == 20
    first.close()  # crash: no commit

    with bus.consumer(group, [topic]) as second:
        again = drain(second, 20)
    assert ids(again) == ids(seen)


def test_committed_offsets_are_resumed_by_the_next_member(bus: EventBus, topic: str) -> None:
    publish_numbered(bus, topic, 20, "old")
    group = unique("g")
    with bus.consumer(group, [topic]) as first:
        assert len(drain(first, 20)) == 20
        first.commit()
        committed = {tp: first.committed(tp) for tp in first.assignment()}
    assert sum(o or 0 for o in committed.values()) == 20
    publish_numbered(bus, topic, 5, "new")

    with bus.consumer(group, [topic]) as second:
        records = drain(second, 5)
        assert {tp: second.committed(tp) for tp in committed} == committed
    assert sorted(r.value for r in records) == sorted(f"new{i}".encode() for i in range(5))


def test_commit_of_explicit_offsets_is_what_the_next_member_resumes_from(
    bus: EventBus, topic: str
) -> None:
    md = bus.publish_many(topic, [("same-key", f"v{i}".encode(), ()) for i in range(10)])
    tp = TopicPartition(topic, md[0].partition)
    group = unique("g")
    with bus.consumer(group, [topic]) as first:
        assert len(drain(first, 10)) == 10
        first.commit({tp: 4})
        assert first.committed(tp) == 4
    with bus.consumer(group, [topic]) as second:
        records = drain(second, 6)
    assert [r.offset for r in records] == list(range(4, 10))


def test_a_second_consumer_group_sees_all_events_independently(bus: EventBus, topic: str) -> None:
    values = publish_numbered(bus, topic, 30)
    with bus.consumer(unique("billing"), [topic]) as billing:
        assert sorted(r.value for r in drain(billing, 30)) == sorted(values)
        billing.commit()
    with bus.consumer(unique("analytics"), [topic]) as analytics:
        assert sorted(r.value for r in drain(analytics, 30)) == sorted(values)


def test_seek_rewinds(bus: EventBus, topic: str) -> None:
    md = bus.publish_many(topic, [("one-key", f"v{i}".encode(), ()) for i in range(10)])
    tp = TopicPartition(topic, md[0].partition)
    with bus.consumer(unique("g"), [topic]) as consumer:
        first = drain(consumer, 10)
        assert [r.offset for r in first] == list(range(10))
        consumer.seek(tp, 3)
        again = drain(consumer, 7)
    assert [r.value for r in again] == [f"v{i}".encode() for i in range(3, 10)]


def test_lag_counts_what_a_member_has_not_read_yet(bus: EventBus, topic: str) -> None:
    md = [bus.publish(topic, f"v{i}".encode(), key="one-key") for i in range(10)]
    tp = TopicPartition(topic, md[0].partition)
    with bus.consumer(unique("g"), [topic]) as consumer:
        first = drain(consumer, 10)
        consumer.seek(tp, 4)
        assert len(first) == 10
        assert consumer.lag().get(tp) == 6
        drain(consumer, 6)
        assert consumer.lag().get(tp) == 0


def test_two_members_of_one_group_split_partitions_and_see_every_record_once(
    bus: EventBus, topic: str
) -> None:
    group = unique("g")
    stop = threading.Event()
    seen: dict[str, list[Record]] = {"a": [], "b": []}
    assigned: dict[str, set[TopicPartition]] = {"a": set(), "b": set()}

    # Each member polls in its own thread, as a worker process would: a Kafka member that stops
    # polling while the other joins holds up the rebalance.
    def member(name: str) -> None:
        with bus.consumer(group, [topic], client_id=name) as consumer:
            while not stop.is_set():
                seen[name] += consumer.poll(timeout_s=0.1)
                assigned[name] = consumer.assignment()
                try:
                    consumer.commit()
                except BusUnavailable:
                    pass  # a rebalance in progress: the next poll rejoins

    threads = [threading.Thread(target=member, args=(n,), daemon=True) for n in seen]
    for t in threads:
        t.start()
    all_partitions = {TopicPartition(topic, p) for p in range(PARTITIONS)}
    a: set[TopicPartition] = set()
    b: set[TopicPartition] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        a, b = assigned["a"], assigned["b"]
        if a and b and not (a & b) and (a | b) == all_partitions:
            break
        time.sleep(0.05)
    values = publish_numbered(bus, topic, 60)
    deadline = time.monotonic() + 20
    while len(seen["a"]) + len(seen["b"]) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=15)

    # The split as it was while the records flowed (closing one member rebalances the other).
    assert a and b and not (a & b) and (a | b) == all_partitions
    both = seen["a"] + seen["b"]
    assert sorted(r.value for r in both) == sorted(values)
    assert {r.tp for r in seen["a"]} <= a and {r.tp for r in seen["b"]} <= b


def test_start_latest_skips_old_records(bus: EventBus, topic: str) -> None:
    # One publish per old record: Tansu answers ListOffsets(latest) with the last *batch*'s base
    # offset + 1, so "latest" would land inside a multi-record batch. Single-record batches are exact.
    for i in range(10):
        bus.publish(topic, f"old{i}".encode(), key=f"k{i}")
    with bus.consumer(unique("g"), [topic], start="latest") as consumer:
        assert wait_assigned(consumer)
        publish_numbered(bus, topic, 5, "new")
        records = drain(consumer, 5)
    assert sorted(r.value for r in records) == sorted(f"new{i}".encode() for i in range(5))


def test_publishing_to_an_unknown_topic_raises_unknown_topic(bus: EventBus) -> None:
    """Kafka brokers (Tansu included) auto-create topics on produce; the adapter refuses first."""
    missing = unique("missing")
    with pytest.raises(UnknownTopic):
        bus.publish(missing, b"x", key="k")
    with pytest.raises(UnknownTopic):
        bus.consumer(unique("g"), [missing])
    with pytest.raises(UnknownTopic):
        bus.read_all(missing)
    assert missing not in bus.list_topics()


class _OnePartitionedTopic:
    def __init__(self, partitions: int) -> None:
        self.n = partitions

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.n))

    available_partitions_for_topic = partitions_for_topic


@pytest.mark.parametrize("partitions", [1, 3, 12])
def test_embedded_partition_for_a_key_equals_kafka_default_partitioner(partitions: int) -> None:
    partitioner = DefaultPartitioner()
    cluster = _OnePartitionedTopic(partitions)
    for i in range(500):
        key = f"customer-{i}".encode()
        expected = partitioner.partition("t", key, key, b"", b"", cluster)
        assert partition_for_key(key, partitions) == expected


def test_embedded_and_kafka_put_a_key_on_the_same_partition(
    kafka_bus: KafkaBus, tmp_path: Path
) -> None:
    name = unique("t")
    embedded = EmbeddedBus(tmp_path / "bus")
    try:
        for b in (embedded, kafka_bus):
            b.create_topics([TopicSpec(name, 6)])
        batch = [(f"store-{i}", b"x", ()) for i in range(60)]
        on_kafka = [md.partition for md in kafka_bus.publish_many(name, batch)]
        on_embedded = [md.partition for md in embedded.publish_many(name, batch)]
    finally:
        embedded.close()
    assert on_embedded == on_kafka


def test_event_bus_from_settings_picks_the_adapter(tmp_path: Path, tansu: Tansu) -> None:
    embedded = event_bus_from_settings(Settings(data_dir=tmp_path))
    assert isinstance(embedded, EmbeddedBus) and embedded.root == (tmp_path / "bus").resolve()
    embedded.close()
    kafka = event_bus_from_settings(Settings(bus="kafka", kafka_bootstrap_servers=tansu.bootstrap))
    try:
        assert isinstance(kafka, KafkaBus)
        assert isinstance(kafka.list_topics(), dict)
    finally:
        kafka.close()


def test_concurrent_publishers_lose_nothing_and_keep_their_per_key_order(
    bus: EventBus, topic: str
) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def run(writer: int) -> None:
        try:
            start.wait()
            for i in range(25):
                bus.publish(topic, f"{writer}:{i}".encode(), key=f"k{(writer + i) % 4}")
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    workers = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors, errors
    records = bus.read_all(topic, timeout_s=10)
    values = [r.value.decode() for r in records]
    assert len(values) == len(set(values)) == 8 * 25
    for writer in range(8):
        for key in range(4):
            seq = [
                int(v.split(":")[1])
                for v, r in zip(values, records, strict=True)
                if v.startswith(f"{writer}:") and r.key == f"k{key}".encode()
            ]
            assert seq == sorted(seq) and seq


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_publishing_to_an_unreachable_kafka_fails_fast_with_bus_unavailable() -> None:
    timeout_ms = 2000
    settings = Settings(
        bus="kafka",
        kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}",
        kafka_connect_timeout_ms=timeout_ms,
        kafka_request_timeout_ms=timeout_ms,
    )
    bus = event_bus_from_settings(settings)
    try:
        started = time.monotonic()
        with pytest.raises(BusUnavailable):
            bus.publish("orders", b"x", key="k")
        elapsed = time.monotonic() - started
    finally:
        bus.close()
    # Within the configured wait (plus slack for a loaded machine), not kafka-python's 30-60 s.
    assert elapsed < timeout_ms / 1000 + 3, elapsed
