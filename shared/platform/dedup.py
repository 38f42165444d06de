"""Deduplication of Kafka records, kept in the object store, with an expiry.

Object events (bucket, key, etag), schedule ticks and HTTP ``Idempotency-Key`` requests are
claimed one row each in the state database
(:class:`~shared.integration.state.claims.SqlClaimStore`, from
:func:`shared.platform.adapters.get_claim_store`), where a claim per event costs nothing next to
the work. Kafka triggers use :class:`SeenLog` instead, where a claim per record would cost more
than the record: the ids a batch processed are written as one object named after the batch
(``topic+partition+firstOffset``, so a re-delivered batch overwrites itself) before the offsets
are committed; a worker loads the recent batches when it starts. Kafka's own offsets already stop
re-delivery of committed records, so this log only has to catch a republished event (same
``source`` and ``id``), a replay, or a batch re-run after a crash.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from shared.integration.objectstore.port import ObjectNotFound, ObjectStore

DEFAULT_TTL = timedelta(days=7)


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
