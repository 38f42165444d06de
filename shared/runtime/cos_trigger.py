"""Object-storage triggers: every write or delete in a bucket becomes a Code Engine-shaped event.

On IBM Cloud, Code Engine's COS subscription posts ``com.ibm.cloud.cos.document.write|delete`` to
the function's app. Locally (the folder store, or an S3 server such as moto) nothing pushes
notifications, so a watcher lists the watched prefixes every half second and diffs the ETags
against the last listing. That also catches files that other clients wrote directly (an operator
copying into the folder, a partner uploading through the S3 API).

A write is delivered only once the object is complete: its ETag and size must be the same in
listings :data:`SETTLE_S` apart. A file another program is still writing in place (an operator's
copy into the folder store: open, write, write, close) changes between listings and waits; an
S3 upload is atomic and simply waits one settle time. Each ETag is its own version: an
overwritten object is a new write, delivered again once it has settled.

Each event is delivered once per (bucket, key, etag): a claim in the state database is taken
when the function succeeded or the event was dead-lettered, and checked before delivery, so a
restart, a second runtime or a re-listing never repeats an effect. The last listing is kept in the
state bucket, so a delete that happened while the runtime was down is still seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from cloudevents.http import CloudEvent

from shared.integration.objectstore.port import (
    NoSuchBucket,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
)
from shared.runtime.config import CosTrigger
from shared.runtime.invoker import Invoker

if TYPE_CHECKING:
    from shared.integration.state.claims import SqlClaimStore

log = logging.getLogger("retailfn.runtime")

COS_WRITE = "com.ibm.cloud.cos.document.write"
COS_DELETE = "com.ibm.cloud.cos.document.delete"
SETTLE_S = 1.0
"""How long an object's ETag and size must stay the same before its write is delivered."""
_monotonic = time.monotonic  # the settle clock; a test may move it


def cos_event(
    bucket: str,
    key: str,
    operation: Literal["write", "delete"],
    etag: str,
    size: int = 0,
    content_type: str = "",
    when: datetime | None = None,
) -> CloudEvent:
    """The event Code Engine's object-storage subscription delivers for one change."""
    when = when or datetime.now(UTC)
    event_id = hashlib.sha256(f"{bucket}\0{key}\0{etag}\0{operation}".encode()).hexdigest()[:32]
    op = "Object:Write" if operation == "write" else "Object:Delete"
    return CloudEvent(
        {
            "type": COS_WRITE if operation == "write" else COS_DELETE,
            "source": f"/cos/bucket/{bucket}",
            "id": event_id,
            "subject": key,
            "time": when.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
        },
        {
            "bucket": bucket,
            "endpoint": "",
            "key": key,
            "operation": op,
            "notification": {
                "bucket_name": bucket,
                "content_type": content_type,
                "event_type": op,
                "format": "2.0",
                "object_etag": etag,
                "object_length": str(size),
                "object_name": key,
                "request_id": event_id,
                "request_time": when.isoformat().replace("+00:00", "Z"),
            },
        },
    )


@dataclass(frozen=True)
class CosSubscription:
    function: str
    trigger: CosTrigger
    invoker: Invoker


class CosWatcher:
    """Watches one bucket for every COS trigger on it."""

    def __init__(
        self,
        *,
        bucket: str,
        subscriptions: list[CosSubscription],
        store: ObjectStore,
        claims: SqlClaimStore,
        state_bucket: str,
        stop: threading.Event,
        interval_s: float = 0.5,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.bucket = bucket
        self.subscriptions = subscriptions
        self.store = store
        self.claims = claims
        self.state_bucket = state_bucket
        self.stop = stop
        self.interval_s = interval_s
        self.on_ready = on_ready
        self.prefix = os.path.commonprefix([s.trigger.prefix for s in subscriptions])
        self._snapshot_key = (
            f"runtime/cos-snapshots/{bucket}/"
            f"{hashlib.sha256(self.prefix.encode()).hexdigest()[:16]}.json"
        )
        self._thread: threading.Thread | None = None
        self._unsettled: dict[str, tuple[str, int, float]] = {}
        """Changed keys not delivered yet: (etag, size, when first seen so)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"cos-{self.bucket}", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        snapshot = self._load_snapshot()
        ready = False
        while not self.stop.is_set():
            try:
                snapshot = self.scan(snapshot)
            except NoSuchBucket:
                log.warning("watched bucket does not exist yet", extra={"bucket": self.bucket})
            except Exception:
                log.exception("bucket scan failed; retrying", extra={"bucket": self.bucket})
            if not ready and self.on_ready:
                self.on_ready()
                ready = True
            self.stop.wait(self.interval_s)

    def scan(self, snapshot: dict[str, str]) -> dict[str, str]:
        """One listing: fire events for what changed since ``snapshot``; return the new one."""
        current: dict[str, ObjectInfo] = {
            info.key: info for info in self.store.list(self.bucket, self.prefix)
        }
        changed = False
        next_snapshot = dict(snapshot)
        now = _monotonic()
        for key in set(self._unsettled) - set(current):
            del self._unsettled[key]  # gone before it settled: nothing to deliver
        for key, info in current.items():
            if snapshot.get(key) == info.etag:
                self._unsettled.pop(key, None)
                continue
            if self.stop.is_set():
                break
            if not self._settled(key, info, now):
                continue
            try:  # listings carry no content type; the notification does
                listed, info = info, self.store.head(self.bucket, key)
            except ObjectNotFound:
                continue  # deleted since the listing; the next scan sees it as gone
            if (info.etag, info.size) != (listed.etag, listed.size):
                self._unsettled[key] = (info.etag, info.size, now)  # written to again: wait
                continue
            if self._fire(
                key, "write", info.etag, info.size, info.content_type, info.last_modified
            ):
                self._unsettled.pop(key, None)
                next_snapshot[key] = info.etag
                changed = True
        for key in set(snapshot) - set(current):
            if self.stop.is_set():
                break
            if self._fire(key, "delete", snapshot[key]):
                del next_snapshot[key]
                changed = True
        if changed:
            self._save_snapshot(next_snapshot)
        return next_snapshot

    def _settled(self, key: str, info: ObjectInfo, now: float) -> bool:
        """``True`` once ``key`` has shown this ETag and size for :data:`SETTLE_S`."""
        seen = self._unsettled.get(key)
        if seen is None or seen[:2] != (info.etag, info.size):
            self._unsettled[key] = (info.etag, info.size, now)
            return False
        return now - seen[2] >= SETTLE_S

    def _fire(
        self,
        key: str,
        operation: Literal["write", "delete"],
        etag: str,
        size: int = 0,
        content_type: str = "",
        when: datetime | None = None,
    ) -> bool:
        """Deliver to every matching subscription; ``False`` if shutdown abandoned one."""
        for sub in self.subscriptions:
            if not sub.trigger.matches(key, operation):
                continue
            scope = f"cos/{sub.function}"
            claim_key = f"{self.bucket}\0{key}\0{etag}\0{operation}"
            if self.claims.is_claimed(scope, claim_key):
                continue
            ce = cos_event(self.bucket, key, operation, etag, size, content_type, when)
            outcome = sub.invoker.deliver(ce, {"bucket": self.bucket, "key": key, "etag": etag})
            if outcome.status == "abandoned":
                return False
            self.claims.claim(scope, claim_key)
        return True

    def _load_snapshot(self) -> dict[str, str]:
        try:
            snapshot: dict[str, str] = json.loads(
                self.store.get(self.state_bucket, self._snapshot_key).body
            )
        except ObjectNotFound:
            return {}
        return snapshot

    def _save_snapshot(self, snapshot: dict[str, str]) -> None:
        self.store.put(
            self.state_bucket,
            self._snapshot_key,
            json.dumps(snapshot).encode(),
            content_type="application/json",
        )
