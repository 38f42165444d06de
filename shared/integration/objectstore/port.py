"""The object store port: what every function may do with object storage.

Two adapters implement it: :class:`shared.integration.objectstore.local.LocalFolderStore` (the embedded
default) and :class:`shared.integration.objectstore.cos.CosStore` (IBM COS or any S3-compatible endpoint).
The contract suite in ``tests/contract`` runs the same tests against both.

ETags are plain strings without the surrounding quotes S3 puts on the wire. Conditional writes
are the service's concurrency control: ``if_none_match=True`` creates only if the key is absent
(``If-None-Match: *``); ``if_match=etag`` replaces only the version the caller read
(``If-Match: <etag>``). A lost race raises :class:`PreconditionFailed`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

Body = bytes | BinaryIO


class ObjectStoreError(Exception):
    """Base class of every error the port raises; adapters translate SDK errors into these."""


class NoSuchBucket(ObjectStoreError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} does not exist")
        self.bucket = bucket


class InvalidKey(ObjectStoreError, ValueError):
    """A bucket name, key or prefix the port does not accept; see ``shared.integration.objectstore.keys``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class ObjectNotFound(ObjectStoreError):
    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"object {key!r} not found in bucket {bucket!r}")
        self.bucket = bucket
        self.key = key


class PreconditionFailed(ObjectStoreError):
    """A conditional write lost: the key existed (create-only) or its ETag moved (compare-and-swap)."""

    def __init__(self, bucket: str, key: str, condition: str) -> None:
        super().__init__(f"precondition {condition} failed for {key!r} in bucket {bucket!r}")
        self.bucket = bucket
        self.key = key
        self.condition = condition


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime
    content_type: str = "application/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    body: bytes


@dataclass(frozen=True)
class ListPage:
    items: list[ObjectInfo]
    next_token: str | None
    """Pass back as ``token`` for the next page; ``None`` on the last page."""


class ObjectStore(abc.ABC):
    """Buckets of keyed, versioned-by-ETag objects."""

    @abc.abstractmethod
    def create_bucket(self, bucket: str) -> bool:
        """Create the bucket if absent; ``True`` if it was created, ``False`` if it existed."""

    @abc.abstractmethod
    def bucket_exists(self, bucket: str) -> bool: ...

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Raise :class:`ObjectNotFound` if absent."""

    @abc.abstractmethod
    def get(self, bucket: str, key: str) -> StoredObject:
        """The whole object in memory; use :meth:`open` for large ones."""

    @abc.abstractmethod
    def open(self, bucket: str, key: str) -> AbstractContextManager[tuple[ObjectInfo, BinaryIO]]:
        """Stream an object: ``with store.open(b, k) as (info, stream): ...``."""

    @abc.abstractmethod
    def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Write an object; a file-like ``body`` is streamed, never read whole into memory.

        ``if_none_match=True``: create-only. ``if_match=etag``: compare-and-swap.
        Raise :class:`PreconditionFailed` when the condition does not hold.
        """

    @abc.abstractmethod
    def delete(self, bucket: str, key: str, *, if_match: str | None = None) -> None:
        """Delete; deleting an absent key is not an error (as in S3) unless ``if_match`` is given."""

    @abc.abstractmethod
    def list_page(
        self, bucket: str, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ListPage:
        """One page of objects under ``prefix`` in key order."""

    def list(self, bucket: str, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in key order, fetched a page at a time."""
        token: str | None = None
        while True:
            page = self.list_page(bucket, prefix, token=token, limit=page_size)
            yield from page.items
            if page.next_token is None:
                return
            token = page.next_token

    def close(self) -> None:
        """Release connections; the default has nothing to release."""
