"""The partner registry: which CloudEvents sources a partner's own Kafka producers may use.

Layout (bucket ``state``)::

    partners/sources.json   {"sources": {"<source prefix>": "<partner_id>", ...}, "updated_at": ...}

retailfn's own channels need no entry: ``/partners/{p}/...`` (``report_stock``, after it
authenticated ``p``) and ``/cos/{partner-drops}/{p}/...`` (``ingest_stock_file``, a file in ``p``'s
folder) are bound by :func:`shared.inventory.rules.source_partner`. A partner that produces to
``inventory.stock-reported`` directly is bound here, by an operator (``retailfn partners bind``),
to the source prefixes its records carry. A prefix belongs to one partner, may not cover another
partner's prefix, and may not lie under ``/partners/`` or ``/cos/``.

One object, changed with compare-and-swap, so two concurrent binds cannot both take a prefix.
Readers cache it for :data:`CACHE_TTL_S`: **an unbind takes effect within that time** in every
process (at once in the process that made it); a source found unbound re-reads the registry at
most once a second, so a new binding is seen within about a second.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from events.fields import Identifier
from shared.integration.objectstore.port import (
    NoSuchBucket,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from shared.inventory.rules import (
    InventoryRuleViolation,
    check_source_binding,
    reserved_source,
    source_covers,
)

REGISTRY_KEY = "partners/sources.json"
CACHE_TTL_S = 30.0
RELOAD_UNBOUND_AFTER_S = 1.0
MAX_PREFIX_CHARS = 512

_IDENTIFIER = TypeAdapter(Identifier)
log = logging.getLogger("retailfn.partners")
_monotonic = time.monotonic  # the cache's clock; a test may move it


class PartnerBindingError(ValueError):
    """A binding the registry refuses (a reserved or taken prefix, a bad partner id)."""


class PartnerSources(BaseModel):
    """The stored registry document."""

    model_config = ConfigDict(extra="ignore")

    sources: dict[str, str] = Field(default_factory=dict)
    """Source prefix -> partner id."""
    updated_at: datetime | None = None


class PartnerRegistry:
    """Bind partners to the source prefixes of their Kafka producers; say whose a source is."""

    def __init__(self, store: ObjectStore | None = None, bucket: str | None = None) -> None:
        if store is None or bucket is None:
            from shared.platform import adapters

            store = store or adapters.get_store()
            bucket = bucket or adapters.bucket("state")
        self._store = store
        self._bucket = bucket

    # --- reading

    def sources(self) -> dict[str, str]:
        """Every registered prefix and its partner (cached, see the module doc)."""
        return dict(_cache.get(self._store, self._bucket, self._read))

    def check(self, source: str, partner_id: str, *, drops_bucket: str) -> None:
        """Raise :class:`InventoryRuleViolation` (naming both partners) unless ``source`` is bound
        to ``partner_id``, by retailfn's own channels or by this registry."""
        try:
            check_source_binding(
                source, partner_id, drops_bucket=drops_bucket, registered=self.sources()
            )
        except InventoryRuleViolation:
            if not _cache.may_reload(self._store, self._bucket):
                raise
            # Perhaps bound since the cached read: look once more (at most once a second).
            check_source_binding(
                source,
                partner_id,
                drops_bucket=drops_bucket,
                registered=_cache.reload(self._store, self._bucket, self._read),
            )

    # --- writing

    def bind(self, partner_id: str, prefix: str) -> bool:
        """Bind ``prefix`` to ``partner_id``; ``False`` if it already was. Raises
        :class:`PartnerBindingError` for a reserved prefix or one another partner holds."""
        partner_id = _checked_partner(partner_id)
        prefix = _checked_prefix(prefix)
        while True:
            current, etag = self._read_with_etag()
            if current.sources.get(prefix) == partner_id:
                return False
            for theirs, owner in current.sources.items():
                if owner != partner_id and (
                    source_covers(theirs, prefix) or source_covers(prefix, theirs)
                ):
                    raise PartnerBindingError(
                        f"source prefix {prefix!r} overlaps {theirs!r}, which is bound to "
                        f"partner {owner!r}"
                    )
            updated = PartnerSources(
                sources={**current.sources, prefix: partner_id}, updated_at=datetime.now(UTC)
            )
            if self._write(updated, etag):
                return True

    def unbind(self, partner_id: str, prefix: str) -> bool:
        """Remove the binding; ``False`` if ``prefix`` was not bound to ``partner_id``."""
        while True:
            current, etag = self._read_with_etag()
            if current.sources.get(prefix) != partner_id or etag is None:
                return False
            rest = {p: owner for p, owner in current.sources.items() if p != prefix}
            if self._write(PartnerSources(sources=rest, updated_at=datetime.now(UTC)), etag):
                return True

    # --- storage

    def _read(self) -> dict[str, str]:
        try:
            return self._read_with_etag()[0].sources
        except PartnerBindingError:
            # Refuse every producer rather than guess; retailfn's own channels need no registry.
            log.error(
                "the partner registry is unreadable; no partner producer is bound",
                extra={"key": REGISTRY_KEY},
            )
            return {}

    def _read_with_etag(self) -> tuple[PartnerSources, str | None]:
        try:
            stored = self._store.get(self._bucket, REGISTRY_KEY)
        except (ObjectNotFound, NoSuchBucket):
            return PartnerSources(), None
        try:
            return PartnerSources.model_validate_json(stored.body), stored.info.etag
        except ValidationError:
            raise PartnerBindingError(f"{REGISTRY_KEY} is unreadable; fix or remove it") from None

    def _write(self, document: PartnerSources, etag: str | None) -> bool:
        body = document.model_dump_json().encode()
        try:
            if etag is None:
                try:
                    self._store.put(
                        self._bucket,
                        REGISTRY_KEY,
                        body,
                        content_type="application/json",
                        if_none_match=True,
                    )
                except NoSuchBucket:  # a fresh deployment: the state bucket comes with it
                    self._store.create_bucket(self._bucket)
                    self._store.put(
                        self._bucket,
                        REGISTRY_KEY,
                        body,
                        content_type="application/json",
                        if_none_match=True,
                    )
            else:
                self._store.put(
                    self._bucket, REGISTRY_KEY, body, content_type="application/json", if_match=etag
                )
        except PreconditionFailed:
            return False  # another bind or unbind won: decide again on what it wrote
        _cache.forget(self._store, self._bucket)
        return True


def _checked_partner(partner_id: str) -> str:
    try:
        return _IDENTIFIER.validate_python(partner_id)
    except ValidationError:
        raise PartnerBindingError("a partner id is 1-128 of A-Z, a-z, 0-9, '.', '_', '-'") from None


def _checked_prefix(prefix: str) -> str:
    if not prefix or len(prefix) > MAX_PREFIX_CHARS or not prefix.isprintable() or " " in prefix:
        raise PartnerBindingError(
            f"a source prefix is 1-{MAX_PREFIX_CHARS} printable characters without spaces"
        )
    if reserved_source(prefix):
        raise PartnerBindingError(
            f"source prefix {prefix!r} is reserved: /partners/ and /cos/ are retailfn's own "
            "channels (HTTP and file drops) and are bound already"
        )
    return prefix


_Reader = Callable[[], Mapping[str, str]]


class _Cache:
    """The registry of each (store, bucket), for :data:`CACHE_TTL_S`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Weak keys: a store that is gone (a test's, a rebuilt adapter) takes its entries along.
        self._entries: weakref.WeakKeyDictionary[
            ObjectStore, dict[str, tuple[float, Mapping[str, str]]]
        ] = weakref.WeakKeyDictionary()

    def _hit(self, store: ObjectStore, bucket: str) -> tuple[float, Mapping[str, str]] | None:
        with self._lock:
            return self._entries.get(store, {}).get(bucket)

    def get(self, store: ObjectStore, bucket: str, read: _Reader) -> Mapping[str, str]:
        hit = self._hit(store, bucket)
        if hit is not None and _monotonic() - hit[0] < CACHE_TTL_S:
            return hit[1]
        return self.reload(store, bucket, read)

    def may_reload(self, store: ObjectStore, bucket: str) -> bool:
        hit = self._hit(store, bucket)
        return hit is None or _monotonic() - hit[0] >= RELOAD_UNBOUND_AFTER_S

    def reload(self, store: ObjectStore, bucket: str, read: _Reader) -> Mapping[str, str]:
        loaded_at, sources = _monotonic(), read()
        with self._lock:
            self._entries.setdefault(store, {})[bucket] = (loaded_at, sources)
        return sources

    def forget(self, store: ObjectStore, bucket: str) -> None:
        with self._lock:
            self._entries.get(store, {}).pop(bucket, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _Cache()


def reset_partner_cache() -> None:
    """Forget every cached registry (for tests)."""
    _cache.clear()
