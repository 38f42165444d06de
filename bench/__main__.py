"""``python -m bench`` (``make bench``): every benchmark, one after another, each with its own
baseline measured in the same run. About 10 minutes on a 2-core machine."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["runtime_kafka", "http_stock", "ingest_file", "crosssell", "recommend"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
