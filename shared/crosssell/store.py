"""The cross-sell model in object storage: immutable versions behind a compare-and-swap pointer.

Layout in the ``state`` bucket::

    crosssell/current.json                               {"version": "<version>"}
    crosssell/versions/<version>/manifest.json           what the version holds (see Manifest)
    crosssell/versions/<version>/region=<r>.npz          one CrossSellModel per region

A version is written create-only and never changed; a reader follows the pointer to a manifest
and from there to region objects, so it never sees half a model. A fold writes a whole new
version, then swings the pointer with ``If-Match`` on the pointer's ETag; when a concurrent fold
won, it reloads the version that won and folds its baskets into that one instead, so neither
fold's baskets are lost. A region the fold did not touch is not copied: the manifest points at
the object of the version that last changed it.

Exactly-once counting: an archive object is named after its first record (topic, partition,
start offset) and may be rewritten, either with the same bytes (same ETag: a no-op, caught by the
manifest's ``folded`` map of key -> ETag) or with more records (a larger redelivered batch: a new
ETag). Every manifest therefore keeps, per ``topic+partition``, the Kafka offset ranges already
counted, and a fold counts only records outside them. A Kafka offset names one record forever, so
this is exact whatever the overlap between rewritten or re-split objects, and it stays small
(consecutive offsets collapse into one range).

Order identity: a record is not an order. The same order may be published again, with the same
event id or a new one, or also arrive on ``pos.checkout-completed``; each copy is a new record at
a new offset. An order is therefore counted once by its ``order_id``: every version keeps the ids
it counted (:class:`~shared.crosssell.orders.CountedOrders`, ``crosssell/versions/<v>/orders.npy``,
shared with the parent when a fold counted nothing new) and a fold counts only orders not in it.
When copies differ (other lines, region or time), the first copy wins: by record time, then
``topic+partition``, then offset within one archive object and in a rebuild, and the one folded
first across objects folded at different times (the same unless copies that differ are folded out
of record order). Later copies are skipped, whatever their lines.
"""

from __future__ import annotations

import bisect
import json
import logging
import secrets
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.sales import OrderCompleted
from shared.crosssell.orders import CountedOrders, order_keys
from shared.crosssell.rules.cooccurrence import Baskets, CrossSellModel, build, fold
from shared.integration.objectstore.port import ObjectNotFound, ObjectStore, PreconditionFailed
from shared.platform import archive

log = logging.getLogger("retailfn.crosssell")

ORDER_TOPICS = ("sales.order-completed", "pos.checkout-completed")
ORDER_PREFIXES = tuple(f"{archive.PREFIX}{topic}/" for topic in ORDER_TOPICS)
ROOT = "crosssell/"
POINTER = f"{ROOT}current.json"
MAX_ATTEMPTS = 50

FoldOutcome = Literal["folded", "already_folded", "skipped"]


def is_order_archive(key: str) -> bool:
    """Whether ``key`` is an archive object of an order topic (what recalc_cross_sell folds)."""
    return key.startswith(ORDER_PREFIXES) and key.endswith(".ndjson.gz")


class ConcurrentFoldsExhausted(RuntimeError):
    """The pointer moved under every attempt; transient, the runtime retries the event."""


# --- the manifest ----------------------------------------------------------------------------


class RegionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    object: str
    """Key of the region's model (possibly written by an earlier version)."""
    baskets: float
    items: int
    pairs: int


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_days: float | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    parent: str | None = None
    kind: Literal["fold", "rebuild"]
    created_at: datetime
    params: Params = Params()
    regions: dict[str, RegionEntry] = Field(default_factory=dict)
    folded: dict[str, str] = Field(default_factory=dict)
    """Archive objects counted: key -> ETag of the bytes that were read."""
    offsets: dict[str, list[tuple[int, int]]] = Field(default_factory=dict)
    """Per ``topic+partition``: sorted, disjoint, inclusive offset ranges already counted."""
    orders: str | None = None
    """Key of the ids of the orders counted (possibly written by an earlier version); ``None``:
    none yet (a version written before orders were identified counts as none: rebuild it)."""


def _covers(ranges: list[tuple[int, int]], offset: int) -> bool:
    i = bisect.bisect_right(ranges, (offset, float("inf"))) - 1
    return i >= 0 and ranges[i][0] <= offset <= ranges[i][1]


def _with_offsets(
    ranges: Iterable[tuple[int, int]], offsets: Iterable[int]
) -> list[tuple[int, int]]:
    spans = sorted([*ranges, *((o, o) for o in offsets)])
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


# --- reading the order archive ---------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedOrder:
    stream: str
    """``topic+partition``: with ``offset``, the record's identity forever."""
    offset: int
    order_id: str
    """The order's identity: copies of one order share it."""
    timestamp_ms: int
    """The record's Kafka timestamp: which copy of an order came first."""
    region: str
    skus: tuple[str, ...]
    completed_at: float

    @property
    def arrival(self) -> tuple[int, str, int]:
        return self.timestamp_ms, self.stream, self.offset


@dataclass(frozen=True)
class ArchivedOrders:
    key: str
    etag: str
    orders: list[ArchivedOrder]


def read_orders(store: ObjectStore, bucket: str, key: str) -> ArchivedOrders | None:
    """The valid OrderCompleted records of one archive object (streamed); ``None`` if gone."""
    orders, invalid = [], 0
    try:
        with store.open(bucket, key) as (info, stream):
            for line in archive.read_lines(stream):
                if line.get("type") != OrderCompleted.ce_type:
                    continue
                try:
                    order = OrderCompleted.model_validate(line.get("data"))
                    kafka = line["kafka"]
                    stream_id = f"{kafka['topic']}+{int(kafka['partition'])}"
                    offset = int(kafka["offset"])
                    timestamp_ms = int(kafka.get("timestamp_ms") or 0)
                except (ValidationError, KeyError, TypeError, ValueError):
                    invalid += 1
                    continue
                orders.append(
                    ArchivedOrder(
                        stream_id,
                        offset,
                        order.order_id,
                        timestamp_ms,
                        order.region,
                        tuple(line.sku for line in order.lines),
                        order.completed_at.timestamp(),
                    )
                )
    except ObjectNotFound:
        return None
    if invalid:
        log.warning("invalid order records skipped", extra={"key": key, "invalid": invalid})
    return ArchivedOrders(key, info.etag, orders)


def first_copies(orders: Iterable[ArchivedOrder]) -> tuple[list[ArchivedOrder], np.ndarray]:
    """The first copy of each order (by :attr:`ArchivedOrder.arrival`) and its order digest."""
    ordered = sorted(orders, key=lambda o: o.arrival)
    keys = order_keys(o.order_id for o in ordered)
    _, first = np.unique(keys, return_index=True)
    first.sort()
    return [ordered[i] for i in first], keys[first]


def _baskets(orders: list[ArchivedOrder]) -> Baskets:
    # Kafka order, so that two readers of the same records build identical inputs.
    ordered = sorted(orders, key=lambda o: (o.stream, o.offset))
    return Baskets.of([o.skus for o in ordered], [o.completed_at for o in ordered])


# --- the model set readers get ---------------------------------------------------------------


T = TypeVar("T")


class _ModelCache(Generic[T]):
    """Region models (or counted orders) by object key. Objects are immutable, so a cached one
    never goes stale."""

    def __init__(self, load: Callable[[bytes], T], size: int = 16) -> None:
        self._items: OrderedDict[tuple[str, str], T] = OrderedDict()
        self._lock = threading.Lock()
        self._load = load
        self._size = size

    def get(self, store: ObjectStore, bucket: str, key: str) -> T:
        with self._lock:
            if (bucket, key) in self._items:
                self._items.move_to_end((bucket, key))
                return self._items[(bucket, key)]
        model = self._load(store.get(bucket, key).body)
        with self._lock:
            self._items[(bucket, key)] = model
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return model


_models = _ModelCache(CrossSellModel.from_bytes)
_counted = _ModelCache(CountedOrders.from_bytes, size=4)
_manifests: OrderedDict[tuple[str, str], Manifest] = OrderedDict()
_manifests_lock = threading.Lock()


class ModelSet:
    """One published version of the model: every region's counts, as of the same instant."""

    def __init__(self, manifest: Manifest, store: ObjectStore, bucket: str) -> None:
        self.manifest = manifest
        self._store = store
        self._bucket = bucket

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def folded(self) -> dict[str, str]:
        """Archive objects counted in this version: key -> ETag."""
        return self.manifest.folded

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self.manifest.regions))

    def region(self, region: str) -> CrossSellModel:
        """The region's model; an empty one if the region has no orders yet."""
        entry = self.manifest.regions.get(region)
        if entry is None:
            return CrossSellModel.empty(self.manifest.params.half_life_days)
        return _models.get(self._store, self._bucket, entry.object)

    def counted_orders(self) -> CountedOrders:
        """The orders this version counted (see the module's "Order identity")."""
        if self.manifest.orders is None:
            return CountedOrders.empty()
        return _counted.get(self._store, self._bucket, self.manifest.orders)

    def region_bytes(self, region: str) -> bytes:
        return self._store.get(self._bucket, self.manifest.regions[region].object).body

    def __repr__(self) -> str:
        return f"ModelSet(version={self.version!r}, regions={self.regions})"


# --- the store -------------------------------------------------------------------------------


def configured_half_life_days() -> float | None:
    from shared.platform.settings import get_settings

    return get_settings().crosssell_half_life_days


def _new_version(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


class CrossSellStore:
    """Publishes and reads cross-sell model versions in the ``state`` bucket.

    ``half_life_days`` applies to a model started from nothing (the first fold, a rebuild); a
    fold keeps the half-life of the version it folds into. By default it comes from
    ``RETAILFN_CROSSSELL_HALF_LIFE_DAYS`` (unset or empty: no decay).
    """

    def __init__(
        self,
        store: ObjectStore | None = None,
        bucket: str | None = None,
        *,
        half_life_days: float | None | Literal["configured"] = "configured",
    ) -> None:
        if store is None or bucket is None:
            from shared.platform.adapters import bucket as logical_bucket
            from shared.platform.adapters import get_store

            store = store or get_store()
            bucket = bucket or logical_bucket("state")
        self.store = store
        self.bucket = bucket
        if half_life_days == "configured":
            half_life_days = configured_half_life_days()
        self.half_life_days = half_life_days

    # --- reading ---------------------------------------------------------------------------

    def _head(self) -> tuple[ModelSet | None, str | None]:
        try:
            pointer = self.store.get(self.bucket, POINTER)
        except ObjectNotFound:
            return None, None
        version = json.loads(pointer.body)["version"]
        return self.version(version), pointer.info.etag

    def current(self) -> ModelSet | None:
        """The published model, or ``None`` before the first fold or rebuild."""
        return self._head()[0]

    def version(self, version: str) -> ModelSet:
        """A published version (manifests are immutable, so they are cached by version)."""
        cache_key = (self.bucket, version)
        with _manifests_lock:
            manifest = _manifests.get(cache_key)
        if manifest is None:
            body = self.store.get(self.bucket, f"{ROOT}versions/{version}/manifest.json").body
            manifest = Manifest.model_validate_json(body)
            with _manifests_lock:
                _manifests[cache_key] = manifest
                while len(_manifests) > 32:
                    _manifests.popitem(last=False)
        return ModelSet(manifest, self.store, self.bucket)

    # --- housekeeping ----------------------------------------------------------------------

    def prune(self, *, keep: int = 3, grace: timedelta = timedelta(hours=1)) -> list[str]:
        """Delete the objects of old versions; returns the versions removed.

        Kept: the current version and its ``keep - 1`` nearest ancestors, every region model one
        of them still points at (a fold reuses the untouched regions of its parent), and anything
        younger than ``grace`` (a fold in flight may be about to point at it).
        """
        current = self.current()
        if current is None:
            return []
        kept: set[str] = set()
        referenced: set[str] = set()
        version: str | None = current.version
        while version is not None and len(kept) < max(keep, 1):
            manifest = self.version(version).manifest
            kept.add(version)
            referenced.update(entry.object for entry in manifest.regions.values())
            if manifest.orders is not None:
                referenced.add(manifest.orders)
            version = manifest.parent
        horizon = datetime.now(UTC) - grace
        removed: set[str] = set()
        for info in list(self.store.list(self.bucket, f"{ROOT}versions/")):
            name = info.key[len(f"{ROOT}versions/") :].split("/", 1)[0]
            if name in kept or info.key in referenced or info.last_modified > horizon:
                continue
            self.store.delete(self.bucket, info.key)
            removed.add(name)
        return sorted(removed)

    # --- writing ---------------------------------------------------------------------------

    def fold_archive_object(self, bucket: str, key: str, etag: str | None) -> FoldOutcome:
        """Count the orders of one archive object into a new version, exactly once."""
        if not is_order_archive(key):
            return "skipped"
        current, pointer_etag = self._head()
        if current is not None and etag is not None and current.folded.get(key) == etag:
            return "already_folded"
        archived = read_orders(self.store, bucket, key)
        if archived is None or not archived.orders:
            return "skipped"
        for _ in range(MAX_ATTEMPTS):
            if current is not None and current.folded.get(key) == archived.etag:
                return "already_folded"
            manifest = current.manifest if current is not None else None
            counted = manifest.offsets if manifest is not None else {}
            new = [o for o in archived.orders if not _covers(counted.get(o.stream, []), o.offset)]
            if not new:
                return "already_folded"
            # New records may still be copies of orders counted before: count each order once.
            known = current.counted_orders() if current is not None else CountedOrders.empty()
            firsts, keys = first_copies(new)
            fresh_mask = ~known.contains(keys)
            fresh = [o for o, is_fresh in zip(firsts, fresh_mask, strict=True) if is_fresh]
            half_life = manifest.params.half_life_days if manifest else self.half_life_days
            by_region: dict[str, list[ArchivedOrder]] = defaultdict(list)
            for order in fresh:
                by_region[order.region].append(order)
            models = {
                region: fold(
                    current.region(region)
                    if current is not None
                    else CrossSellModel.empty(half_life),
                    _baskets(orders),
                )
                for region, orders in by_region.items()
            }
            offsets = dict(counted)
            for stream in {o.stream for o in new}:
                offsets[stream] = _with_offsets(
                    counted.get(stream, []), (o.offset for o in new if o.stream == stream)
                )
            try:
                # A fold of copies only still records the object and its offsets as seen.
                version = self._publish(
                    kind="fold",
                    parent=current,
                    half_life_days=half_life,
                    models=models,
                    folded={**(manifest.folded if manifest else {}), key: archived.etag},
                    offsets=offsets,
                    pointer_etag=pointer_etag,
                    counted=known.union(keys[fresh_mask]) if fresh else None,
                )
            except PreconditionFailed:
                current, pointer_etag = self._head()  # a concurrent fold won: fold onto it
                continue
            log.info(
                "cross-sell folded",
                extra={
                    "key": key,
                    "etag": archived.etag,
                    "orders": len(fresh),
                    "copies_skipped": len(new) - len(fresh),
                    "version": version,
                    "regions": sorted(models),
                },
            )
            return "folded"
        raise ConcurrentFoldsExhausted(f"pointer kept moving while folding {key!r}")

    def rebuild(self, archive_bucket: str | None = None) -> str:
        """Recount the whole order archive into a new version and publish it; the version."""
        if archive_bucket is None:
            from shared.platform.adapters import bucket as logical_bucket

            archive_bucket = logical_bucket("events-archive")
        for _ in range(MAX_ATTEMPTS):
            current, pointer_etag = self._head()
            folded: dict[str, str] = {}
            seen: dict[tuple[str, int], ArchivedOrder] = {}
            for prefix in ORDER_PREFIXES:
                for info in self.store.list(archive_bucket, prefix):
                    if not is_order_archive(info.key):
                        continue
                    archived = read_orders(self.store, archive_bucket, info.key)
                    if archived is None:
                        continue
                    folded[info.key] = archived.etag
                    for order in archived.orders:
                        seen.setdefault((order.stream, order.offset), order)
            by_region: dict[str, list[ArchivedOrder]] = defaultdict(list)
            offsets: dict[str, list[int]] = defaultdict(list)
            for order in seen.values():
                offsets[order.stream].append(order.offset)
            firsts, keys = first_copies(seen.values())
            for order in firsts:
                by_region[order.region].append(order)
            models = {
                region: build(_baskets(orders), half_life_days=self.half_life_days)
                for region, orders in by_region.items()
            }
            try:
                version = self._publish(
                    kind="rebuild",
                    parent=current,
                    half_life_days=self.half_life_days,
                    models=models,
                    folded=folded,
                    replace=True,
                    offsets={s: _with_offsets([], o) for s, o in offsets.items()},
                    pointer_etag=pointer_etag,
                    counted=CountedOrders.of(keys),
                )
            except PreconditionFailed:
                continue  # a fold landed meanwhile: count again with its object included
            log.info(
                "cross-sell rebuilt",
                extra={
                    "version": version,
                    "objects": len(folded),
                    "orders": len(firsts),
                    "copies_skipped": len(seen) - len(firsts),
                },
            )
            return version
        raise ConcurrentFoldsExhausted("pointer kept moving during the rebuild")

    def _publish(
        self,
        *,
        kind: Literal["fold", "rebuild"],
        parent: ModelSet | None,
        half_life_days: float | None,
        models: dict[str, CrossSellModel],
        folded: dict[str, str],
        offsets: dict[str, list[tuple[int, int]]],
        pointer_etag: str | None,
        replace: bool = False,
        counted: CountedOrders | None = None,
    ) -> str:
        """Write a version create-only, then swing the pointer; PreconditionFailed if it moved.

        ``counted``: the orders the version has counted; ``None`` keeps the parent's object."""
        now = datetime.now(UTC)
        version = _new_version(now)
        base = f"{ROOT}versions/{version}/"
        regions = {} if replace or parent is None else dict(parent.manifest.regions)
        written = []
        try:
            for region, model in sorted(models.items()):
                key = f"{base}region={region}.npz"
                self.store.put(
                    self.bucket,
                    key,
                    model.to_bytes(),
                    content_type="application/octet-stream",
                    if_none_match=True,
                )
                written.append(key)
                regions[region] = RegionEntry(
                    object=key,
                    baskets=float(model.basket_count),
                    items=model.item_total,
                    pairs=model.pair_total,
                )
            orders = parent.manifest.orders if parent is not None and not replace else None
            if counted is not None:
                orders = f"{base}orders.npy"
                self.store.put(
                    self.bucket,
                    orders,
                    counted.to_bytes(),
                    content_type="application/octet-stream",
                    if_none_match=True,
                )
                written.append(orders)
            manifest = Manifest(
                version=version,
                parent=parent.version if parent else None,
                kind=kind,
                created_at=now,
                params=Params(half_life_days=half_life_days),
                regions=regions,
                folded=folded,
                offsets=offsets,
                orders=orders,
            )
            self.store.put(
                self.bucket,
                f"{base}manifest.json",
                manifest.model_dump_json(indent=1).encode(),
                content_type="application/json",
                if_none_match=True,
            )
            written.append(f"{base}manifest.json")
            pointer = json.dumps({"version": version}).encode()
            if pointer_etag is None:
                self.store.put(
                    self.bucket,
                    POINTER,
                    pointer,
                    content_type="application/json",
                    if_none_match=True,
                )
            else:
                self.store.put(
                    self.bucket,
                    POINTER,
                    pointer,
                    content_type="application/json",
                    if_match=pointer_etag,
                )
        except PreconditionFailed:
            for key in written:  # an unpublished version: nobody can have read it
                self.store.delete(self.bucket, key)
            raise
        return version
