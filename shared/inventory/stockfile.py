"""Partner stock files, read as a stream: one :class:`StockReported` (or one reason) per line.

A file is CSV (``.csv``) or newline-delimited JSON (``.ndjson``, ``.jsonl``), optionally gzipped
(``.gz``). It is read through a bounded ``readline``, so memory stays flat whatever the file's
size and a runaway line (a binary blob, a missing newline) costs at most ``max_line_length``
characters before it is skipped as a bad line. One record per physical line: a quoted CSV field
may not span lines (no stock field has a reason to).

Problems with a line are answered with the line number and a reason naming the field
(``on_hand: Input should be greater than or equal to 0``); problems with the file as a whole (no
header, unknown columns, not gzip) raise :class:`StockFileError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, BinaryIO, Literal

from pydantic import ValidationError

from events.inventory import StockReported
from shared.platform.errors import PermanentError

Format = Literal["csv", "ndjson"]

COLUMNS = (
    "partner_sku",
    "location_id",
    "region",
    "on_hand",
    "reserved",
    "incoming",
    "unit",
    "units_per_pack",
    "reported_at",
    "sequence",
)
"""CSV columns a partner may send, in the documented order (any order is accepted)."""
REQUIRED_COLUMNS = ("partner_sku", "location_id", "region", "on_hand", "reported_at")
OPTIONAL_PARTNER_COLUMN = "partner_id"
"""May be present; when filled it must name the partner whose folder the file is in."""

MAX_LINE_LENGTH = 64 * 1024
"""Characters per line, without its line break."""

_SUFFIXES: dict[str, Format] = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape turns undecodable bytes into

ParsedLine = tuple[int, StockReported | str]
"""``(line_number, StockReported)`` for a good line, ``(line_number, reason)`` for a bad one."""


class StockFileError(PermanentError):
    """The file as a whole cannot be read (no header, unknown columns, corrupt gzip, ...)."""

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


def stock_file_format(key: str) -> tuple[Format, bool] | None:
    """``(format, gzipped)`` for a stock file's key, or ``None`` if the key is not one."""
    name = key.rsplit("/", 1)[-1].lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return fmt, gzipped
    return None


def parse_stock_file(
    stream: BinaryIO,
    *,
    key: str,
    partner_id: str,
    max_line_length: int = MAX_LINE_LENGTH,
) -> Iterator[ParsedLine]:
    """Every non-blank line of the stock file ``key`` as ``(line_number, StockReported | reason)``.

    ``partner_id`` is the partner the file belongs to (from its path); lines are stamped with it
    and a line naming another partner is rejected. Line numbers count physical lines from 1,
    header and blank lines included, so they match what the partner sees in an editor.
    Raises :class:`StockFileError` for a file that cannot be read at all.
    """
    kind = stock_file_format(key)
    if kind is None:
        raise StockFileError(f"{key!r} is not a stock file (.csv, .ndjson or .jsonl, maybe .gz)")
    fmt, gzipped = kind
    raw: BinaryIO = stream
    if gzipped:
        raw = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]  # reads as one
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _lines(text, max_line_length)
    try:
        if fmt == "csv":
            yield from _csv_records(lines, partner_id, max_line_length)
        else:
            yield from _ndjson_records(lines, partner_id, max_line_length)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise StockFileError(f"cannot read the file: {error}") from None


# --- lines ----------------------------------------------------------------------------------


def _lines(text: io.TextIOWrapper, limit: int) -> Iterator[tuple[int, str | None]]:
    """``(number, line without its break)``; ``None`` for a line longer than ``limit``."""
    number = 0
    while True:
        line = text.readline(limit + 2)  # room for "\r\n"
        if not line:
            return
        number += 1
        ended = line.endswith(("\n", "\r"))
        body = line.rstrip("\r\n")
        if len(body) > limit:
            while not ended:  # drop the rest of the line, a bounded piece at a time
                rest = text.readline(limit)
                if not rest:
                    break
                ended = rest.endswith(("\n", "\r"))
            yield number, None
            continue
        yield number, body


# --- CSV ------------------------------------------------------------------------------------


def _csv_records(
    lines: Iterator[tuple[int, str | None]], partner_id: str, limit: int
) -> Iterator[ParsedLine]:
    columns: list[str] | None = None
    for number, line in lines:
        if line is None:
            if columns is None:
                raise StockFileError("the header row is longer than the line limit", line=number)
            yield number, f"line: longer than {limit} characters"
            continue
        if not line.strip():
            continue
        if _NOT_UTF8.search(line):
            if columns is None:
                raise StockFileError("the header row is not valid UTF-8", line=number)
            yield number, "line: not valid UTF-8"
            continue
        try:
            row = _split_csv(line)
        except csv.Error as error:
            if columns is None:
                raise StockFileError(f"the header row is not valid CSV ({error})", line=number)
            yield number, f"line: not valid CSV ({error})"
            continue
        if columns is None:
            columns = _header(row, number)
            continue
        if len(row) != len(columns):
            yield number, f"line: expected {len(columns)} fields as in the header, got {len(row)}"
            continue
        # An empty cell is an absent value: the optional fields take their defaults.
        fields = {name: value.strip() for name, value in zip(columns, row) if value.strip()}
        yield number, _stock_report(fields, partner_id)
    if columns is None:
        raise StockFileError("the file is empty: a CSV stock file starts with a header row")


def _split_csv(line: str) -> list[str]:
    return next(csv.reader((line,), strict=True))


def _header(row: list[str], number: int) -> list[str]:
    names = [cell.strip().lower() for cell in row]
    known = set(COLUMNS) | {OPTIONAL_PARTNER_COLUMN}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise StockFileError(
            f"unknown column(s) {', '.join(repr(n) for n in unknown)} in the header; "
            f"expected {', '.join(COLUMNS)}",
            line=number,
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise StockFileError(
            f"column(s) {', '.join(map(repr, repeated))} appear more than once", line=number
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise StockFileError(
            f"missing required column(s) {', '.join(map(repr, missing))}", line=number
        )
    return names


# --- NDJSON ---------------------------------------------------------------------------------


def _ndjson_records(
    lines: Iterator[tuple[int, str | None]], partner_id: str, limit: int
) -> Iterator[ParsedLine]:
    for number, line in lines:
        if line is None:
            yield number, f"line: longer than {limit} characters"
            continue
        if not line.strip():
            continue
        if _NOT_UTF8.search(line):
            yield number, "line: not valid UTF-8"
            continue
        try:
            fields = json.loads(line, parse_float=Decimal)  # keep 2.125 exact
        except ValueError as error:
            yield number, f"line: not valid JSON ({error})"
            continue
        except RecursionError:  # the parser recurses per bracket: a line of them is a bad line
            yield number, "line: not valid JSON (nested too deeply)"
            continue
        if not isinstance(fields, dict):
            yield number, f"line: expected a JSON object, got {type(fields).__name__}"
            continue
        yield number, _stock_report(fields, partner_id)


# --- both -----------------------------------------------------------------------------------


def _stock_report(fields: dict[str, Any], partner_id: str) -> StockReported | str:
    named = fields.get(OPTIONAL_PARTNER_COLUMN)
    if named not in (None, "", partner_id):
        return (
            f"partner_id: the line names partner {named!r}, but the file is in the folder "
            f"of partner {partner_id!r}"
        )
    try:
        return StockReported.model_validate({**fields, "partner_id": partner_id})
    except ValidationError as error:
        return reason_of(error)


def reason_of(error: ValidationError) -> str:
    """``field: message; field: message`` (a whole-line rule has no field: ``line: message``)."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(loc) for loc in item["loc"]) or "line"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
