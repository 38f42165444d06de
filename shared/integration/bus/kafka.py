"""The Kafka event bus over ``kafka-python``: any Kafka, IBM Event Streams with SASL_SSL PLAIN.

Publishing to a topic that does not exist raises :class:`UnknownTopic` before anything is sent,
although brokers with auto-creation on (Tansu, Kafka's default) would create it: topics are made
from the catalog with the intended partitions and configs, never by accident.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from shared.integration.bus.port import (
    BusError,
    BusUnavailable,
    Consumer,
    EventBus,
    Headers,
    Record,
    RecordMetadata,
    StartPosition,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)

log = logging.getLogger(__name__)

_INIT_PRODUCER_ID = 22  # the API an idempotent producer needs from the broker


def _key_bytes(key: bytes | str | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def _to_record(r: Any) -> Record:
    return Record(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value if r.value is not None else b"",
        # kafka-python's headers are already (str, bytes) pairs; copying them in C is a large
        # part of the consume path's cost, so a null header value stays None (see Record).
        headers=tuple(r.headers) if r.headers else (),
        timestamp_ms=r.timestamp or 0,
    )


class KafkaBus(EventBus):
    """The port over kafka-python. Connections are opened lazily, on first use."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str = "PLAIN",
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        ssl_cafile: str | None = None,
        client_id: str = "retailfn",
        enable_idempotence: bool | None = None,
        linger_ms: int = 5,
        batch_size: int = 256 * 1024,
        max_poll_interval_ms: int = 300_000,
        session_timeout_ms: int = 45_000,
        heartbeat_interval_ms: int = 3_000,
        fetch_max_wait_ms: int = 500,
        request_timeout_ms: int = 30_000,
        connect_timeout_ms: int = 10_000,
    ) -> None:
        """``enable_idempotence=None`` probes the broker and turns idempotence on if it can.

        ``connect_timeout_ms`` bounds the wait for a broker: the bootstrap of every client
        (``bootstrap_timeout_ms``) and the producer's wait for a topic's metadata in ``send``
        (``max_block_ms``), so that an unreachable broker fails a publish with
        :class:`BusUnavailable` after about that long rather than kafka-python's 30 to 60 s.

        The group timeouts default to Kafka's. Tansu holds every group join for about half the
        session timeout (22 s with the default), so tests pass ``session_timeout_ms=2000,
        heartbeat_interval_ms=400`` for joins of about 1 s.
        """
        servers = (
            bootstrap_servers.split(",")
            if isinstance(bootstrap_servers, str)
            else list(bootstrap_servers)
        )
        self._common: dict[str, Any] = {
            "bootstrap_servers": servers,
            "security_protocol": security_protocol,
            "client_id": client_id,
            "request_timeout_ms": request_timeout_ms,
            "bootstrap_timeout_ms": connect_timeout_ms,
        }
        if security_protocol.startswith("SASL"):
            self._common.update(
                sasl_mechanism=sasl_mechanism,
                sasl_plain_username=sasl_username,
                sasl_plain_password=sasl_password,
            )
        if ssl_cafile:
            self._common["ssl_cafile"] = ssl_cafile
        self._enable_idempotence = enable_idempotence
        self._producer_config = {
            "linger_ms": linger_ms,
            "batch_size": batch_size,
            "max_block_ms": connect_timeout_ms,
        }
        self._consumer_config = {
            "max_poll_interval_ms": max_poll_interval_ms,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "fetch_max_wait_ms": fetch_max_wait_ms,
        }
        self._lock = threading.Lock()
        # KafkaAdminClient is not thread-safe: concurrent calls fail with NodeNotReadyError.
        self._admin_lock = threading.RLock()
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._partitions: dict[str, int] = {}
        self.idempotent: bool | None = None

    # -- clients

    def _admin_client(self) -> KafkaAdminClient:
        with self._lock:
            if self._admin is None:
                try:
                    self._admin = KafkaAdminClient(**self._common)
                except KafkaError as e:
                    raise BusUnavailable(f"cannot reach Kafka: {e}") from e
            return self._admin

    def _broker_supports_idempotence(self) -> bool:
        try:
            admin = self._admin_client()
            with self._admin_lock:
                return _INIT_PRODUCER_ID in {int(k) for k in admin.api_versions()}
        except (KafkaError, AttributeError) as e:
            log.warning("could not probe the broker's API versions (%s); idempotence off", e)
            return False

    def _producer_client(self) -> KafkaProducer:
        if self._producer is not None:
            return self._producer
        idempotent = self._enable_idempotence
        if idempotent is None:
            idempotent = self._broker_supports_idempotence()
        config = dict(
            self._common, **self._producer_config, acks="all", allow_auto_create_topics=False
        )
        if idempotent:
            config.update(enable_idempotence=True)
        else:
            # Without idempotence, one request in flight keeps retries from reordering records.
            config.update(
                enable_idempotence=False, retries=5, max_in_flight_requests_per_connection=1
            )
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(**config)
                except KafkaError as e:
                    raise BusUnavailable(f"cannot reach Kafka: {e}") from e
                self.idempotent = idempotent
                log.info("kafka producer ready (idempotent=%s)", idempotent)
            return self._producer

    # -- topics

    def create_topics(self, specs: Iterable[TopicSpec]) -> list[str]:
        specs = list(specs)
        existing = self.list_topics()
        new = [s for s in specs if s.name not in existing]
        created = []
        admin = self._admin_client()
        for spec in new:
            topic = NewTopic(spec.name, spec.partitions, 1, topic_configs=dict(spec.config))
            try:
                with self._admin_lock:
                    admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # created meanwhile by another process
            except KafkaError as e:
                raise BusUnavailable(f"cannot create topic {spec.name!r}: {e}") from e
        return created

    def list_topics(self) -> dict[str, int]:
        admin = self._admin_client()
        try:
            with self._admin_lock:
                names = [n for n in admin.list_topics() if not n.startswith("__")]
                described = admin.describe_topics(names) if names else []
        except KafkaError as e:
            raise BusUnavailable(f"cannot list topics: {e}") from e
        topics = {t["name"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        self._partitions.update(topics)
        return dict(sorted(topics.items()))

    def topic_configs(self, topic: str, keys: Sequence[str]) -> dict[str, str]:
        try:
            with self._admin_lock:
                described = self._admin_client().describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict.fromkeys(keys))],
                    config_filter="all",
                )
        except (KafkaError, ValueError, TypeError):
            return {}  # a broker without DescribeConfigs (Tansu): configs are not reported
        entries = (described or {}).get("topic", {}).get(topic, {}) or {}
        out = {}
        for key in keys:
            entry = entries.get(key)
            value = entry.get("value") if isinstance(entry, dict) else entry
            if value is not None:
                out[key] = str(value)
        return out

    def add_partitions(self, topic: str, total: int) -> None:
        try:
            with self._admin_lock:
                self._admin_client().create_partitions({topic: NewPartitions(total)})
        except KafkaError as exc:
            raise BusError(f"cannot add partitions to {topic!r}: {exc}") from exc
        self._partitions.pop(topic, None)

    def alter_topic_configs(self, topic: str, config: Mapping[str, str]) -> None:
        try:
            with self._admin_lock:
                self._admin_client().alter_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(config))]
                )
        except (KafkaError, ValueError) as exc:
            raise BusError(f"cannot change the configs of {topic!r}: {exc}") from exc

    def _require_topic(self, topic: str) -> None:
        if topic in self._partitions:
            return
        with self._admin_lock:  # concurrent first publishes to a topic ask the broker once
            if topic not in self._partitions and topic not in self.list_topics():
                raise UnknownTopic(topic)

    # -- publishing

    def publish_many(
        self,
        topic: str,
        records: Iterable[tuple[bytes | str | None, bytes, Headers]],
        *,
        timeout_s: float = 30.0,
    ) -> list[RecordMetadata]:
        self._require_topic(topic)
        producer = self._producer_client()
        deadline = time.monotonic() + timeout_s
        try:
            futures = [
                producer.send(topic, value=v, key=_key_bytes(k), headers=list(h) or None)
                for k, v, h in records
            ]
            producer.flush(timeout=max(deadline - time.monotonic(), 0.001))
            out = []
            for f in futures:
                md = f.get(timeout=max(deadline - time.monotonic(), 0.001))
                out.append(RecordMetadata(md.topic, md.partition, md.offset))
            return out
        except KafkaError as e:  # KafkaTimeoutError is a KafkaError
            raise BusUnavailable(f"publish to {topic!r} failed: {e}") from e

    # -- reading

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        start: StartPosition = "earliest",
        client_id: str | None = None,
    ) -> Consumer:
        for topic in topics:
            self._require_topic(topic)
        config = dict(self._common, **self._consumer_config)
        if client_id:
            config["client_id"] = client_id
        try:
            consumer = KafkaConsumer(
                *topics,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset=start,
                allow_auto_create_topics=False,
                **config,
            )
        except KafkaError as e:
            raise BusUnavailable(f"cannot join group {group_id!r}: {e}") from e
        return _KafkaConsumer(consumer)

    def read_all(self, topic: str, timeout_s: float = 5.0, quiet_s: float = 0.5) -> list[Record]:
        """Read until no record arrived for ``quiet_s`` (or ``timeout_s`` passed)."""
        self._require_topic(topic)
        consumer = KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            **dict(self._common, fetch_max_wait_ms=100),
        )
        try:
            tps = [KafkaTopicPartition(topic, p) for p in range(self._partitions[topic])]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            by_partition: dict[int, list[Record]] = {tp.partition: [] for tp in tps}
            deadline = time.monotonic() + timeout_s
            last = time.monotonic()
            while (now := time.monotonic()) < deadline and now - last < quiet_s:
                batches = consumer.poll(timeout_ms=100, max_records=10_000)
                for tp, rs in batches.items():
                    by_partition[tp.partition] += map(_to_record, rs)
                    last = time.monotonic()
        except KafkaError as e:
            raise BusUnavailable(f"cannot read {topic!r}: {e}") from e
        finally:
            consumer.close(autocommit=False)
        return [r for p in sorted(by_partition) for r in by_partition[p]]

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None
            if self._admin is not None:
                self._admin.close()
                self._admin = None


class _KafkaConsumer(Consumer):
    def __init__(self, consumer: KafkaConsumer) -> None:
        self._c = consumer

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        try:
            batches = self._c.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as e:
            raise BusUnavailable(f"poll failed: {e}") from e
        return [_to_record(r) for rs in batches.values() for r in rs]

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        try:
            if offsets is None:
                self._c.commit()
            else:
                self._c.commit(
                    {
                        KafkaTopicPartition(*tp): OffsetAndMetadata(o, "", -1)
                        for tp, o in offsets.items()
                    }
                )
        except KafkaError as e:
            raise BusUnavailable(f"commit failed: {e}") from e

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError("offset must be >= 0")
        ktp = KafkaTopicPartition(*tp)
        if ktp not in self._c.assignment():
            raise BusError(f"{tp} is not assigned to this consumer")
        self._c.seek(ktp, offset)

    def committed(self, tp: TopicPartition) -> int | None:
        try:
            offset: int | None = self._c.committed(KafkaTopicPartition(*tp))
        except KafkaError as e:
            raise BusUnavailable(f"cannot read committed offset: {e}") from e
        return offset

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._c.assignment()}

    def lag(self) -> dict[TopicPartition, int]:
        # The high watermark comes with each fetch response; no extra request is made.
        out: dict[TopicPartition, int] = {}
        for tp in self._c.assignment():
            high = self._c.highwater(tp)
            if high is None:
                continue
            try:
                position = self._c.position(tp, timeout_ms=0)
            except KafkaError:
                continue
            if position is not None:
                out[TopicPartition(tp.topic, tp.partition)] = max(high - position, 0)
        return out

    def close(self) -> None:
        self._c.close(autocommit=False)
