"""``Idempotency-Key`` for HTTP writes: a retried request gets the first answer, not a second effect.

The first successful answer is kept in the state bucket (create-only, with an expiry) under the
caller's scope and key, together with a hash of the request. A retry with the same key and the same
request is answered from there; the same key with a different request is a 422, as the IETF draft
``draft-ietf-httpapi-idempotency-key-header`` asks. Functions also derive their event ids from the
key, so two copies racing past the lookup publish the same ids, which consumers drop as duplicates.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.adapters import bucket, get_store
from shared.problems import Problem, bad_request, problem_type
from shared.runtime.dedup import ClaimStore

HEADER = "idempotency-key"
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")
TTL = timedelta(hours=24)


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: Any


def idempotency_key(headers: Any) -> str | None:
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


class Idempotency:
    def __init__(self, scope: str) -> None:
        self.scope = f"http/{scope}"
        self._claims = ClaimStore(get_store(), bucket("state"), ttl=TTL)

    def previous(self, key: str, fingerprint: str) -> StoredAnswer | None:
        doc = self._claims.lookup(self.scope, key)
        if doc is None:
            return None
        value = doc["value"]
        if value["fingerprint"] != fingerprint:
            raise Problem(422, "Idempotency-Key reused",
                          "This Idempotency-Key was already used with a different request",
                          type=problem_type("idempotency-key-reused"))
        return StoredAnswer(value["status"], value["body"])

    def remember(self, key: str, fingerprint: str, status: int, body: Any) -> None:
        self._claims.claim(self.scope, key, {"fingerprint": fingerprint, "status": status,
                                             "body": json.loads(json.dumps(body, default=str))})
