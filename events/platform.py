"""Platform events that are not retail facts: object-storage changes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

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
