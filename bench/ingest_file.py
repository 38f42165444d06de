"""A partner's 1,000,000-line stock file through ingest_stock_file, against a bare CSV read loop.

    .venv/bin/python -m bench.ingest_file [--lines 1000000]

Both run in a fresh subprocess on the embedded adapters (folder store, embedded bus with fsync)
in a temporary data folder, reading the same object from the store. The function parses,
validates, checks each of the file's 5,000 partner SKUs against the catalog once, publishes
every good line (1 in 1,000 lines is bad on purpose) with a checkpoint per chunk, and writes the
report; the baseline only iterates the rows with ``csv.reader``. Each child reports its own peak
RSS (``ru_maxrss``) and the time of the work alone (not interpreter start).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared.inventory.stockfile import COLUMNS

REPO = Path(__file__).resolve().parents[1]
BUCKET = "partner-drops"
KEY = "acme/2026-11-27/stock.csv"
MEMORY_AIM_MB = 300
SKUS = 5000
"""Distinct partner SKUs in the file, each at LOCATIONS locations; all are in the catalog (a line
of a SKU never introduced is a bad line, so the file is what a partner really drops)."""
LOCATIONS = 200


def _peak_rss_mb() -> float:
    # Linux reports KiB, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def generate(path: Path, lines: int) -> int:
    """Write the file; return how many lines are bad (a negative on_hand every 1,000th line)."""
    units = ("each", "kg", "pack")
    bad = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(COLUMNS) + "\n")
        buf = []
        for i in range(lines):
            unit = units[i % 3]
            pack = "12" if unit == "pack" else ""
            on_hand = -1 if i % 1000 == 999 else i % 500
            bad += on_hand < 0
            buf.append(
                f"SKU-{i // LOCATIONS % SKUS:07d},LOC-{i % LOCATIONS:03d},"
                f"{('na', 'eu', 'asia', 'au')[i % 4]},"
                f"{on_hand},{i % 7},{i % 11},{unit},{pack},2026-11-27T10:{i % 60:02d}:00Z,"
                f"{i}\n"
            )
            if len(buf) == 10_000:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))
    return bad


def introduce_products() -> None:
    """Put the file's partner SKUs into the catalog, as the partner would have beforehand."""
    from events.envelope import event_from_sample
    from shared.inventory import ProductCatalog

    sample = event_from_sample("product-introduced").data
    catalog = ProductCatalog()
    for n in range(SKUS):
        catalog.put(
            sample.model_copy(update={"sku": f"BENCH-{n:07d}", "partner_sku": f"SKU-{n:07d}"})
        )


def child_function() -> dict[str, float]:
    from functions.ingest_stock_file.main import ingest_stock_file
    from shared.platform.adapters import get_store
    from shared.runtime.cos_trigger import cos_event

    info = get_store().head(BUCKET, KEY)
    event = cos_event(BUCKET, KEY, "write", info.etag, info.size, "text/csv")
    start = time.perf_counter()
    ingest_stock_file(event)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}


def child_baseline() -> dict[str, float]:
    from shared.platform.adapters import get_store

    start = time.perf_counter()
    rows = 0
    with get_store().open(BUCKET, KEY) as (_, stream):
        for _row in csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline="")):
            rows += 1
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb(), "rows": rows}


def run_child(mode: str, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ingest_file", "--child", mode],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["function", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_function() if args.child == "function" else child_baseline()
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="retailfn-bench-ingest-") as tmp:
        env = {
            **os.environ,
            "RETAILFN_DATA_DIR": str(Path(tmp) / "data"),
            "PYTHONPATH": str(REPO),
            "RETAILFN_LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        from shared.platform.adapters import get_bus, get_store, reset_adapters
        from shared.platform.settings import reset_settings
        from shared.runtime.app import provision

        reset_settings()
        reset_adapters()
        provision(get_bus(), get_store())
        introduce_products()
        source = Path(tmp) / "stock.csv"
        bad = generate(source, args.lines)
        with source.open("rb") as body:
            get_store().put(BUCKET, KEY, body, content_type="text/csv")
        size_mb = source.stat().st_size / 1e6
        source.unlink()
        reset_adapters()  # the children open their own

        base = run_child("baseline", env)
        fn = run_child("function", env)
        report = json.loads(get_store().get(BUCKET, KEY + ".report.json").body)
        assert report["lines_published"] == args.lines - bad, report
        assert report["lines_rejected"] == bad, report

    fn_rate = args.lines / fn["seconds"]
    base_rate = args.lines / base["seconds"]
    print(
        f"file: {args.lines:,} lines, {size_mb:.0f} MB, {bad:,} bad; "
        f"published {report['lines_published']:,}, rejected {report['lines_rejected']:,}"
    )
    print(
        f"ingest_stock_file: {fn_rate:,.0f} lines/s ({fn['seconds']:.1f} s), "
        f"peak RSS {fn['peak_rss_mb']:.0f} MB"
    )
    print(
        f"bare csv.reader:   {base_rate:,.0f} lines/s ({base['seconds']:.1f} s), "
        f"peak RSS {base['peak_rss_mb']:.0f} MB"
    )
    verdict = "under" if fn["peak_rss_mb"] < MEMORY_AIM_MB else "OVER"
    print(
        f"| ingest_stock_file, {args.lines:,}-line CSV, embedded adapters | "
        f"{fn_rate:,.0f} lines/s | peak RSS {fn['peak_rss_mb']:.0f} MB ({verdict} "
        f"{MEMORY_AIM_MB} MB) | bare csv.reader {base_rate:,.0f} lines/s, "
        f"{base['peak_rss_mb']:.0f} MB | {fn_rate / base_rate:.3f}x |"
    )


if __name__ == "__main__":
    main()
