"""The partner stock file parser, on in-memory bytes."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from events.inventory import StockReported
from shared.inventory.stockfile import COLUMNS, StockFileError, parse_stock_file, stock_file_format

HEADER = ",".join(COLUMNS)
GOOD = "YM-1,LOC-1,eu,12,2,0,each,,2026-11-27T10:00:00+01:00,7"


def parse(text: str | bytes, key: str = "acme/2026-11-27/stock.csv", **kw: object) -> list:
    data = text.encode() if isinstance(text, str) else text
    return list(parse_stock_file(io.BytesIO(data), key=key, partner_id="acme", **kw))


def bad_lines(text: str | bytes, **kw: object) -> dict[int, str]:
    return {n: r for n, r in parse(text, **kw) if isinstance(r, str)}


def csv_file(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def test_a_good_csv_line_becomes_a_stock_report_of_the_folders_partner() -> None:
    [(line, report)] = parse(csv_file(GOOD))
    assert line == 2
    assert report == StockReported(
        partner_id="acme",
        partner_sku="YM-1",
        location_id="LOC-1",
        region="eu",
        on_hand=Decimal(12),
        reserved=Decimal(2),
        incoming=Decimal(0),
        unit="each",
        reported_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        sequence=7,
    )


def test_only_the_required_columns_are_needed_and_empty_cells_take_defaults() -> None:
    text = (
        "partner_sku,location_id,region,on_hand,reported_at,unit\n"
        "YM-1,LOC-1,na,3.5,2026-11-27T10:00:00Z,\n"
    )
    [(_, report)] = parse(text)
    assert (report.on_hand, report.reserved, report.unit, report.sequence) == (
        Decimal("3.5"),
        Decimal(0),
        "each",
        None,
    )


def test_header_names_are_trimmed_and_case_insensitive_in_any_order() -> None:
    text = (
        " Region ,ON_HAND,Partner_SKU,location_id,Reported_At\n"
        "eu,4,YM-1,LOC-1,2026-11-27T10:00:00Z\n"
    )
    [(_, report)] = parse(text)
    assert (report.region, report.on_hand, report.partner_sku) == ("eu", Decimal(4), "YM-1")


def test_ndjson_lines_are_parsed_with_exact_decimals() -> None:
    line = {
        "partner_sku": "YM-1",
        "location_id": "LOC-1",
        "region": "asia",
        "on_hand": 2.125,
        "unit": "kg",
        "reported_at": "2026-11-27T10:00:00Z",
    }
    for key in ("acme/stock.ndjson", "acme/stock.jsonl"):
        [(n, report)] = parse(json.dumps(line) + "\n", key=key)
        assert (n, report.on_hand, report.unit) == (1, Decimal("2.125"), "kg")


def test_gzipped_files_are_streamed_through_gzip() -> None:
    data = gzip.compress(csv_file(GOOD, GOOD.replace("YM-1", "YM-2")).encode())
    assert [r.partner_sku for _, r in parse(data, key="acme/stock.csv.gz")] == ["YM-1", "YM-2"]


def test_a_corrupt_gzip_is_a_file_error() -> None:
    with pytest.raises(StockFileError, match="cannot read"):
        parse(b"not gzip at all", key="acme/stock.csv.gz")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            "YM-1,LOC-1,eu,-1,0,0,each,,2026-11-27T10:00:00Z,1",
            "on_hand: Input should be greater than or equal to 0",
        ),
        ("YM-1,LOC-1,eu,,0,0,each,,2026-11-27T10:00:00Z,1", "on_hand: Field required"),
        ("YM-1,LOC-1,eu,1,0,0,each,,27/11/2026,1", "reported_at: Input should be a valid datetime"),
        (
            "YM-1,LOC-1,eu,1,0,0,each,,2026-11-27T10:00:00,1",
            "reported_at: Input should have timezone info",
        ),
        ("YM-1,LOC-1,eu,1,0,0,crate,,2026-11-27T10:00:00Z,1", "unit: Input should be 'each'"),
        (
            "YM-1,LOC-1,eu,1,0,0,pack,,2026-11-27T10:00:00Z,1",
            "line: units_per_pack is required when unit is 'pack'",
        ),
        ("YM-1,LOC-1,mars,1,0,0,each,,2026-11-27T10:00:00Z,1", "region: Input should be 'na'"),
        ("YM-1,LOC-1,eu,1", "line: expected 10 fields as in the header, got 4"),
        ('YM-1,"LOC-1,eu,1,0,0,each,,2026-11-27T10:00:00Z,1', "line: not valid CSV"),
    ],
)
def test_a_bad_line_is_reported_with_its_number_and_a_reason_naming_the_field(
    row: str, reason: str
) -> None:
    results = parse(csv_file(GOOD, row, GOOD))
    assert [n for n, r in results if isinstance(r, StockReported)] == [2, 4]
    [(line, got)] = [(n, r) for n, r in results if isinstance(r, str)]
    assert line == 3
    assert got.startswith(reason), got


def test_a_bad_ndjson_line_is_reported_and_the_rest_still_parse() -> None:
    good = json.dumps(
        {
            "partner_sku": "YM-1",
            "location_id": "LOC-1",
            "region": "eu",
            "on_hand": 1,
            "reported_at": "2026-11-27T10:00:00Z",
        }
    )
    text = (
        "\n".join([good, "{not json", "[1, 2]", good.replace('"eu"', '"eu", "color": "red"'), good])
        + "\n"
    )
    bad = bad_lines(text, key="acme/stock.ndjson")
    assert bad[2].startswith("line: not valid JSON")
    assert bad[3] == "line: expected a JSON object, got list"
    assert bad[4] == "color: Extra inputs are not permitted"
    assert [n for n, r in parse(text, key="acme/stock.ndjson") if not isinstance(r, str)] == [1, 5]


def test_an_ndjson_line_of_nested_brackets_is_one_bad_line_and_the_rest_still_parse() -> None:
    good = json.dumps(
        {
            "partner_sku": "YM-1",
            "location_id": "LOC-1",
            "region": "eu",
            "on_hand": 1,
            "reported_at": "2026-11-27T10:00:00Z",
        }
    )
    text = "\n".join([good, "[" * 60_000, good]) + "\n"

    assert bad_lines(text, key="acme/stock.ndjson") == {
        2: "line: not valid JSON (nested too deeply)"
    }
    assert [n for n, r in parse(text, key="acme/stock.ndjson") if not isinstance(r, str)] == [1, 3]


def test_an_unknown_column_is_a_file_error_naming_it() -> None:
    with pytest.raises(StockFileError, match=r"unknown column\(s\) 'colour', 'size'"):
        parse(HEADER + ",Colour,size\n")


def test_a_missing_required_column_is_a_file_error() -> None:
    with pytest.raises(StockFileError, match="missing required column.*'on_hand'"):
        parse("partner_sku,location_id,region,reported_at\n")


def test_an_empty_csv_is_a_file_error() -> None:
    with pytest.raises(StockFileError, match="empty"):
        parse("\n\n")


def test_a_line_naming_another_partner_is_rejected() -> None:
    text = f"partner_id,{HEADER}\nacme,{GOOD}\nglobex,{GOOD}\n,{GOOD}\n"
    assert bad_lines(text) == {
        3: "partner_id: the line names partner 'globex', but the file "
        "is in the folder of partner 'acme'"
    }
    ndjson = json.dumps(
        {
            "partner_id": "globex",
            "partner_sku": "YM-1",
            "location_id": "LOC-1",
            "region": "eu",
            "on_hand": 1,
            "reported_at": "2026-11-27T10:00:00Z",
        }
    )
    assert list(bad_lines(ndjson, key="acme/s.ndjson")) == [1]


def test_a_byte_order_mark_and_crlf_line_ends_are_tolerated() -> None:
    data = "\ufeff".encode() + csv_file(GOOD).replace("\n", "\r\n").encode()
    [(line, report)] = parse(data)
    assert (line, report.sequence) == (2, 7)


def test_blank_lines_are_skipped_but_still_counted_in_line_numbers() -> None:
    results = parse(f"\n{HEADER}\n\n   \n{GOOD}\n\n")
    assert [(n, type(r).__name__) for n, r in results] == [(5, "StockReported")]


def test_a_huge_line_is_a_bad_line_and_reading_goes_on_after_it() -> None:
    huge = "YM-1,LOC-1,eu," + "9" * 1_000_000
    results = parse(csv_file(GOOD, huge, GOOD), max_line_length=64 * 1024)
    assert [(n, r if isinstance(r, str) else "ok") for n, r in results] == [
        (2, "ok"),
        (3, "line: longer than 65536 characters"),
        (4, "ok"),
    ]


def test_a_huge_last_line_without_a_line_break_is_a_bad_line() -> None:
    results = parse(HEADER + "\n" + "x" * 200, max_line_length=100)
    assert results == [(2, "line: longer than 100 characters")]


def test_invalid_utf8_is_a_bad_line_not_a_crash() -> None:
    data = csv_file(GOOD).encode() + b"YM-\xff,LOC-1,eu,1,0,0,each,,2026-11-27T10:00:00Z,1\n"
    assert bad_lines(data) == {3: "line: not valid UTF-8"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("acme/stock.csv", ("csv", False)),
        ("acme/d/STOCK.CSV.GZ", ("csv", True)),
        ("acme/stock.ndjson", ("ndjson", False)),
        ("acme/stock.jsonl.gz", ("ndjson", True)),
        ("acme/stock.csv.report.json", None),
        ("acme/stock.json", None),
        ("acme/.csv", None),
    ],
)
def test_the_format_comes_from_the_suffix(key: str, expected: object) -> None:
    assert stock_file_format(key) == expected
