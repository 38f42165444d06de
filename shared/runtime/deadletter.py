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

from events.deadletter import (
    MAX_DATA_CHARS,
    MAX_EXTENSIONS,
    MAX_MESSAGE_CHARS,
    SHORT_MAX,
    DeadLetter,
    FailedEvent,
    Failure,
)
from events.envelope import identity
from shared.integration.objectstore.port import ObjectNotFound, ObjectStore

_ATTRIBUTES = ("id", "source", "type", "subject", "time", "datacontenttype")


def dead_letter_id(function: str, ce: CloudEvent) -> str:
    key = identity(function, ce["source"], ce["id"], sep="\0")
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


EVENT_MAX_BYTES = 768 * 1024
"""The most a dead letter's event on the dead-letter topic may weigh (its JSON value). Kafka
refuses a record over 1 MiB by default (the broker's ``message.max.bytes``, the producer's
``max.request.size``), and a dead letter that cannot be published would stop its consumer; the
object in the dead-letters bucket keeps up to :data:`MAX_DATA_CHARS` of the data."""

_TRUNCATED = "…"


def _clip(value: Any, limit: int = SHORT_MAX) -> str | None:
    """A value as text that fits a dead letter's field: an oversized attribute may be the very
    reason the event failed, and must not also fail its dead letter."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _data_bytes(data: Any) -> bytes | None:
    """The data as the bytes it stands for: raw bytes as received, text as UTF-8, anything
    else (a parsed JSON value) as compact JSON."""
    if data is None:
        return None
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    try:
        return json.dumps(data, separators=(",", ":"), default=str).encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # circular or too deep to serialize
        return f"<{type(data).__name__} that cannot be serialized>".encode()


def _encode(raw: bytes, limit: int) -> dict[str, Any]:
    """FailedEvent's data fields for ``raw``: text when it is UTF-8, else base64; at most
    ``limit`` characters, cut with the original's size and digest when it does not fit."""
    try:
        raw.decode("utf-8")
        text = True
    except UnicodeDecodeError:
        text = False
    size = len(raw) if text else (len(raw) + 2) // 3 * 4
    fields: dict[str, Any] = {"data_encoding": "text" if text else "base64"}
    if size > limit:
        fields.update(
            data_truncated=True, data_size=len(raw), data_sha256=hashlib.sha256(raw).hexdigest()
        )
        raw = raw[:limit] if text else raw[: limit // 4 * 3]
    # A cut may split a character: the part of it that is left is dropped.
    fields["data"] = (
        raw.decode("utf-8", "ignore") if text else base64.b64encode(raw).decode("ascii")
    )
    return fields


def _event_fields(ce: CloudEvent, origin: dict[str, Any]) -> dict[str, Any]:
    attrs = ce.get_attributes()
    extensions: dict[str, str] = {}
    for name, value in attrs.items():
        if name in (*_ATTRIBUTES, "specversion") or value is None:
            continue
        if len(extensions) == MAX_EXTENSIONS:
            break
        extensions[_clip(name, 64) or "_"] = _clip(value) or ""
    in_bucket = "bucket" in origin
    fields: dict[str, Any] = {k: _clip(attrs.get(k)) for k in _ATTRIBUTES if k != "time"}
    fields.update(
        time=attrs.get("time") if isinstance(attrs.get("time"), str | datetime) else None,
        topic=_clip(origin.get("topic")),
        partition=origin.get("partition"),
        offset=origin.get("offset"),
        key=extensions.get("partitionkey") or extensions.get("key") or None,
        bucket=_clip(origin.get("bucket")) if in_bucket else None,
        object_key=_clip(origin.get("key")) if in_bucket else None,
        extensions=extensions,
    )
    raw = _data_bytes(ce.get_data())
    if raw is not None:
        fields.update(_encode(raw, MAX_DATA_CHARS))
    return fields


def make_dead_letter(
    function: str,
    ce: CloudEvent,
    error: BaseException,
    attempts: int,
    first_failed_at: datetime,
    origin: dict[str, Any] | None = None,
    *,
    retryable: bool = True,
) -> DeadLetter:
    """The dead letter of ``ce``, whatever it holds: oversized attributes are clipped and data
    beyond :data:`MAX_DATA_CHARS` is cut (with its size and SHA-256), so that making the dead
    letter never fails for what the event contains."""
    origin = origin or {}
    failure = Failure(
        type=type(error).__name__[:200] or "Exception",
        message=(str(error) or type(error).__name__)[:MAX_MESSAGE_CHARS],
        retryable=retryable,
    )
    try:
        failed = FailedEvent(**_event_fields(ce, origin))
    except Exception as problem:  # noqa: BLE001 - the dead letter must be written regardless
        # What is left when the event's own fields cannot be kept: where it came from and why.
        failed = FailedEvent(
            topic=_clip(origin.get("topic")),
            partition=origin.get("partition"),
            offset=origin.get("offset"),
        )
        failure = failure.model_copy(
            update={
                "message": (
                    f"{failure.message} (the event itself could not be kept: "
                    f"{type(problem).__name__})"
                )[:MAX_MESSAGE_CHARS]
            }
        )
    return DeadLetter(
        function=function,
        event=failed,
        error=failure,
        attempts=max(attempts, 1),
        first_failed_at=first_failed_at,
        last_failed_at=max(datetime.now(UTC), first_failed_at),
    )


def within(dl: DeadLetter, max_bytes: int = EVENT_MAX_BYTES) -> DeadLetter:
    """``dl``, or a copy of it whose data is cut so that its JSON is at most ``max_bytes``."""
    size = len(dl.model_dump_json().encode())
    ev = dl.event
    if size <= max_bytes or ev.data is None:
        return dl
    raw = (
        base64.b64decode(ev.data)
        if ev.data_encoding == "base64"
        else ev.data.encode("utf-8", "surrogatepass")
    )
    limit, cut = len(ev.data), False
    while size > max_bytes and limit > 0:
        # Cut by the excess; JSON escaping can make one character several bytes, so when that
        # was not enough, halve as well.
        limit = max(
            0, min(limit - (size - max_bytes), limit // 2) if cut else limit - (size - max_bytes)
        )
        cut = True
        fields = _encode(raw, limit)
        if ev.data_truncated:  # keep the original's size and digest, not the stored part's
            fields.update(data_size=ev.data_size, data_sha256=ev.data_sha256)
        fields.update(
            data_truncated=True,
            data_size=fields.get("data_size", len(raw)),
            data_sha256=fields.get("data_sha256") or hashlib.sha256(raw).hexdigest(),
        )
        dl = dl.model_copy(update={"event": ev.model_copy(update=fields)})
        size = len(dl.model_dump_json().encode())
    return dl


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
        self._store.put(
            self._bucket,
            f"pending/{dl.function}/{dl_id}.json",
            dl.model_dump_json().encode(),
            content_type="application/json",
        )

    def list(
        self, function: str | None = None, *, status: str = "pending"
    ) -> Iterator[StoredDeadLetter]:
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
        matches = [
            d
            for status in ("pending", "replayed")
            for d in self.list(status=status)
            if d.id.startswith(dl_id)
        ]
        if not matches:
            raise KeyError(f"no dead letter with id {dl_id!r}")
        if len(matches) > 1:
            raise KeyError(f"id prefix {dl_id!r} matches {len(matches)} dead letters")
        return matches[0]

    def mark_replayed(self, stored: StoredDeadLetter) -> None:
        dl = stored.dead_letter
        self._store.put(
            self._bucket,
            f"replayed/{dl.function}/{stored.id}.json",
            dl.model_dump_json().encode(),
            content_type="application/json",
        )
        self._store.delete(self._bucket, f"pending/{dl.function}/{stored.id}.json")
