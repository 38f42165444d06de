"""Deduplication kept in the object store, with an expiry.

Two shapes, for two rates of traffic:

* :class:`ClaimStore`: one create-only marker object per key (``If-None-Match: *``), so exactly one
  process wins even across workers. For object events (bucket, key, etag), schedule ticks and HTTP
  ``Idempotency-Key`` requests, where a marker per event costs nothing next to the work.
* :class:`SeenLog`: for Kafka triggers, where a marker per record would cost more than the record.
  The ids a batch processed are written as one object named after the batch
  (``topic+partition+firstOffset``, so a re-delivered batch overwrites itself) before the offsets
  are committed; a worker loads the recent batches when it starts. Kafka's own offsets already
  stop re-delivery of committed records, so this log only has to catch a republished event
  (same ``source`` and ``id``), a replay, or a batch re-run after a crash.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.integration.objectstore.port import ObjectNotFound, ObjectStore, PreconditionFailed

DEFAULT_TTL = timedelta(days=7)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ClaimStore:
    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        prefix: str = "runtime/claims",
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._prefix = prefix.rstrip("/")
        self._ttl = ttl

    def _key(self, scope: str, key: str) -> str:
        return f"{self._prefix}/{scope}/{_digest(key)}.json"

    def _body(self, key: str, value: dict[str, Any] | None) -> bytes:
        return json.dumps(
            {
                "key": key,
                "expires_at": (datetime.now(UTC) + self._ttl).isoformat(),
                "value": value,
            }
        ).encode()

    def claim(self, scope: str, key: str, value: dict[str, Any] | None = None) -> bool:
        """Record ``key`` as done; ``False`` if it was already recorded and has not expired."""
        return self.claim_version(scope, key, value) is not None

    def claim_version(
        self, scope: str, key: str, value: dict[str, Any] | None = None
    ) -> str | None:
        """:meth:`claim`, answering the version (ETag) of the claim written, for a later
        :meth:`replace` or :meth:`release` of exactly this claim; ``None`` if not claimed."""
        object_key = self._key(scope, key)
        body = self._body(key, value)
        try:
            return self._store.put(
                self._bucket, object_key, body, content_type="application/json", if_none_match=True
            ).etag
        except PreconditionFailed:
            pass  # claimed before: it may have expired, which the read below decides
        try:
            current = self._store.get(self._bucket, object_key)
        except ObjectNotFound:  # deleted between our write and read: try once more
            return self.claim_version(scope, key, value)
        if datetime.fromisoformat(json.loads(current.body)["expires_at"]) > datetime.now(UTC):
            return None
        try:  # expired: take it over, but only if nobody else did first
            return self._store.put(
                self._bucket,
                object_key,
                body,
                content_type="application/json",
                if_match=current.info.etag,
            ).etag
        except PreconditionFailed:
            return None

    def lookup(self, scope: str, key: str) -> dict[str, Any] | None:
        """The value stored with a live claim, or ``None``."""
        entry = self.lookup_version(scope, key)
        return entry[0] if entry is not None else None

    def lookup_version(self, scope: str, key: str) -> tuple[dict[str, Any], str] | None:
        """The document of a live claim and its version (ETag), or ``None``."""
        try:
            current = self._store.get(self._bucket, self._key(scope, key))
        except ObjectNotFound:
            return None
        doc: dict[str, Any] = json.loads(current.body)  # written by _body: a JSON object
        if datetime.fromisoformat(doc["expires_at"]) <= datetime.now(UTC):
            return None
        return doc, current.info.etag

    def replace(
        self, scope: str, key: str, value: dict[str, Any] | None, *, version: str
    ) -> str | None:
        """Overwrite the value of the claim at ``version`` (its expiry restarts): the new
        version, or ``None`` if the claim changed or went meanwhile."""
        try:
            return self._store.put(
                self._bucket,
                self._key(scope, key),
                self._body(key, value),
                content_type="application/json",
                if_match=version,
            ).etag
        except (PreconditionFailed, ObjectNotFound):
            return None

    def is_claimed(self, scope: str, key: str) -> bool:
        return self.lookup(scope, key) is not None

    def release(self, scope: str, key: str, *, version: str | None = None) -> None:
        """Delete the claim; with ``version``, only if it is still that one (else nothing)."""
        try:
            self._store.delete(self._bucket, self._key(scope, key), if_match=version)
        except (PreconditionFailed, ObjectNotFound):
            pass  # another holder's claim now, or gone already: neither is ours to delete

    def sweep(self) -> int:
        """Delete claims older than the TTL. A claim expires at most TTL after it was last
        written, so the object's age decides without reading it. Returns how many went."""
        horizon = datetime.now(UTC) - self._ttl
        removed = 0
        for info in list(self._store.list(self._bucket, f"{self._prefix}/")):
            if info.last_modified < horizon:
                self._store.delete(self._bucket, info.key, if_match=info.etag)
                removed += 1
        return removed


class SeenLog:
    """Recently processed event keys of one function, in memory and in the object store."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        function: str,
        ttl: timedelta = DEFAULT_TTL,
        max_in_memory: int = 1_000_000,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._prefix = f"runtime/seen/{function}/"
        self._ttl = ttl
        self._max = max_in_memory
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> int:
        """Read the batches written within the TTL; delete older ones. Returns keys loaded."""
        horizon = datetime.now(UTC) - self._ttl
        loaded = 0
        for info in list(self._store.list(self._bucket, self._prefix)):
            if info.last_modified < horizon:
                self._store.delete(self._bucket, info.key)
                continue
            try:
                doc = json.loads(self._store.get(self._bucket, info.key).body)
            except ObjectNotFound:
                continue
            with self._lock:
                for k in doc["keys"]:
                    self._seen[k] = info.last_modified.timestamp()
                    loaded += 1
        self._trim()
        return loaded

    def seen(self, key: str) -> bool:
        return key in self._seen

    def add(self, key: str) -> None:
        """Mark ``key`` processed in memory, at once, so a duplicate later in the batch is caught."""
        with self._lock:
            self._seen[key] = time.time()
            self._seen.move_to_end(key)
        if len(self._seen) > self._max:
            self._trim()

    def persist(self, batch_name: str, keys: Iterable[str]) -> None:
        """Write one batch's keys as one object; called before the batch's offsets are committed."""
        keys = list(keys)
        if keys:
            self._store.put(
                self._bucket,
                f"{self._prefix}{batch_name}.json",
                json.dumps({"keys": keys}).encode(),
                content_type="application/json",
            )

    def _trim(self) -> None:
        with self._lock:
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
