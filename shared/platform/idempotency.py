"""``Idempotency-Key`` for HTTP writes: a retried request gets the first answer, not a second effect.

A request with a key first *reserves* it, before it has any effect: a create-only claim in the
state database (a row of ``claims``, with an expiry) under the caller's scope and key, holding a
hash of the request and the state "in progress". Exactly one of several concurrent requests with
the same key wins the reservation; the others are answered at once, as
``draft-ietf-httpapi-idempotency-key-header`` asks: 409 (with ``Retry-After``) while an identical
request is in progress, 422 when the key was used for a different request. When the write succeeds,
the claim keeps its answer, and a retry with the same key and request gets that answer; when it
fails, the reservation is released so that the retry can go through. A holder that died mid-request
frees the key after :data:`LEASE`; functions derive their event ids from the key, so the identical
request that takes over publishes the same ids, which consumers drop as duplicates. A database that
cannot be reached raises :class:`~shared.integration.state.StateUnavailable` (the caller answers
503).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.platform.adapters import get_claim_store
from shared.platform.problems import Problem, bad_request, problem_type

HEADER = "idempotency-key"
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")
TTL = timedelta(hours=24)
LEASE = timedelta(seconds=60)
"""How long a request holds its reserved key without finishing; after that (its process died,
say) an identical request may take over."""
RETRY_AFTER_S = 1
_IN_PROGRESS = "in progress"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: Any


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's key, or ``None``; a malformed key is a 400."""
    value = headers.get(HEADER)
    if value is None:
        return None
    value = value.strip().strip('"')
    if not _VALID.match(value):
        raise bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return value


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


@dataclass(frozen=True)
class Reservation:
    """A key this request holds while it works: :meth:`Idempotency.complete` or
    :meth:`Idempotency.release` it."""

    key: str
    fingerprint: str
    version: str


class Idempotency:
    def __init__(self, scope: str) -> None:
        self.scope = f"http/{scope}"
        self._claims = get_claim_store(ttl=TTL)

    def begin(self, key: str, fingerprint: str) -> StoredAnswer | Reservation:
        """Reserve ``key`` for the request hashed as ``fingerprint``, before it has any effect.

        Answers the :class:`Reservation`, or the :class:`StoredAnswer` of an earlier identical
        request. Raises a 422 :class:`Problem` if the key was used for a different request, a
        409 with ``Retry-After`` while an identical request still holds it.
        """
        reservation = {
            "fingerprint": fingerprint,
            "state": _IN_PROGRESS,
            "lease_until": (datetime.now(UTC) + LEASE).isoformat(),
        }
        for _ in range(3):  # each turn loses only to a claim that changed under it
            version = self._claims.claim_version(self.scope, key, reservation)
            if version is not None:
                return Reservation(key, fingerprint, version)
            entry = self._claims.lookup_version(self.scope, key)
            if entry is None:
                continue  # released or expired since: claim it again
            doc, version = entry
            value = doc["value"]
            if value["fingerprint"] != fingerprint:
                raise Problem(
                    422,
                    "Idempotency-Key reused",
                    "This Idempotency-Key was already used with a different request",
                    type=problem_type("idempotency-key-reused"),
                )
            if value.get("state") != _IN_PROGRESS:
                return StoredAnswer(value["status"], value["body"])
            if datetime.fromisoformat(value["lease_until"]) > datetime.now(UTC):
                break
            # Its holder gave up without finishing or releasing: take over, unless another did.
            version = self._claims.replace(self.scope, key, reservation, version=version)
            if version is not None:
                return Reservation(key, fingerprint, version)
        raise Problem(
            409,
            "Idempotency-Key in use",
            "A request with this Idempotency-Key is still in progress; retry after "
            "Retry-After seconds",
            type=problem_type("idempotency-key-in-use"),
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    def complete(self, reservation: Reservation, status: int, body: Any) -> None:
        """Keep the answer of the reserved request, for its retries."""
        # If an identical request took the key over meanwhile, the replace is refused and that
        # request keeps its own answer, which names the same event ids.
        self._claims.replace(
            self.scope,
            reservation.key,
            {
                "fingerprint": reservation.fingerprint,
                "state": "done",
                "status": status,
                "body": json.loads(json.dumps(body, default=str)),
            },
            version=reservation.version,
        )

    def release(self, reservation: Reservation) -> None:
        """Give the key up after a failed request, so that its retry is not refused."""
        self._claims.release(self.scope, reservation.key, version=reservation.version)
