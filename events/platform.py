"""Platform events that are not retail facts: object-storage changes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from events.fields import Payload, UtcDatetime


class ObjectChanged(Payload):
    """An object was written to or deleted from a bucket.

    Code Engine's ``com.ibm.cloud.cos.document.write|delete`` events and the local object store's
    notifications both arrive as this type, so a function handles one shape.
    """

    ce_type = "com.retailfn.platform.object-changed.v1"

    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    operation: Literal["write", "delete"]
    etag: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    """None for deletes. With bucket and key it is the deduplication key of a write."""
    size: int | None = Field(None, ge=0)
    content_type: Annotated[str, StringConstraints(max_length=255)] | None = None
    request_time: UtcDatetime


KAFKA_BATCH_TYPE = "com.retailfn.platform.kafka-batch.v1"


class BatchRecord(BaseModel):
    """One Kafka record of a batch, as it was on the topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset: int = Field(ge=0)
    timestamp_ms: int = Field(ge=0)
    key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    value: str
    """The record value: UTF-8 text, or base64 when ``value_encoding`` says so."""
    value_encoding: Literal["text", "base64"] = "text"


class KafkaBatch(BaseModel):
    """What a ``mode: batch`` Kafka trigger delivers: consecutive records of one partition.

    Not a retail fact and on no topic, like Code Engine's own ``dev.knative.kafka.event``: the
    runtime's envelope for functions that write records out in bulk (the event archive).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int = Field(ge=0)
    records: list[BatchRecord] = Field(min_length=1)

    @property
    def first_offset(self) -> int:
        return self.records[0].offset
