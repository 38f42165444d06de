"""Object storage: the port, and the adapter the settings choose."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.objectstore.port import (
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

if TYPE_CHECKING:
    from shared.settings import Settings

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
    "object_store_from_settings",
]


def object_store_from_settings(settings: Settings | None = None) -> ObjectStore:
    """The adapter ``settings.objectstore`` names; the SDK is imported only when COS is chosen."""
    if settings is None:
        from shared.settings import get_settings

        settings = get_settings()
    if settings.objectstore == "cos":
        from shared.objectstore.cos import CosStore

        return CosStore.from_settings(settings)
    from shared.objectstore.local import LocalFolderStore

    return LocalFolderStore(settings.data_dir / "objects")
