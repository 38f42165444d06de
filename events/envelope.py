"""The typed event envelope, and every way an event enters or leaves a function.

Transport in, typed ``Event[P]`` out: Kafka records (CloudEvents binary or structured mode),
HTTP requests (structured or binary), CloudEvents handed over by functions-framework, and Code
Engine's own Kafka and object-storage events. Anything that does not fit raises
:class:`InvalidEvent`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypedDict, TypeVar

from cloudevents import exceptions as ce_errors
from cloudevents.abstract import CloudEvent as AnyCloudEvent
from cloudevents.conversion import to_structured as _ce_to_structured
from cloudevents.http import CloudEvent
from cloudevents.http import from_http as _ce_from_http
from cloudevents.kafka import KafkaMessage
from cloudevents.kafka import from_binary as _kafka_from_binary
from cloudevents.kafka import from_structured as _kafka_from_structured
from cloudevents.kafka import to_binary as _kafka_to_binary
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from events.catalog import TOPICS, topic_for_type
from events.fields import Payload, UtcDatetime
from events.platform import ObjectChanged
from events.registry import EVENT_TYPES

P = TypeVar("P", bound=Payload)

KNATIVE_KAFKA_TYPE = "dev.knative.kafka.event"
COS_WRITE_TYPE = "com.ibm.cloud.cos.document.write"
COS_DELETE_TYPE = "com.ibm.cloud.cos.document.delete"

_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
_CORE = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "partitionkey",
    "datacontenttype",
)


class InvalidEvent(Exception):
    """The one error for an event that cannot be read or does not meet its contract.

    ``reason`` names the offending field, e.g. ``data.lines[0].quantity: Input should be greater
    than 0``; it is what goes into a dead letter or an ``application/problem+json`` answer.
    """

    def __init__(self, reason: str, *, event_id: str | None = None, event_type: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.event_type = event_type


class Origin(BaseModel):
    """Where an event came from: what deduplication and dead letters need beyond the CE id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["kafka", "http", "cos", "direct"] = "direct"
    topic: str | None = None
    partition: int | None = Field(None, ge=0)
    offset: int | None = Field(None, ge=0)
    key: str | None = None
    """The Kafka record key, or the object key for ``cos``."""
    bucket: str | None = None
    etag: str | None = None


class Event(BaseModel, Generic[P]):
    """A CloudEvent 1.0 whose ``data`` is a validated payload model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=1024)
    type: str
    specversion: Literal["1.0"] = "1.0"
    time: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = Field(None, max_length=1024)
    partitionkey: str | None = Field(None, max_length=1024)
    datacontenttype: Literal["application/json"] = "application/json"
    data: P
    extensions: dict[str, str] = Field(default_factory=dict, max_length=30)
    """Other CloudEvents attributes (``traceparent``, ...), passed along as they came."""
    origin: Origin = Origin()

    @model_validator(mode="after")
    def _type_matches_payload(self) -> Event[P]:
        expected = type(self.data).ce_type
        if self.type != expected:
            raise ValueError(f"type {self.type!r} does not match the payload ({expected!r})")
        for name in self.extensions:
            if not _EXTENSION_NAME.fullmatch(name) or name in _CORE:
                raise ValueError(f"{name!r} is not a valid CloudEvents extension name")
        return self

    def attributes(self) -> dict[str, str]:
        """The CloudEvents context attributes as strings (what becomes ``ce_*`` headers)."""
        attrs = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": _iso(self.time),
            "subject": self.subject,
            "partitionkey": self.partitionkey,
            "datacontenttype": self.datacontenttype,
            **self.extensions,
        }
        return {name: value for name, value in attrs.items() if value is not None}

    def to_cloudevent(self) -> CloudEvent:
        return CloudEvent(self.attributes(), self.data.model_dump(mode="json"))

    def to_dict(self) -> dict[str, Any]:
        """Structured-mode JSON object (what the samples and HTTP posts hold)."""
        return {**self.attributes(), "data": self.data.model_dump(mode="json")}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        path = ""
        for loc in item["loc"]:
            path += f"[{loc}]" if isinstance(loc, int) else (f".{loc}" if path else str(loc))
        parts.append(f"{path or 'event'}: {item['msg']}")
    return "; ".join(parts)


def identity(*parts: object, sep: str = "\n") -> str:
    """Parts of an event's identity (its ``source`` and ``id``, maybe more) as one string that
    no other parts give: joined with ``sep`` when none holds it, else as a JSON array. ``sep``
    is a control character, which JSON always escapes, so the two forms never meet.

    An id a producer chose may contain anything, separators included; a plain join would let
    two distinct inputs derive one id (and one be taken for a redelivery of the other)."""
    texts = [str(part) for part in parts]
    if any(sep in text for text in texts):
        return json.dumps(texts, ensure_ascii=False)
    return sep.join(texts)


# --- building ------------------------------------------------------------------------------


def new_event(
    payload: P,
    *,
    source: str,
    subject: str | None = None,
    key: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    extensions: Mapping[str, str] | None = None,
) -> Event[P]:
    """Wrap a payload in a new event. The type comes from the payload; the partition key, unless
    given, from the payload's primary topic (``sku:location_id`` -> ``"SKU-1:LOC-1"``)."""
    ce_type = type(payload).ce_type
    if key is None and ce_type in EVENT_TYPES:
        try:
            key = TOPICS[topic_for_type(ce_type)].key_for(payload)
        except KeyError:
            key = None  # not on a topic (object notifications)
    fields: dict[str, Any] = {
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": ce_type,
        "subject": subject,
        "partitionkey": key,
        "data": payload,
        "extensions": dict(extensions or {}),
    }
    if time is not None:
        fields["time"] = time
    payload_type = type(payload)
    model: type[Event[P]] = Event[payload_type]  # type: ignore[valid-type]  # a run-time type
    try:
        return model(**fields)
    except ValidationError as error:
        raise InvalidEvent(_reason(error), event_id=fields["id"], event_type=ce_type) from None


def _validate(attrs: Mapping[str, Any], data: Any, origin: Origin) -> Event[Any]:
    """Attributes + raw data -> Event; the single place where contracts are enforced."""
    ce_type = attrs.get("type")
    event_id = None if attrs.get("id") is None else str(attrs.get("id"))
    model = EVENT_TYPES.get(str(ce_type))
    if model is None:
        reason = f"type: unknown event type {ce_type!r}"
        raise InvalidEvent(reason, event_id=event_id, event_type=ce_type)
    fields: dict[str, Any] = {name: attrs[name] for name in _CORE if attrs.get(name) is not None}
    if isinstance(fields.get("partitionkey"), bytes):
        fields["partitionkey"] = fields["partitionkey"].decode("utf-8", "backslashreplace")
    # Brokers and platforms add extensions of their own; keep those a CloudEvent may carry and
    # drop the rest rather than reject an event for its transport's decorations.
    fields["extensions"] = {
        name: str(value)
        for name, value in attrs.items()
        if name not in _CORE and value is not None and _EXTENSION_NAME.fullmatch(name)
    }
    fields["data"] = _json_data(data, event_id, ce_type)
    fields["origin"] = origin
    try:
        return Event[model].model_validate(fields)  # type: ignore[valid-type]  # a run-time type
    except ValidationError as error:
        raise InvalidEvent(_reason(error), event_id=event_id, event_type=ce_type) from None


TOO_DEEP = "nested too deeply"


class _EventIds(TypedDict):
    """What an :class:`InvalidEvent` says about the event it refuses."""

    event_id: str | None
    event_type: str | None


def loads_json(text: bytes | str, where: str = "data", **ids: Any) -> Any:
    """``json.loads`` whose one failure for nesting is an :class:`InvalidEvent`: the parser
    recurses per ``[`` or ``{``, so a value of a few kilobytes of brackets would otherwise raise
    RecursionError, which no caller expects from bad input."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidEvent(f"{where}: not valid JSON ({TOO_DEEP})", **ids) from None


def _json_data(data: Any, event_id: str | None, ce_type: str | None) -> Any:
    # Bytes, JSON text or base64 JSON text: platforms differ in which they send.
    ids: _EventIds = {"event_id": event_id, "event_type": ce_type}
    if data is None or data in (b"", ""):
        raise InvalidEvent("data: Field required (empty body)", **ids)
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return loads_json(bytes(data), **ids)
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidEvent(f"data: not valid JSON ({error})", **ids) from None
    if isinstance(data, str):
        try:
            return loads_json(data, **ids)
        except ValueError:
            pass  # not JSON text: Code Engine may have sent the bytes base64-encoded
        try:
            return loads_json(base64.b64decode(data, validate=True), **ids)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidEvent("data: neither JSON nor base64-encoded JSON", **ids) from None
    return data


def _infer_type(topic: str | None, event_id: str | None) -> str:
    # Partners may produce plain JSON without CloudEvents headers; that is only unambiguous when
    # the topic carries a single type.
    if topic is None or topic not in TOPICS:
        reason = f"type: no CloudEvents type and unknown topic {topic!r}"
        raise InvalidEvent(reason, event_id=event_id)
    types = TOPICS[topic].event_types
    if len(types) != 1:
        raise InvalidEvent(
            f"type: no CloudEvents type, and topic {topic!r} carries {len(types)} types",
            event_id=event_id,
        )
    return types[0]


# --- Kafka -----------------------------------------------------------------------------------


def _marshal(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def to_kafka(event: Event[Any]) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of a Kafka record in CloudEvents binary mode, through the SDK:
    attributes become ``ce_*`` headers, ``partitionkey`` the key, the payload the value."""
    message = _kafka_to_binary(event.to_cloudevent(), data_marshaller=_marshal)
    key = message.key.encode("utf-8") if isinstance(message.key, str) else message.key
    value = message.value.encode("utf-8") if isinstance(message.value, str) else message.value
    return key, value, sorted(message.headers.items())


STRUCTURED_CONTENT_TYPE = "application/cloudevents"
"""The content type of a structured-mode CloudEvent (``application/cloudevents+json``)."""


def kafka_cloudevent(
    headers: Mapping[str, bytes], key: str | None, value: bytes | None
) -> CloudEvent | None:
    """The CloudEvent a Kafka record carries, through the SDK, or ``None`` for a plain record.

    Structured mode (header ``content-type: application/cloudevents+json``, the whole event in
    the value) and binary mode (``ce_*`` headers, the data in the value, left as bytes). An
    event without an id is refused: the SDK would invent one, and an id the producer did not
    send can never deduplicate. ``headers`` are named in lower case.
    """
    content_type = headers.get("content-type", b"").decode("utf-8", "replace").strip().lower()
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        envelope = loads_structured(value or b"")
        # Here content-type names the envelope's format; the event's own datacontenttype is in
        # the envelope (the SDK would take the header for it).
        others = {name: item for name, item in headers.items() if name != "content-type"}
        try:
            return _kafka_from_structured(
                KafkaMessage(others, key, value or b""),
                envelope_unmarshaller=lambda _raw: envelope,
            )
        except (ce_errors.GenericException, ValueError, TypeError, AttributeError) as error:
            raise InvalidEvent(f"event: {error}", event_id=str(envelope["id"])) from None
    if not any(name.startswith("ce_") for name in headers):
        return None
    if "ce_id" not in headers:
        raise InvalidEvent("id: Field required (header ce_id)")
    try:
        return _kafka_from_binary(
            KafkaMessage(dict(headers), key, value or b""), data_unmarshaller=lambda raw: raw
        )
    except (ce_errors.GenericException, ValueError, TypeError) as error:
        raise InvalidEvent(f"event: {error}") from None


def loads_structured(value: bytes | str) -> dict[str, Any]:
    """A structured-mode CloudEvent's JSON object, with an id (the SDK would invent one)."""
    try:
        envelope = loads_json(value, "event")
    except (ValueError, UnicodeDecodeError):
        raise InvalidEvent("event: not a structured CloudEvent (bad JSON)") from None
    if not isinstance(envelope, dict):
        raise InvalidEvent("event: a structured CloudEvent is a JSON object")
    if envelope.get("id") in (None, ""):
        raise InvalidEvent("id: Field required", event_type=str(envelope.get("type")))
    return envelope


def _lower_headers(
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, Any] | None,
) -> dict[str, bytes]:
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {
        name.lower(): item.encode("utf-8") if isinstance(item, str) else bytes(item)
        for name, item in pairs
        if item is not None
    }


def from_kafka(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, Any] | None = None,
    *,
    timestamp_ms: int | None = None,
) -> Event[Any]:
    """A Kafka record -> Event. Structured and binary mode through the SDK (see
    :func:`kafka_cloudevent`); a record that is neither is a partner's raw JSON: its type comes
    from the topic, its id is ``"{topic}:{partition}:{offset}"`` so redelivery deduplicates."""
    header_map = _lower_headers(headers)
    text_key = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else key
    origin = Origin(kind="kafka", topic=topic, partition=partition, offset=offset, key=text_key)
    ce = kafka_cloudevent(header_map, text_key, value)
    if ce is not None:
        return _validate(ce.get_attributes(), ce.get_data(), origin)
    record_id = f"{topic}:{partition}:{offset}"
    attrs: dict[str, str | datetime | None] = {
        "id": record_id,
        "source": f"kafka://{topic}",
        "type": _infer_type(topic, record_id),
        "partitionkey": text_key,
    }
    if timestamp_ms is not None:
        attrs["time"] = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return _validate(attrs, value, origin)


# --- HTTP and CloudEvents objects ------------------------------------------------------------


def to_http(event: Event[Any]) -> tuple[dict[str, str], bytes]:
    """Headers and body of a structured-mode HTTP request (``application/cloudevents+json``)."""
    headers, body = _ce_to_structured(event.to_cloudevent())
    return dict(headers), body if isinstance(body, bytes) else body.encode("utf-8")


def from_http(headers: Mapping[str, str], body: bytes | str | None) -> Event[Any]:
    """An HTTP request carrying a CloudEvent, structured or binary mode, -> Event."""
    lowered = {name.lower(): value for name, value in headers.items()}
    binary = "ce-specversion" in lowered
    # The SDK invents an id when there is none; an id we did not receive cannot deduplicate.
    if binary and "ce-id" not in lowered:
        raise InvalidEvent("id: Field required (header ce-id)")
    if not binary:
        try:
            raw = loads_json(body or b"", "event")
        except ValueError:
            raise InvalidEvent("event: body is not a structured CloudEvent (bad JSON)") from None
        if isinstance(raw, dict) and "id" not in raw:
            raise InvalidEvent("id: Field required", event_type=raw.get("type"))
    try:
        ce = _ce_from_http(lowered, body)
    except ce_errors.GenericException as error:
        raise InvalidEvent(f"event: {error}") from None
    return from_cloudevent(ce, origin=Origin(kind="http"))


def from_cloudevent(ce: AnyCloudEvent, *, origin: Origin | None = None) -> Event[Any]:
    """A CloudEvent (what a functions-framework ``@cloud_event`` function receives) -> Event.

    Accepts our own types, Code Engine's Kafka event (``dev.knative.kafka.event``) and Code
    Engine's object-storage events (``com.ibm.cloud.cos.document.write|delete``, which become
    ``Event[ObjectChanged]``)."""
    attrs = dict(ce.get_attributes())
    ce_type = attrs.get("type")
    if ce_type == KNATIVE_KAFKA_TYPE:
        return _from_codeengine_kafka(attrs, ce.get_data())
    if ce_type in (COS_WRITE_TYPE, COS_DELETE_TYPE):
        return _from_codeengine_cos(attrs, ce.get_data())
    return _validate(attrs, ce.get_data(), origin or Origin(kind="http"))


_PARTITION_OFFSET = re.compile(r"^partition:(\d+)/offset:(\d+)$")
_SUBJECT_PARTITION_OFFSET = re.compile(r"^partition:(\d+)#(\d+)$")


def _kafka_topic(attrs: Mapping[str, Any]) -> str | None:
    if attrs.get("topic"):
        return str(attrs["topic"])
    source = str(attrs.get("source") or "").rstrip("/")
    # Knative: /apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>; Code Engine: .../<topic>.
    return source.rsplit("#", 1)[1] if "#" in source else (source.rsplit("/", 1)[-1] or None)


def _from_codeengine_kafka(attrs: Mapping[str, Any], data: Any) -> Event[Any]:
    topic = _kafka_topic(attrs)
    match = _PARTITION_OFFSET.match(str(attrs.get("id", ""))) or _SUBJECT_PARTITION_OFFSET.match(
        str(attrs.get("subject", ""))
    )
    partition, offset = (int(match[1]), int(match[2])) if match else (None, None)
    key = None if attrs.get("key") is None else str(attrs["key"])
    origin = Origin(kind="kafka", topic=topic, partition=partition, offset=offset, key=key)
    # Kafka headers come as extensions named kafkaheader<name>; CE extension names cannot hold
    # '_', so ce_type may arrive as kafkaheaderce_type or kafkaheadercetype.
    carried: dict[str, Any] = {}
    for name, value in attrs.items():
        if not name.startswith("kafkaheader"):
            continue
        header = name.removeprefix("kafkaheader")
        if header.startswith("ce_"):
            carried[header[3:]] = value
        elif header.startswith("ce") and not header.startswith("content"):
            carried[header[2:]] = value
    if carried.get("type"):
        return _validate({**carried, "partitionkey": key}, data, origin)
    # The platform's (source, id) is this event's identity, as CloudEvents has it: unique per
    # record of a subscription, whatever else the platform puts in the id.
    event_id = None if attrs.get("id") is None else str(attrs["id"])
    raw = {
        "id": event_id,
        "source": attrs.get("source"),
        "type": _infer_type(topic, event_id),
        "time": attrs.get("time"),
        "partitionkey": key,
    }
    return _validate(raw, data, origin)


def _from_codeengine_cos(attrs: Mapping[str, Any], data: Any) -> Event[Any]:
    body = _json_data(data, attrs.get("id"), attrs.get("type"))
    if not isinstance(body, dict):
        ids = {"event_id": attrs.get("id"), "event_type": attrs.get("type")}
        raise InvalidEvent("data: Input should be an object", **ids)
    note = body.get("notification") or {}
    operation = str(body.get("operation") or "")
    deleted = attrs.get("type") == COS_DELETE_TYPE or operation.lower().endswith("delete")
    payload = {
        "bucket": body.get("bucket") or note.get("bucket_name"),
        "key": note.get("object_name") or body.get("key") or attrs.get("subject"),
        "operation": "delete" if deleted else "write",
        "etag": note.get("object_etag") or None,
        "size": note.get("object_length") or None,
        "content_type": note.get("content_type") or None,
        "request_time": note.get("request_time") or attrs.get("time"),
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    origin = Origin(
        kind="cos", bucket=payload.get("bucket"), key=payload.get("key"), etag=payload.get("etag")
    )
    normalized = {
        "id": attrs.get("id"),
        "source": attrs.get("source"),
        "type": ObjectChanged.ce_type,
        "time": attrs.get("time"),
        "subject": payload.get("key"),
    }
    return _validate(normalized, payload, origin)


# --- conveniences ----------------------------------------------------------------------------


def parse_event(value: Event[Any] | AnyCloudEvent | Mapping[str, Any]) -> Event[Any]:
    """Whatever a caller holds -> Event: an Event, a CloudEvent object or a structured-mode dict."""
    if isinstance(value, Event):
        return value
    if isinstance(value, AnyCloudEvent):
        return from_cloudevent(value, origin=Origin(kind="direct"))
    if isinstance(value, Mapping):
        if "id" not in value:
            raise InvalidEvent("id: Field required", event_type=value.get("type"))
        try:
            ce = _ce_from_http({"content-type": "application/cloudevents+json"}, json.dumps(value))
        except ce_errors.GenericException as error:
            raise InvalidEvent(f"event: {error}", event_id=value.get("id")) from None
        except (TypeError, ValueError, RecursionError) as error:
            reason = f"event: not JSON-serializable ({error})"
            raise InvalidEvent(reason, event_id=value.get("id")) from None
        return from_cloudevent(ce, origin=Origin(kind="direct"))
    raise InvalidEvent(f"event: cannot read an event from {type(value).__name__}")


def event_from_sample(name: str) -> Event[Any]:
    """The committed sample ``events/samples/<name>.json`` as a typed event (for tests)."""
    from events.samples import load_sample

    return parse_event(load_sample(name))
