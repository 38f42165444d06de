"""Ingest one partner stock file (one object version) into ``inventory.stock-reported``, once.

The file is streamed; good lines are published in chunks. After each chunk is durably on the bus a
progress object in the state bucket records the last line covered, written with compare-and-swap:

* a second trigger for a finished version does nothing;
* a run that crashed is resumed after its last checkpoint (the file is re-read from the top, so
  the report still counts every line, but only later lines are published);
* the one chunk a crash can repeat (published, checkpoint not yet written) carries the same
  event ids, ``sha256(bucket, key, etag, line)``, and source ``/cos/{bucket}/{key}``, so
  consumers drop it on (source, id);
* a run that finds the progress object rewritten by another run stops: that run carries on.

Each version (ETag) of a key is a drop of its own, with its own progress object and event ids:
an overwritten file is ingested again, and its lines correct the earlier version's (equal
``sequence``/``reported_at`` with other numbers is a correction, see ``decide``). A version is
delivered only once it has settled (:mod:`shared.runtime.cos_trigger`), so a file that another
program is still writing is not read half-way.

Bad lines never stop the file; they are listed in a report object beside the drop
(``{key}.report.json``). A file that cannot be read at all gets a report with its ``error``.
A line whose partner SKU the partner never introduced is a bad line too (it could only be
refused later, where the partner would not see it); the catalog is asked once per distinct SKU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict

from events.envelope import Event, new_event
from events.inventory import StockReported
from events.platform import ObjectChanged
from shared.integration.objectstore.port import ObjectNotFound, ObjectStore, PreconditionFailed
from shared.inventory.catalog import ProductCatalog
from shared.inventory.rules import InventoryRuleViolation, check_not_ahead
from shared.inventory.stockfile import StockFileError, parse_stock_file, stock_file_format
from shared.platform.errors import PermanentError

log = logging.getLogger("retailfn.ingest_stock_file")

CHUNK_SIZE = 1000
"""Events per publish and per checkpoint: at most this many are repeated after a crash."""
MAX_REPORTED_LINES = 10_000
KNOWN_SKUS_CACHED = 100_000
"""Distinct partner SKUs per file whose catalog answer is kept (memory stays bounded)."""
REPORT_SUFFIX = ".report.json"
PROGRESS_PREFIX = "ingest/stock-files"

_PARTNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # events.fields.Identifier

Publish = Callable[[Sequence[Event[StockReported]]], object]
Status = Literal["ingested", "failed", "already_done", "ignored", "skipped", "superseded"]


@dataclass(frozen=True)
class FileVersion:
    bucket: str
    key: str
    etag: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.bucket}\0{self.key}\0{self.etag}".encode()).hexdigest()

    @property
    def source(self) -> str:
        return f"/cos/{self.bucket}/{self.key}"


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one trigger, for the function's log line and the tests."""

    status: Status
    reason: str = ""
    lines_total: int = 0
    lines_published: int = 0
    lines_rejected: int = 0
    published_now: int = 0
    """Events this run put on the bus (a resumed run publishes only the rest)."""
    report_key: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if value not in ("", None)}


def partner_of(key: str) -> str | None:
    """The partner a dropped file belongs to: the first segment of ``{partner}/.../file``."""
    head, sep, _ = key.partition("/")
    return head if sep and _PARTNER.match(head) else None


def event_id(version: FileVersion, line: int) -> str:
    """The id of the event for one line of one file version: the same on every run."""
    return hashlib.sha256(
        f"{version.bucket}\0{version.key}\0{version.etag}\0{line}".encode()
    ).hexdigest()[:32]


def stock_event(report: StockReported, version: FileVersion, line: int) -> Event[StockReported]:
    return new_event(
        report, source=version.source, subject=f"line/{line}", id=event_id(version, line)
    )


def ingest_stock_drop(
    change: ObjectChanged,
    *,
    store: ObjectStore,
    state_bucket: str,
    publish: Publish,
    chunk_size: int = CHUNK_SIZE,
    max_future_skew: timedelta | None = None,
) -> IngestOutcome:
    """Publish every good line of the dropped file once; write its report. See the module doc.

    With ``max_future_skew``, a line dated more than that after the file is read is a bad line
    (``ingest_stock`` would refuse it where the partner cannot see it)."""
    if not isinstance(change, ObjectChanged):
        raise PermanentError(f"expected an object-storage event, got {type(change).__name__}")
    if change.operation != "write":
        return IngestOutcome("ignored", "a delete")
    if stock_file_format(change.key) is None:
        return IngestOutcome("ignored", "not a stock file (.csv, .ndjson, .jsonl, maybe .gz)")
    try:
        with store.open(change.bucket, change.key) as (info, stream):
            wanted = (change.etag or info.etag).strip('"')
            if info.etag != wanted:
                # Overwritten since the event: the newer version has an event of its own.
                return IngestOutcome("skipped", f"object is now version {info.etag}, not {wanted}")
            version = FileVersion(change.bucket, change.key, info.etag)
            progress = Checkpoint.begin(store, state_bucket, version)
            if progress is None:
                return IngestOutcome("already_done", report_key=change.key + REPORT_SUFFIX)
            return _ingest(
                stream,
                version,
                progress,
                store,
                publish,
                chunk_size,
                ProductCatalog(store, state_bucket),
                max_future_skew,
            )
    except ObjectNotFound:
        return IngestOutcome("skipped", "object no longer exists")
    except Superseded as lost:
        return IngestOutcome("superseded", str(lost))


def _ingest(
    stream: BinaryIO,
    version: FileVersion,
    progress: Checkpoint,
    store: ObjectStore,
    publish: Publish,
    chunk_size: int,
    catalog: ProductCatalog,
    max_future_skew: timedelta | None = None,
) -> IngestOutcome:
    report = Report(version)
    resume_after = progress.lines_done
    log.info(
        "ingesting stock file",
        extra={
            "bucket": version.bucket,
            "key": version.key,
            "etag": version.etag,
            "resume_after_line": resume_after,
            "attempt": progress.attempts,
        },
    )
    chunk: list[Event[StockReported]] = []
    published_now = 0

    def flush(through_line: int) -> None:
        nonlocal chunk, published_now
        if chunk:
            publish(chunk)
            published_now += len(chunk)
            chunk = []
            progress.advance(through_line, report)

    partner = partner_of(version.key)
    try:
        if partner is None:
            raise StockFileError("a stock file must be in its partner's folder: {partner}/...")
        known = _known_skus(catalog, partner)
        read_at = datetime.now(UTC)
        for line, parsed in parse_stock_file(stream, key=version.key, partner_id=partner):
            if isinstance(parsed, str):
                report.reject(line, parsed)
                continue
            if not known(parsed.partner_sku):
                report.reject(line, unknown_sku_reason(partner, parsed.partner_sku))
                continue
            if max_future_skew is not None:
                try:
                    check_not_ahead(parsed.reported_at, read_at, max_future_skew)
                except InventoryRuleViolation as ahead:
                    report.reject(line, str(ahead))
                    continue
            report.accept(line)
            if line > resume_after:
                chunk.append(stock_event(parsed, version, line))
                if len(chunk) >= chunk_size:
                    flush(line)
        flush(report.last_good_line)
    except StockFileError as error:
        # Lines before the damage were good and are kept; the report says where reading stopped.
        flush(report.last_good_line)
        report.error = str(error)
    report_key = report.save(store)
    progress.finish(report)
    return IngestOutcome(
        "failed" if report.error else "ingested",
        report.error or "",
        report.lines_total,
        report.lines_published,
        report.lines_rejected,
        published_now,
        report_key,
    )


def unknown_sku_reason(partner: str, partner_sku: str) -> str:
    return (
        f"partner_sku: {partner_sku!r} is not in the catalog for partner {partner!r}; "
        f"introduce the product first (POST /v1/partners/{partner}/products), then drop "
        "the line again"
    )


def _known_skus(catalog: ProductCatalog, partner: str) -> Callable[[str], bool]:
    """Whether the partner introduced a SKU, asked once per distinct SKU of this file."""

    @lru_cache(maxsize=KNOWN_SKUS_CACHED)
    def known(partner_sku: str) -> bool:
        return catalog.sku_for(partner, partner_sku) is not None

    return known


# --- the report -------------------------------------------------------------------------------


@dataclass
class Report:
    version: FileVersion
    lines_published: int = 0
    lines_rejected: int = 0
    last_good_line: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def lines_total(self) -> int:
        return self.lines_published + self.lines_rejected

    def accept(self, line: int) -> None:
        self.lines_published += 1
        self.last_good_line = line

    def reject(self, line: int, reason: str) -> None:
        self.lines_rejected += 1
        if len(self.rejected) < MAX_REPORTED_LINES:
            self.rejected.append({"line": line, "reason": reason})

    def document(self) -> dict[str, Any]:
        return {
            "bucket": self.version.bucket,
            "key": self.version.key,
            "etag": self.version.etag,
            "partner_id": partner_of(self.version.key),
            "status": "failed" if self.error else "ingested",
            "error": self.error,
            "lines_total": self.lines_total,
            "lines_published": self.lines_published,
            "lines_rejected": self.lines_rejected,
            "rejected": self.rejected,
            "truncated": self.lines_rejected > len(self.rejected),
            "finished_at": _now(),
        }

    def save(self, store: ObjectStore) -> str:
        key = self.version.key + REPORT_SUFFIX
        body = json.dumps(self.document(), ensure_ascii=False, indent=1).encode()
        store.put(
            self.version.bucket,
            key,
            body,
            content_type="application/json",
            metadata={"source-etag": self.version.etag},
        )
        return key


# --- progress ---------------------------------------------------------------------------------


class Superseded(Exception):
    """Another run rewrote the progress object: it carries on, this one stops."""


class Progress(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bucket: str
    key: str
    etag: str
    status: Literal["running", "done"] = "running"
    lines_done: int = 0
    """Every good line up to this one is durably on the bus."""
    lines_published: int = 0
    lines_rejected: int = 0
    error: str | None = None
    run_id: str
    attempts: int = 1
    started_at: str
    updated_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Checkpoint:
    """This run's hold on the progress object of one file version (compare-and-swap on its ETag)."""

    def __init__(
        self, store: ObjectStore, bucket: str, key: str, progress: Progress, etag: str
    ) -> None:
        self._store, self._bucket, self._key = store, bucket, key
        self._progress, self._etag = progress, etag

    @property
    def lines_done(self) -> int:
        return self._progress.lines_done

    @property
    def attempts(self) -> int:
        return self._progress.attempts

    @classmethod
    def begin(cls, store: ObjectStore, bucket: str, version: FileVersion) -> Checkpoint | None:
        """Take the version's progress over (a new run, or a resumed one); ``None`` if done."""
        key = f"{PROGRESS_PREFIX}/{version.digest}.json"
        now, run_id = _now(), uuid.uuid4().hex
        fresh = Progress(
            bucket=version.bucket,
            key=version.key,
            etag=version.etag,
            run_id=run_id,
            started_at=now,
            updated_at=now,
        )
        try:
            info = store.put(
                bucket, key, _encode(fresh), content_type="application/json", if_none_match=True
            )
            return cls(store, bucket, key, fresh, info.etag)
        except PreconditionFailed:
            pass
        try:
            current = store.get(bucket, key)
        except ObjectNotFound:  # removed between the two calls: start over
            return cls.begin(store, bucket, version)
        earlier = Progress.model_validate_json(current.body)
        if earlier.status == "done":
            return None
        resumed = earlier.model_copy(
            update={"run_id": run_id, "attempts": earlier.attempts + 1, "updated_at": now}
        )
        try:
            info = store.put(
                bucket,
                key,
                _encode(resumed),
                content_type="application/json",
                if_match=current.info.etag,
            )
        except PreconditionFailed:
            raise Superseded("another run took the file over as this one started") from None
        log.info(
            "resuming stock file",
            extra={
                "key": version.key,
                "etag": version.etag,
                "lines_done": earlier.lines_done,
                "attempt": resumed.attempts,
            },
        )
        return cls(store, bucket, key, resumed, info.etag)

    def advance(self, lines_done: int, report: Report) -> None:
        self._write(
            lines_done=lines_done,
            lines_published=report.lines_published,
            lines_rejected=report.lines_rejected,
        )

    def finish(self, report: Report) -> None:
        self._write(
            status="done",
            lines_published=report.lines_published,
            lines_rejected=report.lines_rejected,
            error=report.error,
        )

    def _write(self, **changes: Any) -> None:
        updated = self._progress.model_copy(update={**changes, "updated_at": _now()})
        try:
            info = self._store.put(
                self._bucket,
                self._key,
                _encode(updated),
                content_type="application/json",
                if_match=self._etag,
            )
        except PreconditionFailed:
            raise Superseded("another run took the file over; it carries on") from None
        self._progress, self._etag = updated, info.etag


def _encode(progress: Progress) -> bytes:
    return progress.model_dump_json().encode()
