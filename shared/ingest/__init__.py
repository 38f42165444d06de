"""Bulk ingestion of partners' files: stream, validate line by line, publish once, report."""

from shared.ingest.stock_drop import (
    CHUNK_SIZE,
    REPORT_SUFFIX,
    IngestOutcome,
    event_id,
    ingest_stock_drop,
    partner_of,
)
from shared.ingest.stockfile import (
    COLUMNS,
    MAX_LINE_LENGTH,
    REQUIRED_COLUMNS,
    StockFileError,
    parse_stock_file,
    stock_file_format,
)

__all__ = [
    "CHUNK_SIZE",
    "COLUMNS",
    "MAX_LINE_LENGTH",
    "REPORT_SUFFIX",
    "REQUIRED_COLUMNS",
    "IngestOutcome",
    "StockFileError",
    "event_id",
    "ingest_stock_drop",
    "parse_stock_file",
    "partner_of",
    "stock_file_format",
]
