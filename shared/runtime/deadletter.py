"""Dead letters: an event a function could not handle, kept whole so that it can be replayed.

Each dead letter is written twice: as an object in the ``dead-letters`` bucket
(``pending/{function}/{id}.json``, what ``retailfn dlq list|show|replay`` reads; moved to
``replayed/`` once a replay succeeds) and as a ``com.retailfn.platform.dead-letter.v1`` event on
the dead-letter topic, for alerting and for any consumer that wants them. The id is derived from
the function and the event, so a dead letter written twice (a crash between the two writes, a
re-delivered batch) is still one dead letter.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.http import CloudEvent

from events.deadletter import DeadLetter, FailedEvent, Failure
from shared.objectstore.port import ObjectNotFound, ObjectStore

_ATTRIBUTES = ("id", "source", "type", "subject", "time", "datacontenttype")


def dead_letter_id(function: str, ce: CloudEvent) -> str:
    return hashlib.sha256(f"{function}\0{ce['source']}\0{ce['id']}".encode()).hexdigest()[:32]


def _encode_data(data: Any) -> tuple[str | None, str]:
    if data is None:
        return None, "text"
    if isinstance(data, bytes | bytearray):
        try:
            return bytes(data).decode("utf-8"), "text"
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii"), "base64"
    if isinstance(data, str):
        return data, "text"
    return json.dumps(data, separators=(",", ":"), default=str), "text"


def make_dead_letter(function: str, ce: CloudEvent, error: BaseException, attempts: int,
                     first_failed_at: datetime, origin: dict[str, Any] | None = None,
                     *, retryable: bool = True) -> DeadLetter:
    origin = origin or {}
    attrs = ce.get_attributes()
    data, encoding = _encode_data(ce.get_data())
    extensions = {k: str(v) for k, v in attrs.items()
                  if k not in (*_ATTRIBUTES, "specversion")}
    failed = FailedEvent(
        **{k: attrs.get(k) for k in _ATTRIBUTES},
        topic=origin.get("topic"), partition=origin.get("partition"),
        offset=origin.get("offset"), key=extensions.get("partitionkey") or extensions.get("key"),
        bucket=origin.get("bucket"), object_key=origin.get("key") if "bucket" in origin else None,
        extensions=extensions, data=data, data_encoding=encoding,
    )
    return DeadLetter(
        function=function,
        event=failed,
        error=Failure(type=type(error).__name__, message=(str(error) or type(error).__name__)[:10_000],
                      retryable=retryable),
        attempts=max(attempts, 1),
        first_failed_at=first_failed_at,
        last_failed_at=datetime.now(UTC),
    )


def original_event(dl: DeadLetter) -> CloudEvent:
    """The CloudEvent as the function first received it."""
    ev = dl.event
    attrs: dict[str, Any] = {k: v for k in _ATTRIBUTES if (v := getattr(ev, k)) is not None}
    if ev.time is not None:
        attrs["time"] = ev.time.isoformat().replace("+00:00", "Z")
    attrs.update(ev.extensions)
    raw: Any = ev.data
    if raw is not None and ev.data_encoding == "base64":
        raw = base64.b64decode(raw)
    elif raw is not None and (ev.datacontenttype or "application/json").endswith("json"):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = raw.encode()
    return CloudEvent(attrs, raw)


@dataclass(frozen=True)
class StoredDeadLetter:
    id: str
    status: str
    """``pending`` or ``replayed``."""
    dead_letter: DeadLetter


class DeadLetterStore:
    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self._store = store
        self._bucket = bucket

    def save(self, dl_id: str, dl: DeadLetter) -> None:
        self._store.put(self._bucket, f"pending/{dl.function}/{dl_id}.json",
                        dl.model_dump_json().encode(), content_type="application/json")

    def list(self, function: str | None = None, *,
             status: str = "pending") -> Iterator[StoredDeadLetter]:
        prefix = f"{status}/{function}/" if function else f"{status}/"
        for info in self._store.list(self._bucket, prefix):
            try:
                body = self._store.get(self._bucket, info.key).body
            except ObjectNotFound:
                continue
            dl_id = info.key.rsplit("/", 1)[-1].removesuffix(".json")
            yield StoredDeadLetter(dl_id, status, DeadLetter.model_validate_json(body))

    def get(self, dl_id: str) -> StoredDeadLetter:
        """Find a dead letter by id, or by a unique prefix of it."""
        matches = [d for status in ("pending", "replayed") for d in self.list(status=status)
                   if d.id.startswith(dl_id)]
        if not matches:
            raise KeyError(f"no dead letter with id {dl_id!r}")
        if len(matches) > 1:
            raise KeyError(f"id prefix {dl_id!r} matches {len(matches)} dead letters")
        return matches[0]

    def mark_replayed(self, stored: StoredDeadLetter) -> None:
        dl = stored.dead_letter
        self._store.put(self._bucket, f"replayed/{dl.function}/{stored.id}.json",
                        dl.model_dump_json().encode(), content_type="application/json")
        self._store.delete(self._bucket, f"pending/{dl.function}/{stored.id}.json")
