"""Dedup claims in the object store: one winner, expiry, takeover and sweeping."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from shared.platform.adapters import get_store
from shared.platform.dedup import ClaimStore, SeenLog


def _store():  # type: ignore[no-untyped-def]
    store = get_store()
    store.create_bucket("state")
    return store


def test_a_key_is_claimed_once() -> None:
    claims = ClaimStore(_store(), "state")
    assert claims.claim("cos/f", "b\0k\0etag1") is True
    assert claims.claim("cos/f", "b\0k\0etag1") is False
    assert claims.claim("cos/f", "b\0k\0etag2") is True


def test_an_expired_claim_can_be_taken_again() -> None:
    claims = ClaimStore(_store(), "state", ttl=timedelta(milliseconds=50))
    assert claims.claim("s", "k", {"n": 1})
    time.sleep(0.1)
    assert claims.lookup("s", "k") is None
    assert claims.claim("s", "k", {"n": 2})
    assert claims.lookup("s", "k")["value"] == {"n": 2}


def test_sweep_deletes_only_claims_older_than_the_ttl() -> None:
    store = _store()
    claims = ClaimStore(store, "state", ttl=timedelta(hours=1))
    claims.claim("s", "old")
    claims.claim("s", "new")
    old_key = claims._key("s", "old")
    path = store.root / "state" / old_key  # type: ignore[attr-defined]
    two_hours_ago = time.time() - 7200
    os.utime(path, (two_hours_ago, two_hours_ago))
    assert claims.sweep() == 1
    assert claims.is_claimed("s", "new") and not claims.is_claimed("s", "old")


def test_seen_log_survives_a_restart() -> None:
    store = _store()
    first = SeenLog(store, "state", "fn")
    first.add("src\0id-1")
    first.persist("topic+0+0", ["src\0id-1"])
    second = SeenLog(store, "state", "fn")
    assert second.load() == 1
    assert second.seen("src\0id-1") and not second.seen("src\0id-2")
