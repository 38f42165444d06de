"""Cursor pagination over an object-store prefix, with filtering on the way.

A cursor is opaque to callers: base64url JSON of the store's page token plus the last key handed
out, so a page can end in the middle of a store page (filters drop items) and the next call
resumes right after it, on COS continuation tokens as well as on the local folder.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shared.integration.objectstore.port import ObjectInfo, ObjectStore

T = TypeVar("T")

STORE_PAGE = 200
MAX_LIMIT = 1000


class InvalidCursor(ValueError):
    """A cursor that this listing did not hand out (or that was tampered with)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None
    """Pass back as ``cursor`` for the next page; ``None`` on the last page."""


def encode_cursor(scope: str, token: str | None, after: str) -> str:
    raw = json.dumps({"s": scope, "t": token, "k": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, scope: str) -> tuple[str | None, str | None]:
    """(store token, last key handed out) of a cursor from a listing of ``scope``."""
    if cursor is None:
        return None, None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        token, after = raw["t"], raw["k"]
        valid = (
            raw["s"] == scope
            and isinstance(after, str)
            and (token is None or isinstance(token, str))
        )
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        valid = False
    if not valid:
        raise InvalidCursor("cursor: not a cursor of this listing")
    return token, after


def scan(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    load: Callable[[ObjectInfo], T | None],
    *,
    cursor: str | None = None,
    limit: int = 50,
    scope: str | None = None,
) -> Page[T]:
    """Up to ``limit`` items under ``prefix`` in key order; ``load`` returns None to skip one."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be between 1 and {MAX_LIMIT}")
    scope = scope or prefix
    token, after = decode_cursor(cursor, scope)
    items: list[T] = []
    while True:
        page = store.list_page(bucket, prefix, token=token, limit=STORE_PAGE)
        infos = [info for info in page.items if after is None or info.key > after]
        for position, info in enumerate(infos):
            item = load(info)
            if item is None:
                continue
            items.append(item)
            if len(items) == limit:
                exhausted = position == len(infos) - 1 and page.next_token is None
                return Page(items, None if exhausted else encode_cursor(scope, token, info.key))
        if page.next_token is None:
            return Page(items, None)
        token, after = page.next_token, None
