"""The dead letter: an event a function gave up on, with the error and the attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from events.fields import Payload, UtcDatetime

_UTC_TIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)

SHORT_MAX = 1024
Short = Annotated[str, StringConstraints(min_length=1, max_length=SHORT_MAX)]
MAX_EXTENSIONS = 50
MAX_DATA_CHARS = 4_000_000
"""The most of an event's data a dead letter keeps; beyond it, the beginning and a digest."""
MAX_MESSAGE_CHARS = 10_000


class FailedEvent(Payload):
    """What is known of the original event. Attributes may be missing: the event may have
    failed because it could not be read at all, and then the raw record is all there is."""

    id: Short | None = None
    source: Short | None = None
    type: Short | None = None
    subject: Short | None = None
    time: UtcDatetime | None = None
    datacontenttype: Short | None = None
    topic: Short | None = None
    partition: int | None = Field(None, ge=0)
    offset: int | None = Field(None, ge=0)
    key: Short | None = None
    bucket: Short | None = None
    object_key: Short | None = None
    extensions: dict[str, str] = Field(default_factory=dict, max_length=MAX_EXTENSIONS)
    data: str | None = Field(None, max_length=MAX_DATA_CHARS)
    data_encoding: Literal["text", "base64"] = "text"
    """``base64`` when the original bytes were not UTF-8 text."""
    data_truncated: bool = False
    """True when ``data`` holds only the beginning of the original data (it was too large to
    keep); ``data_size`` and ``data_sha256`` then identify the original."""
    data_size: int | None = Field(None, ge=0)
    """Size of the original data in bytes, when it was truncated."""
    data_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    """SHA-256 (hex) of the original data's bytes, when it was truncated."""

    @field_validator("time", mode="before")
    @classmethod
    def _unreadable_time_is_dropped(cls, value: Any) -> Any:
        # A bad timestamp may be the very reason the event failed; the dead letter must still
        # be written, so an unreadable time becomes None instead of a second failure.
        try:
            return None if value is None else _UTC_TIME.validate_python(value)
        except ValidationError:
            return None


class Failure(Payload):
    type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """The exception class, e.g. ``InvalidEvent`` or ``ConditionFailed``."""
    message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS)]
    retryable: bool = True
    """False when retrying cannot help (the input is invalid); replay after a fix instead."""


class DeadLetter(Payload):
    """An event that a function could not handle after its retries."""

    ce_type = "com.retailfn.platform.dead-letter.v1"

    function: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    event: FailedEvent
    error: Failure
    attempts: int = Field(ge=1)
    first_failed_at: UtcDatetime
    last_failed_at: UtcDatetime

    @model_validator(mode="after")
    def _ordered(self) -> DeadLetter:
        if self.last_failed_at < self.first_failed_at:
            raise ValueError("last_failed_at must not be before first_failed_at")
        return self
