"""The event archive: every topic's records in object storage, the service's historical data.

Layout (that of Kafka Connect's object-storage sinks, so the usual tools read it)::

    events/{topic}/date=YYYY-MM-DD/hour=HH/{topic}+{partition}+{startOffset:010d}.ndjson.gz

A file holds consecutive records of one partition from one hour of record time, at most
``max_records`` of them. Its name comes from its first record, and its bytes from its records only
(gzip without a timestamp), so a batch delivered again rewrites the same object with the same
ETag: nothing is duplicated and nothing downstream fires twice.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from events.platform import BatchRecord, KafkaBatch

PREFIX = "events/"
CONTENT_TYPE = "application/x-ndjson"


@dataclass(frozen=True)
class Segment:
    key: str
    records: list[BatchRecord]


def object_key(topic: str, partition: int, start_offset: int, timestamp_ms: int) -> str:
    when = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return (
        f"{PREFIX}{topic}/date={when:%Y-%m-%d}/hour={when:%H}/"
        f"{topic}+{partition}+{start_offset:010d}.ndjson.gz"
    )


def segments(batch: KafkaBatch, max_records: int) -> Iterator[Segment]:
    """Split a batch where the record hour changes or the file is full."""
    current: list[BatchRecord] = []
    hour = None
    for record in batch.records:
        record_hour = record.timestamp_ms // 3_600_000
        if current and (record_hour != hour or len(current) >= max_records):
            yield _segment(batch, current)
            current = []
        current.append(record)
        hour = record_hour
    if current:
        yield _segment(batch, current)


def _segment(batch: KafkaBatch, records: list[BatchRecord]) -> Segment:
    first = records[0]
    return Segment(
        object_key(batch.topic, batch.partition, first.offset, first.timestamp_ms), records
    )


def archive_line(topic: str, partition: int, record: BatchRecord) -> dict[str, Any]:
    """A record as one JSON line: the structured CloudEvent if it was one, plus where it was."""
    raw = base64.b64decode(record.value) if record.value_encoding == "base64" else record.value
    kafka = {
        "topic": topic,
        "partition": partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": record.key,
    }
    ce = {name[3:]: value for name, value in record.headers.items() if name.startswith("ce_")}
    if "specversion" in ce and isinstance(raw, str):
        if "content-type" in record.headers:
            ce["datacontenttype"] = record.headers["content-type"]
        try:
            ce["data"] = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply: kept as text
            ce["data"] = raw
        return {**ce, "kafka": kafka}
    if isinstance(raw, bytes):
        return {"kafka": kafka, "value_base64": record.value}
    return {"kafka": kafka, "value": raw}


def encode(topic: str, partition: int, records: Iterable[BatchRecord]) -> bytes:
    """gzip'd NDJSON with a fixed header, so the same records give the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        for record in records:
            line = json.dumps(
                archive_line(topic, partition, record), separators=(",", ":"), sort_keys=True
            )
            gz.write(line.encode())
            gz.write(b"\n")
    return buffer.getvalue()


def read_lines(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    """The records of one archive object, streamed."""
    with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
        for line in gz:
            if line.strip():
                yield json.loads(line)
