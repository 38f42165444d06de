"""Example CloudEvent functions for the runtime's tests, written as a real function would be.

They keep their effects in the object store (never in memory), so that tests can read them back
from another process and a restarted or second worker sees them too.
"""

from __future__ import annotations

import json
import os

import functions_framework.aio as ff
from cloudevents.http import CloudEvent

from events.envelope import parse_event
from shared.integration.objectstore.port import ObjectNotFound, PreconditionFailed
from shared.platform.adapters import bucket, get_store

EFFECTS = "effects"


def _append(key: str, item: object) -> None:
    """Append ``item`` to the JSON list at ``key``, with compare-and-swap against lost updates."""
    store, b = get_store(), bucket("state")
    while True:
        try:
            current = store.get(b, key)
            items, etag = json.loads(current.body), current.info.etag
        except ObjectNotFound:
            items, etag = [], None
        items.append(item)
        body = json.dumps(items).encode()
        try:
            if etag is None:
                store.put(b, key, body, if_none_match=True)
            else:
                store.put(b, key, body, if_match=etag)
            return
        except PreconditionFailed:
            continue


@ff.cloud_event
def record_order(cloud_event: CloudEvent) -> None:
    """Parse a typed event and record its id: the effect the tests count."""
    event = parse_event(cloud_event)
    _append(f"{EFFECTS}/record_order.json", {"id": event.id, "type": event.type})


@ff.cloud_event
def record_object(cloud_event: CloudEvent) -> None:
    event = parse_event(cloud_event)
    _append(
        f"{EFFECTS}/record_object.json",
        {"key": event.data.key, "operation": event.data.operation, "etag": event.data.etag},
    )


@ff.cloud_event
def tick(cloud_event: CloudEvent) -> None:
    _append(f"{EFFECTS}/tick.json", {"id": cloud_event["id"]})


@ff.cloud_event
def flaky(cloud_event: CloudEvent) -> None:
    """Fails until the file named by FLAKY_SWITCH exists: a bug that a deploy later fixes."""
    _append(f"{EFFECTS}/flaky-attempts.json", {"id": cloud_event["id"]})
    if not os.path.exists(os.environ["FLAKY_SWITCH"]):
        raise RuntimeError("downstream ERP is unavailable")
    _append(f"{EFFECTS}/flaky.json", {"id": cloud_event["id"]})


@ff.cloud_event
def sequence(cloud_event: CloudEvent) -> None:
    """Apply ``{"key": k, "seq": n}`` records in order, once each.

    A per-key state object holds the sequence numbers applied. A redelivered record (``seq`` not
    above the last applied) is skipped; a gap means order was broken and is recorded as such.
    """
    data = cloud_event.get_data()
    if isinstance(data, bytes | str):
        data = json.loads(data)
    key, seq = data["key"], int(data["seq"])
    store, b = get_store(), bucket("state")
    state_key = f"{EFFECTS}/sequence/{key}.json"
    while True:
        try:
            current = store.get(b, state_key)
            applied, etag = json.loads(current.body), current.info.etag
        except ObjectNotFound:
            applied, etag = [], None
        last = applied[-1] if applied else 0
        if seq <= last:
            return  # already applied: a redelivery after a crash
        if seq != last + 1:
            _append(f"{EFFECTS}/sequence-gaps.json", {"key": key, "seq": seq, "last": last})
        applied.append(seq)
        try:
            if etag is None:
                store.put(b, state_key, json.dumps(applied).encode(), if_none_match=True)
            else:
                store.put(b, state_key, json.dumps(applied).encode(), if_match=etag)
            return
        except PreconditionFailed:
            continue


@ff.cloud_event
def noop(cloud_event: CloudEvent) -> None:
    """Does nothing: the benchmark measures the runtime around it."""
