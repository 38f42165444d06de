"""Object storage: the port and its two adapters (the factory that picks one by settings is
:func:`shared.platform.adapters.object_store_from_settings`)."""

from __future__ import annotations

from shared.integration.objectstore.port import (
    Body,
    InvalidKey,
    ListPage,
    NoSuchBucket,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    PreconditionFailed,
    StoredObject,
)

__all__ = [
    "Body",
    "InvalidKey",
    "ListPage",
    "NoSuchBucket",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "PreconditionFailed",
    "StoredObject",
]
