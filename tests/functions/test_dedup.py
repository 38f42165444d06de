"""The Kafka triggers' seen log in the object store (claims are the state database's:
tests/contract/test_state_store.py)."""

from __future__ import annotations

from shared.platform.adapters import get_store
from shared.platform.dedup import SeenLog


def test_seen_log_survives_a_restart() -> None:
    store = get_store()
    store.create_bucket("state")
    first = SeenLog(store, "state", "fn")
    first.add("src\0id-1")
    first.persist("topic+0+0", ["src\0id-1"])
    second = SeenLog(store, "state", "fn")
    assert second.load() == 1
    assert second.seen("src\0id-1") and not second.seen("src\0id-2")
