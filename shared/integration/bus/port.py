"""The event bus port: publish keyed records, consume them in consumer groups.

Two adapters implement it: :class:`shared.integration.bus.embedded.EmbeddedBus` (the zero-setup default: a
partitioned log in a local folder, committed offsets on disk) and :class:`shared.integration.bus.kafka.KafkaBus`
(any Kafka through ``kafka-python``; IBM Event Streams with SASL_SSL PLAIN). The contract suite in
``tests/contract`` runs the same tests against both.

Semantics are Kafka's, so that code written against the embedded bus behaves the same in
production: a key always lands on the same partition (murmur2, as Kafka's default partitioner),
order holds per partition, consumers in one group share partitions, offsets are committed by the
caller after its effect is durable, and a consumer that dies before committing leaves its records
to the next member of the group.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Self

Headers = Sequence[tuple[str, bytes]]
StartPosition = Literal["earliest", "latest"]


class BusError(Exception):
    """Base class of every error the port raises."""


class BusUnavailable(BusError):
    """The bus could not take or serve the request now (broker down, timeout); retry later."""


class UnknownTopic(BusError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"unknown topic {topic!r}")
        self.topic = topic


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    """One record as read from a topic. A named tuple: the consume path builds one per record.

    A header's value is ``None`` when the producer sent a null value (Kafka allows it).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True)
class RecordMetadata:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    """Kafka topic configs, e.g. ``{"cleanup.policy": "compact", "retention.ms": "604800000"}``."""


class Consumer(abc.ABC):
    """One member of a consumer group. Not thread-safe: one thread polls, processes, commits."""

    @abc.abstractmethod
    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        """Records from the assigned partitions, in offset order within each partition."""

    @abc.abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit the next offset to read per partition; ``None`` commits the current positions."""

    @abc.abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on the next poll."""

    @abc.abstractmethod
    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp``, or ``None`` if it never committed."""

    @abc.abstractmethod
    def assignment(self) -> set[TopicPartition]: ...

    @abc.abstractmethod
    def lag(self) -> dict[TopicPartition, int]:
        """Records not yet read per assigned partition, as far as this member knows (cheap: no
        extra broker round trip; a partition not fetched yet is left out)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group without committing; uncommitted records go to the next member."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus(abc.ABC):
    @abc.abstractmethod
    def create_topics(self, specs: Iterable[TopicSpec]) -> list[str]:
        """Create the topics that do not exist yet; return the names that were created."""

    @abc.abstractmethod
    def list_topics(self) -> dict[str, int]:
        """Every topic and its partition count."""

    @abc.abstractmethod
    def topic_configs(self, topic: str, keys: Sequence[str]) -> dict[str, str]:
        """The topic's current values for ``keys``, as far as the bus reports them (a broker
        without DescribeConfigs reports none)."""

    @abc.abstractmethod
    def add_partitions(self, topic: str, total: int) -> None:
        """Grow ``topic`` to ``total`` partitions (never fewer: Kafka cannot shrink a topic)."""

    @abc.abstractmethod
    def alter_topic_configs(self, topic: str, config: Mapping[str, str]) -> None:
        """Set topic configs such as ``retention.ms``."""

    def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | str | None = None,
        headers: Headers = (),
        timeout_s: float = 10.0,
    ) -> RecordMetadata:
        """Append one record and wait until the bus has it durably (acks=all).

        Raise :class:`BusUnavailable` when it cannot: a caller must never report success for a
        write the bus did not take.
        """
        return self.publish_many(topic, [(key, value, headers)], timeout_s=timeout_s)[0]

    @abc.abstractmethod
    def publish_many(
        self,
        topic: str,
        records: Iterable[tuple[bytes | str | None, bytes, Headers]],
        *,
        timeout_s: float = 30.0,
    ) -> list[RecordMetadata]:
        """Append many ``(key, value, headers)`` records; all durable when this returns."""

    @abc.abstractmethod
    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        start: StartPosition = "earliest",
        client_id: str | None = None,
    ) -> Consumer:
        """Join ``group_id`` for ``topics``; ``start`` applies where the group has no commit."""

    @abc.abstractmethod
    def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Record]:
        """Every record currently in ``topic``, partition by partition, without a group.

        For tests, replay and tools (Tansu's high watermark can lag, so count by reading back).
        """

    def close(self) -> None:
        """Flush and release connections."""
