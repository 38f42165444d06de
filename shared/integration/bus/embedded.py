"""The embedded event bus: a partitioned, append-only log in a local folder.

Layout under ``root``::

    topics/<topic>/meta.json       partitions and config
    topics/<topic>/<p>.log         records of partition p, offset = position in the file
    groups/<group>.json            committed offsets {topic: {partition: next offset}}

A record on disk is ``>II`` (body length, crc32 of body) then the body: ``>qiIH`` (timestamp ms,
key length or -1, value length, header count), key, value, then per header ``>HI`` name, value.

Durability: ``publish`` and ``publish_many`` return after ``fdatasync`` of the partition file
covering their records, the embedded equivalent of acks=all; pass ``fsync=False`` to trade that
for speed (data then only reaches the OS page cache). Topic configs (retention, compaction) are
kept for information but not enforced: the log only grows.

Appends are serialised per partition by a thread lock (within a process) and ``flock`` on the log
file itself (between processes). Concurrent publishers in one process commit as a group: the
first to arrive at a partition becomes the leader, takes every batch queued there, appends them
in one write and syncs once; the others wait for that sync and get their offsets from it.

Consumer groups are coordinated between members in one process (range assignment, rebalanced
on join and close). Members of one group in different processes do not coordinate; scale-out
across processes is Kafka's job. Committed offsets are on disk and shared by every process.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from filelock import FileLock
from kafka.partitioner.default import murmur2

from shared.integration.bus.port import (
    BusError,
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

_PREFIX = struct.Struct(">II")
_BODY = struct.Struct(">qiIH")
_HEADER = struct.Struct(">HI")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Other processes' appends are noticed by polling the file size this often while a poll waits.
_CROSS_PROCESS_POLL_S = 0.05


def partition_for_key(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner: the same key maps to the same partition number as on Kafka."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def _key_bytes(key: bytes | str | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def _encode(key: bytes | None, value: bytes, headers: Headers, ts_ms: int) -> bytes:
    parts = [_BODY.pack(ts_ms, -1 if key is None else len(key), len(value), len(headers))]
    if key:
        parts.append(key)
    parts.append(value)
    for name, hvalue in headers:
        raw = name.encode()
        parts += (_HEADER.pack(len(raw), len(hvalue)), raw, hvalue)
    body = b"".join(parts)
    return _PREFIX.pack(len(body), zlib.crc32(body)) + body


def _decode(topic: str, partition: int, offset: int, buf: bytes | memoryview, pos: int) -> Record:
    pos += _PREFIX.size
    ts, klen, vlen, nh = _BODY.unpack_from(buf, pos)
    pos += _BODY.size
    key = None
    if klen >= 0:
        key = bytes(buf[pos : pos + klen])
        pos += klen
    value = bytes(buf[pos : pos + vlen])
    pos += vlen
    headers: tuple[tuple[str, bytes], ...] = ()
    if nh:
        hs = []
        for _ in range(nh):
            nlen, hlen = _HEADER.unpack_from(buf, pos)
            pos += _HEADER.size
            name = bytes(buf[pos : pos + nlen]).decode()
            pos += nlen
            hs.append((name, bytes(buf[pos : pos + hlen])))
            pos += hlen
        headers = tuple(hs)
    return Record(topic, partition, offset, key, value, headers, ts)


class _Pending:
    """One publisher's records for one partition, waiting for a group commit."""

    __slots__ = ("base", "encoded", "error", "fsync")

    def __init__(self, encoded: Sequence[bytes], fsync: bool) -> None:
        self.encoded = encoded
        self.fsync = fsync
        self.base: int | None = None  # offset of the first record, once durable
        self.error: BaseException | None = None

    def offset(self) -> int:
        """The offset of the first record; only once appended."""
        assert self.base is not None
        return self.base


class _Partition:
    """One partition's file and its in-memory offset -> position index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()  # in-process writers and index refreshes
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.positions = array("q")  # start of each record
        self.end = 0  # end of the last complete record indexed
        # Group commit: batches waiting to be appended, and whether a leader is appending.
        self.queue = threading.Condition(threading.Lock())
        self.pending: list[_Pending] = []
        self.leading = False

    def _scan(self, truncate_torn_tail: bool) -> None:
        size = os.fstat(self.fd).st_size
        if size <= self.end:
            return
        buf = os.pread(self.fd, size - self.end, self.end)
        pos, base = 0, self.end
        while pos + _PREFIX.size <= len(buf):
            length, crc = _PREFIX.unpack_from(buf, pos)
            stop = pos + _PREFIX.size + length
            # An incomplete or not-yet-visible record: another process may be writing it.
            if stop > len(buf) or zlib.crc32(buf[pos + _PREFIX.size : stop]) != crc:
                break
            self.positions.append(base + pos)
            pos = stop
        self.end = base + pos
        if truncate_torn_tail and self.end < size:
            # Only called under flock: no one is writing, so the tail is from a crash.
            os.ftruncate(self.fd, self.end)

    def refresh(self) -> int:
        """Index records appended by other processes; return the log end offset."""
        with self.lock:
            self._scan(truncate_torn_tail=False)
            return len(self.positions)

    def enqueue(self, encoded: Sequence[bytes], fsync: bool) -> _Pending:
        """Queue records for the next group commit; :meth:`wait` for their offsets."""
        entry = _Pending(encoded, fsync)
        with self.queue:
            self.pending.append(entry)
        return entry

    def wait(self, entry: _Pending) -> int:
        """Return the offset of ``entry``'s first record once it is appended (and synced).

        Leads the commit if no one else is: then appends every queued batch, its own included.
        """
        with self.queue:
            while entry.base is None and entry.error is None:
                if not self.leading:
                    self.leading = True
                    batch, self.pending = self.pending, []
                    break
                self.queue.wait()
            else:
                if entry.error is not None:
                    raise BusError(f"cannot append to {self.path}: {entry.error}") from entry.error
                return entry.offset()
        try:
            self._commit(batch)
        except BaseException as e:
            for other in batch:
                if other.base is None:
                    other.error = e
            raise
        finally:
            with self.queue:
                self.leading = False
                self.queue.notify_all()
        return entry.offset()

    def append(self, encoded: Sequence[bytes], fsync: bool) -> int:
        """Append records; return the offset of the first one."""
        return self.wait(self.enqueue(encoded, fsync))

    def _commit(self, batch: Sequence[_Pending]) -> None:
        """Append the batches in one write and at most one sync; set each one's base offset."""
        with self.lock:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                self._scan(truncate_torn_tail=True)
                data = b"".join(rec for entry in batch for rec in entry.encoded)
                view = memoryview(data)
                written = 0
                while written < len(data):
                    written += os.write(self.fd, view[written:])
                if any(entry.fsync for entry in batch):
                    os.fdatasync(self.fd)
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            pos = self.end
            for entry in batch:
                entry.base = len(self.positions)
                for rec in entry.encoded:
                    self.positions.append(pos)
                    pos += len(rec)
            self.end = pos

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        with self.lock:
            if offset >= len(self.positions):
                self._scan(truncate_torn_tail=False)
            count = min(max_records, len(self.positions) - offset)
            if count <= 0:
                return []
            start = self.positions[offset]
            stop = (
                self.positions[offset + count] if offset + count < len(self.positions) else self.end
            )
        buf = os.pread(self.fd, stop - start, start)
        view = memoryview(buf)
        return [
            _decode(topic, partition, offset + i, view, self.positions[offset + i] - start)
            for i in range(count)
        ]

    def close(self) -> None:
        os.close(self.fd)

    def reopen_after_fork(self) -> None:
        """In a forked child: a descriptor of our own, since ``flock`` belongs to the open file
        description, which a child shares with its parent; and fresh locks (a parent's thread
        may have held one at the fork)."""
        inherited, self.fd = (
            self.fd,
            os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644),
        )
        os.close(inherited)
        self.lock = threading.Lock()
        self.queue = threading.Condition(threading.Lock())
        self.pending = []
        self.leading = False


class _Topic:
    def __init__(self, name: str, folder: Path, partitions: int) -> None:
        self.name = name
        self.parts = [_Partition(folder / f"{p}.log") for p in range(partitions)]
        self.round_robin = itertools.count()


class _Member:
    def __init__(self, topics: Sequence[str], start: StartPosition) -> None:
        self.topics = tuple(topics)
        self.start = start
        self.assigned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.generation = 0


class _State:
    """In-process state shared by every EmbeddedBus handle on one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.refs = 0
        self.lock = threading.RLock()  # topics and groups
        self.published = threading.Condition(threading.Lock())
        self.seq = 0
        self.topics: dict[str, _Topic] = {}
        self.groups: dict[str, list[_Member]] = {}
        self.member_ids = itertools.count()

    def close(self) -> None:
        for topic in self.topics.values():
            for part in topic.parts:
                part.close()
        self.topics.clear()


_states: dict[Path, _State] = {}
_states_lock = threading.Lock()


def _reopen_after_fork() -> None:
    for state in list(_states.values()):
        for topic in list(state.topics.values()):
            for part in topic.parts:
                part.reopen_after_fork()


os.register_at_fork(after_in_child=_reopen_after_fork)


class EmbeddedBus(EventBus):
    """The zero-setup event bus: see the module docstring for layout and guarantees."""

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync
        (self.root / "topics").mkdir(parents=True, exist_ok=True)
        (self.root / "groups").mkdir(parents=True, exist_ok=True)
        with _states_lock:
            self._state = _states.get(self.root) or _states.setdefault(self.root, _State(self.root))
            self._state.refs += 1
        self._closed = False

    # -- topics

    def _topic_dir(self, name: str) -> Path:
        return self.root / "topics" / name

    def _topic(self, name: str) -> _Topic:
        state = self._state
        topic = state.topics.get(name)
        if topic is not None:
            return topic
        with state.lock:
            if name in state.topics:
                return state.topics[name]
            if not _TOPIC_NAME.match(name):
                raise UnknownTopic(name)
            meta = self._topic_dir(name) / "meta.json"
            try:
                partitions = json.loads(meta.read_text())["partitions"]
            except FileNotFoundError:
                raise UnknownTopic(name) from None
            topic = state.topics[name] = _Topic(name, meta.parent, partitions)
            return topic

    def create_topics(self, specs: Iterable[TopicSpec]) -> list[str]:
        created = []
        for spec in specs:
            if not _TOPIC_NAME.match(spec.name):
                raise BusError(f"invalid topic name {spec.name!r}")
            if spec.partitions < 1:
                raise BusError(f"topic {spec.name!r} needs at least one partition")
            folder = self._topic_dir(spec.name)
            folder.mkdir(parents=True, exist_ok=True)
            with FileLock(str(folder / "meta.lock")):
                meta = folder / "meta.json"
                if meta.exists():
                    continue
                tmp = folder / "meta.json.tmp"
                tmp.write_text(
                    json.dumps({"partitions": spec.partitions, "config": dict(spec.config)})
                )
                os.replace(tmp, meta)
            created.append(spec.name)
        return created

    def list_topics(self) -> dict[str, int]:
        topics = {}
        for meta in (self.root / "topics").glob("*/meta.json"):
            topics[meta.parent.name] = json.loads(meta.read_text())["partitions"]
        return dict(sorted(topics.items()))

    def partitions(self, topic: str) -> int:
        return len(self._topic(topic).parts)

    def _meta_path(self, topic: str) -> Path:
        path = self.root / "topics" / topic / "meta.json"
        if not path.exists():
            raise UnknownTopic(topic)
        return path

    def _rewrite_meta(self, topic: str, change: Callable[[dict[str, Any]], None]) -> None:
        meta = self._meta_path(topic)
        with FileLock(str(meta.parent / "meta.lock")):
            data = json.loads(meta.read_text())
            change(data)
            tmp = meta.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, meta)

    def topic_configs(self, topic: str, keys: Sequence[str]) -> dict[str, str]:
        config = json.loads(self._meta_path(topic).read_text()).get("config", {})
        return {k: str(config[k]) for k in keys if k in config}

    def add_partitions(self, topic: str, total: int) -> None:
        # Processes that have the topic open keep their partition count until they restart,
        # as Kafka clients do until their metadata refreshes.
        def grow(data: dict[str, Any]) -> None:
            if total < data["partitions"]:
                raise BusError(
                    f"{topic!r} has {data['partitions']} partitions; a topic never "
                    f"shrinks to {total}"
                )
            data["partitions"] = total

        self._rewrite_meta(topic, grow)

    def alter_topic_configs(self, topic: str, config: Mapping[str, str]) -> None:
        self._rewrite_meta(topic, lambda d: d.setdefault("config", {}).update(config))

    # -- publishing

    def _partition_for(self, topic: _Topic, key: bytes | None) -> int:
        if key is None:
            return next(topic.round_robin) % len(topic.parts)
        return partition_for_key(key, len(topic.parts))

    def _notify(self) -> None:
        with self._state.published:
            self._state.seq += 1
            self._state.published.notify_all()

    def publish_many(
        self,
        topic: str,
        records: Iterable[tuple[bytes | str | None, bytes, Headers]],
        *,
        timeout_s: float = 30.0,
    ) -> list[RecordMetadata]:
        t = self._topic(topic)
        now = time.time_ns() // 1_000_000
        by_partition: dict[int, list[bytes]] = {}
        order: list[tuple[int, int]] = []  # (partition, index within that partition's batch)
        for key, value, headers in records:
            k = _key_bytes(key)
            p = self._partition_for(t, k)
            batch = by_partition.setdefault(p, [])
            order.append((p, len(batch)))
            batch.append(_encode(k, value, headers, now))
        # Queue on every partition first, so that their group commits can overlap.
        entries = {p: t.parts[p].enqueue(batch, self.fsync) for p, batch in by_partition.items()}
        bases: dict[int, int] = {}
        failure: BaseException | None = None
        for p, entry in entries.items():
            try:  # wait for every partition even after a failure: none is left queued
                bases[p] = t.parts[p].wait(entry)
            except (OSError, BusError) as e:
                failure = failure or e
        if failure is not None:
            if isinstance(failure, BusError):
                raise failure
            raise BusError(f"cannot append to {topic!r}: {failure}") from failure
        self._notify()
        return [RecordMetadata(topic, p, bases[p] + i) for p, i in order]

    # -- reading

    def _end_offset(self, tp: TopicPartition) -> int:
        return self._topic(tp.topic).parts[tp.partition].refresh()

    def _read(self, tp: TopicPartition, offset: int, max_records: int) -> list[Record]:
        return (
            self._topic(tp.topic)
            .parts[tp.partition]
            .read(tp.topic, tp.partition, offset, max_records)
        )

    def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Record]:
        out: list[Record] = []
        for p, part in enumerate(self._topic(topic).parts):
            offset = 0
            while batch := part.read(topic, p, offset, 10_000):
                out += batch
                offset += len(batch)
        return out

    # -- consumer groups

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        start: StartPosition = "earliest",
        client_id: str | None = None,
    ) -> Consumer:
        for name in topics:
            self._topic(name)
        return _EmbeddedConsumer(self, group_id, topics, start)

    def _offsets_path(self, group_id: str) -> Path:
        return self.root / "groups" / f"{quote(group_id, safe='')}.json"

    def _load_committed(self, group_id: str) -> dict[str, dict[str, int]]:
        try:
            committed: dict[str, dict[str, int]] = json.loads(
                self._offsets_path(group_id).read_text()
            )
        except FileNotFoundError:
            return {}
        return committed

    def _commit(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        path = self._offsets_path(group_id)
        # Read-modify-write under a lock: members in other processes may commit other partitions.
        with FileLock(str(path.with_suffix(".lock"))):
            data = self._load_committed(group_id)
            for tp, offset in offsets.items():
                data.setdefault(tp.topic, {})[str(tp.partition)] = int(offset)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as f:
                json.dump(data, f)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)

    def _rebalance(self, group_id: str) -> None:
        """Range-assign every subscribed partition among the group's members (under state.lock)."""
        members = self._state.groups.get(group_id, [])
        wanted: dict[int, set[TopicPartition]] = {id(m): set() for m in members}
        for name in sorted({t for m in members for t in m.topics}):
            subscribers = [m for m in members if name in m.topics]
            n = len(self._topic(name).parts)
            share, extra = divmod(n, len(subscribers))
            p = 0
            for i, m in enumerate(subscribers):
                count = share + (1 if i < extra else 0)
                wanted[id(m)].update(TopicPartition(name, q) for q in range(p, p + count))
                p += count
        committed = self._load_committed(group_id) if members else {}
        for m in members:
            new = wanted[id(m)]
            if new == m.assigned:
                continue
            for tp in new - m.assigned:
                c = committed.get(tp.topic, {}).get(str(tp.partition))
                if c is None:
                    c = 0 if m.start == "earliest" else self._end_offset(tp)
                m.positions[tp] = c
            for tp in m.assigned - new:
                m.positions.pop(tp, None)
            m.assigned = new
            m.generation += 1

    def _join(self, group_id: str, member: _Member) -> None:
        with self._state.lock:
            self._state.groups.setdefault(group_id, []).append(member)
            self._rebalance(group_id)

    def _leave(self, group_id: str, member: _Member) -> None:
        with self._state.lock:
            members = self._state.groups.get(group_id, [])
            if member in members:
                members.remove(member)
            if not members:
                self._state.groups.pop(group_id, None)
            self._rebalance(group_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _states_lock:
            self._state.refs -= 1
            if self._state.refs == 0:
                _states.pop(self.root, None)
                self._state.close()


class _EmbeddedConsumer(Consumer):
    def __init__(
        self, bus: EmbeddedBus, group_id: str, topics: Sequence[str], start: StartPosition
    ) -> None:
        self._bus = bus
        self._state = bus._state
        self._group = group_id
        self._member = _Member(topics, start)
        self._turn = 0
        self._closed = False
        bus._join(group_id, self._member)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("consumer is closed")

    def _fetch(self, max_records: int) -> list[Record]:
        m = self._member
        while True:
            with self._state.lock:
                generation = m.generation
                plan = sorted(m.positions.items())
            if not plan:
                return []
            # Rotate the starting partition so one busy partition does not starve the others.
            self._turn = (self._turn + 1) % len(plan)
            plan = plan[self._turn :] + plan[: self._turn]
            out: list[Record] = []
            for tp, offset in plan:
                if len(out) >= max_records:
                    break
                out += self._bus._read(tp, offset, max_records - len(out))
            with self._state.lock:
                if m.generation != generation:
                    continue  # a rebalance moved partitions while we read: read again
                for r in out:
                    m.positions[r.tp] = r.offset + 1
                return out

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        self._check_open()
        deadline = time.monotonic() + max(timeout_s, 0.0)
        cond = self._state.published
        while True:
            with cond:
                seq = self._state.seq
            records = self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            with cond:
                if self._state.seq == seq:
                    cond.wait(min(remaining, _CROSS_PROCESS_POLL_S))

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check_open()
        if offsets is None:
            with self._state.lock:
                offsets = dict(self._member.positions)
        if offsets:
            self._bus._commit(self._group, {TopicPartition(*tp): o for tp, o in offsets.items()})

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._check_open()
        tp = TopicPartition(*tp)
        if offset < 0:
            raise ValueError("offset must be >= 0")
        with self._state.lock:
            if tp not in self._member.assigned:
                raise BusError(f"{tp} is not assigned to this consumer")
            self._member.positions[tp] = offset
            self._member.generation += 1

    def committed(self, tp: TopicPartition) -> int | None:
        return self._bus._load_committed(self._group).get(tp.topic, {}).get(str(tp.partition))

    def assignment(self) -> set[TopicPartition]:
        with self._state.lock:
            return set(self._member.assigned)

    def lag(self) -> dict[TopicPartition, int]:
        with self._state.lock:
            positions = dict(self._member.positions)
        return {tp: max(self._bus._end_offset(tp) - pos, 0) for tp, pos in positions.items()}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._leave(self._group, self._member)
