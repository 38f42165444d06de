"""Cross-sell counting at scale: the project's rebuild vs mlxtend, vs bare scipy, and a fold.

    .venv/bin/python -m bench.crosssell [--baskets 1000000] [--items 20000] [--min-support 0.001]

Synthetic baskets, generated with a fixed seed: item popularity Zipf (s = 1) over ``--items``
items, basket size 1 + Poisson(mean - 1) (mean 10), items drawn with replacement (a repeat in a
basket is collapsed, as a second unit of the same SKU is). Every measurement runs in its own
process, so peak memory is that process's peak RSS (``VmHWM``, reset after its inputs are loaded)
minus its RSS at that point: the memory the work itself needed.

Measured, all in one run:
  rebuild  the domain build of the whole model (``shared.crosssell.rules.cooccurrence.build``): every pair
  scipy    a bare ``scipy.sparse`` X^T X on the same baskets (indicator, duplicates collapsed)
  mlxtend  ``fpgrowth(max_len=2)`` + ``association_rules`` at the same min support, on a sparse
           DataFrame of the items that reach the min support alone; if it exceeds ``--mlxtend-timeout`` or memory, it is run on a subsample
           (``--mlxtend-baskets``) and its time scaled linearly to the full size (said so)
  fold     folding one 10,000-basket archive object into the full model
           (``shared.crosssell.rules.cooccurrence.fold``), and the same plus serializing the region model
           (what ``recalc_cross_sell`` also writes per fold)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 20261127
FOLD_BASKETS = 10_000


def generate(
    n_baskets: int, n_items: int, mean_size: float, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, codes) of ``n_baskets`` Zipf baskets."""
    rng = np.random.default_rng(seed)
    sizes = 1 + rng.poisson(mean_size - 1, n_baskets)
    p = 1.0 / np.arange(1, n_items + 1)
    p /= p.sum()
    codes = rng.choice(n_items, size=int(sizes.sum()), p=p).astype(np.int32)
    indptr = np.zeros(n_baskets + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    return indptr, codes


def _skus(n_items: int) -> np.ndarray:
    return np.array([f"SKU-{i:05d}" for i in range(n_items)])


# --- the measurements, one per child process -------------------------------------------------


def _rss() -> tuple[int, int]:
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _measure(fn) -> dict:  # type: ignore[no-untyped-def]
    _reset_peak()
    base, _ = _rss()
    start = time.perf_counter()
    extra = fn() or {}
    seconds = time.perf_counter() - start
    _, peak = _rss()
    return {"seconds": seconds, "peak_bytes": max(0, peak - base), **extra}


def child(kind: str, data: Path, n_items: int, min_support: float, limit: int | None) -> dict:
    import scipy.sparse as sp

    from shared.crosssell.rules.cooccurrence import Baskets, build, fold

    loaded = np.load(data)
    indptr, codes = loaded["indptr"], loaded["codes"]
    if limit is not None:
        indptr, codes = indptr[: limit + 1], codes[: indptr[limit]]
    n = len(indptr) - 1
    skus = _skus(n_items)

    if kind == "rebuild":
        baskets = Baskets(skus, indptr, codes)
        return _measure(lambda: {"pairs": build(baskets).pair_total, "baskets": n})
    if kind == "scipy":

        def bare() -> dict:
            x = sp.csr_matrix(
                (np.ones(len(codes), dtype=np.int32), codes, indptr), shape=(n, n_items)
            )
            x.sum_duplicates()
            x.data[:] = 1
            co = x.T.tocsr() @ x
            return {"pairs": int((co.nnz - np.count_nonzero(co.diagonal())) // 2), "baskets": n}

        return _measure(bare)
    if kind in ("fold", "fold+bytes"):
        split = indptr[n - FOLD_BASKETS]
        model = build(Baskets(skus, indptr[: n - FOLD_BASKETS + 1], codes[:split]))
        part = Baskets(skus, indptr[n - FOLD_BASKETS :] - split, codes[split:])
        if kind == "fold":
            return _measure(
                lambda: {"pairs": fold(model, part).pair_total, "baskets": FOLD_BASKETS}
            )
        return _measure(
            lambda: {"bytes": len(fold(model, part).to_bytes()), "baskets": FOLD_BASKETS}
        )
    if kind == "fold-store":
        return _fold_through_the_store(skus, indptr, codes)
    if kind == "mlxtend":
        import resource

        # Fail with MemoryError rather than take the machine down; the parent then subsamples.
        cap = int(os.environ.get("BENCH_MLXTEND_MAX_BYTES", str(14 * 2**30)))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        import pandas as pd
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        def run() -> dict:
            x = sp.csr_matrix((np.ones(len(codes), dtype=bool), codes, indptr), shape=(n, n_items))
            x.sum_duplicates()
            x.data[:] = True
            # Only items that can be frequent: mlxtend densifies its input (n x columns bools),
            # so the full 20,000 columns would need ~19 GiB at 1M baskets. Pruning them first
            # is the standard Apriori step and only makes mlxtend's job easier.
            counts = np.asarray(x.sum(axis=0)).ravel()
            used = np.flatnonzero(counts >= min_support * n)
            frame = pd.DataFrame.sparse.from_spmatrix(
                x[:, used].astype(bool), columns=[str(c) for c in used]
            )
            itemsets = fpgrowth(frame, min_support=min_support, max_len=2, use_colnames=True)
            rules = association_rules(itemsets, metric="support", min_threshold=0)
            return {"rules": len(rules), "baskets": n}

        return _measure(run)
    raise ValueError(kind)


def _fold_through_the_store(skus: np.ndarray, indptr: np.ndarray, codes: np.ndarray) -> dict:
    """``CrossSellStore.fold_archive_object`` on the folder store: read the current model and
    the ids of the orders it counted, stream and validate one 10,000-order archive object, fold,
    write a version, swing the pointer. The current model is the full one (all but the last 10,000 baskets)."""
    from datetime import UTC, datetime

    from events.envelope import new_event, to_kafka
    from events.platform import BatchRecord
    from events.sales import OrderCompleted
    from shared.crosssell import CrossSellStore
    from shared.crosssell.orders import CountedOrders, order_keys
    from shared.crosssell.rules.cooccurrence import Baskets, build
    from shared.integration.objectstore.local import LocalFolderStore
    from shared.platform import archive

    n = len(indptr) - 1
    split = indptr[n - FOLD_BASKETS]
    model = build(Baskets(skus, indptr[: n - FOLD_BASKETS + 1], codes[:split]))
    with tempfile.TemporaryDirectory(prefix="bench-crosssell-store-") as root:
        store = LocalFolderStore(root)
        store.create_bucket("state")
        store.create_bucket("events-archive")
        folds = CrossSellStore(store, "state", half_life_days=None)
        # The orders counted so far, so that the fold also reads, merges and writes their ids.
        counted = CountedOrders.of(order_keys(f"ORD-{row:08d}" for row in range(n - FOLD_BASKETS)))
        folds._publish(
            kind="rebuild",
            parent=None,
            half_life_days=None,
            models={"na": model},
            folded={},
            offsets={},
            pointer_etag=None,
            counted=counted,
        )
        when = datetime(2026, 11, 27, 8, tzinfo=UTC)
        records = []
        for b in range(FOLD_BASKETS):
            row = n - FOLD_BASKETS + b
            payload = OrderCompleted.model_validate(
                {
                    "order_id": f"ORD-{row:08d}",
                    "channel": "web",
                    "region": "na",
                    "country": "US",
                    "currency": "USD",
                    "completed_at": when,
                    "lines": [
                        {"sku": str(skus[c]), "quantity": "1", "unit_price": "1.00"}
                        for c in codes[indptr[row] : indptr[row + 1]]
                    ],
                }
            )
            key, value, headers = to_kafka(new_event(payload, source="/bench", id=f"o-{row}"))
            records.append(
                BatchRecord(
                    offset=b,
                    timestamp_ms=int(when.timestamp() * 1000),
                    key=key.decode(),
                    value=value.decode(),
                    headers={k: v.decode() for k, v in headers},
                )
            )
        topic = "sales.order-completed"
        key = archive.object_key(topic, 0, 0, records[0].timestamp_ms)
        info = store.put("events-archive", key, archive.encode(topic, 0, records))
        result = _measure(
            lambda: {
                "outcome": folds.fold_archive_object("events-archive", key, info.etag),
                "baskets": FOLD_BASKETS,
            }
        )
        entry = folds.current().manifest.regions["na"]
        return {**result, "model_bytes": store.head("state", entry.object).size}


def _run_child(
    kind: str,
    data: Path,
    args: argparse.Namespace,
    limit: int | None = None,
    timeout: float | None = None,
) -> dict | None:
    command = [
        sys.executable,
        "-m",
        "bench.crosssell",
        "--child",
        kind,
        "--data",
        str(data),
        "--items",
        str(args.items),
        "--min-support",
        str(args.min_support),
    ]
    if limit is not None:
        command += ["--limit", str(limit)]
    try:
        done = subprocess.run(
            command,
            check=False,  # the caller reads the exit code
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=Path(__file__).resolve().parents[1],
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        print(
            f"[{kind}] failed (exit {done.returncode}): {done.stderr.strip()[-400:]}",
            file=sys.stderr,
        )
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baskets", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--mean-size", type=float, default=10.0)
    parser.add_argument("--min-support", type=float, default=0.001)
    parser.add_argument("--mlxtend-timeout", type=float, default=900.0)
    parser.add_argument(
        "--mlxtend-baskets",
        type=int,
        default=100_000,
        help="Subsample for mlxtend if the full run fails or times out.",
    )
    parser.add_argument("--skip-mlxtend", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.data, args.items, args.min_support, args.limit)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-crosssell-") as tmp:
        data = Path(tmp) / "baskets.npz"
        start = time.perf_counter()
        indptr, codes = generate(args.baskets, args.items, args.mean_size)
        np.savez(data, indptr=indptr, codes=codes)
        print(
            f"generated {args.baskets:,} baskets, {len(codes):,} lines, {args.items:,} items "
            f"(seed {SEED}) in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
        results: dict[str, dict | None] = {}
        for kind in ("rebuild", "scipy", "fold", "fold+bytes", "fold-store"):
            results[kind] = _run_child(kind, data, args)
            print(f"[{kind}] {results[kind]}", file=sys.stderr)
        mlx_note = ""
        if not args.skip_mlxtend:
            results["mlxtend"] = _run_child("mlxtend", data, args, timeout=args.mlxtend_timeout)
            if results["mlxtend"] is None and args.mlxtend_baskets < args.baskets:
                sub = _run_child(
                    "mlxtend", data, args, limit=args.mlxtend_baskets, timeout=args.mlxtend_timeout
                )
                if sub is not None:
                    factor = args.baskets / args.mlxtend_baskets
                    mlx_note = (
                        f" (full run failed or exceeded {args.mlxtend_timeout:.0f} s; "
                        f"measured on {args.mlxtend_baskets:,} baskets: "
                        f"{sub['seconds']:.1f} s, {_gib(sub['peak_bytes'])}; "
                        f"time scaled x{factor:g}, linear, a lower bound)"
                    )
                    sub = {**sub, "seconds": sub["seconds"] * factor, "scaled": True}
                results["mlxtend"] = sub
            print(f"[mlxtend] {results['mlxtend']}{mlx_note}", file=sys.stderr)

    print(summary(args, results, mlx_note))


def summary(args: argparse.Namespace, r: dict[str, dict | None], mlx_note: str) -> str:
    def fig(kind: str) -> str:
        x = r.get(kind)
        return "n/a" if not x else f"{x['seconds']:.3f} s, {_gib(x['peak_bytes'])}"

    def ratio(a: str, b: str) -> str:
        x, y = r.get(a), r.get(b)
        return "n/a" if not x or not y else f"{y['seconds'] / x['seconds']:.1f}x"

    rebuild = r.get("rebuild") or {}
    lines = [
        (
            f"### Cross-sell counting: {args.baskets:,} baskets, {args.items:,} items "
            f"(Zipf s=1, mean basket {args.mean_size:g}, seed {SEED}), min support "
            f"{args.min_support:g}"
        ),
        "",
        "Command: `.venv/bin/python -m bench.crosssell"
        + (f" --baskets {args.baskets}" if args.baskets != 1_000_000 else "")
        + "`",
        "",
        "| what | time, peak memory (RSS above inputs) |",
        "| --- | --- |",
        (
            f"| rebuild: `shared.crosssell.rules.cooccurrence.build`, all {rebuild.get('pairs', 0):,} pairs "
            f"| {fig('rebuild')} |"
        ),
        f"| bare `scipy.sparse` X^T X | {fig('scipy')} |",
        f"| mlxtend fpgrowth(max_len=2) + association_rules{mlx_note} | {fig('mlxtend')} |",
        f"| fold one {FOLD_BASKETS:,}-basket archive object into the full model | {fig('fold')} |",
        f"| the same fold + serializing the region model (.npz) | {fig('fold+bytes')} |",
        (
            f"| `CrossSellStore.fold_archive_object` on the folder store (read model, parse and "
            f"validate 10,000 orders, fold, write a {_gib((r.get('fold-store') or {}).get('model_bytes', 0))} "
            f"version, swing the pointer) | {fig('fold-store')} |"
        ),
        "",
        f"- rebuild vs mlxtend: {ratio('rebuild', 'mlxtend')} faster (aim >= 20x)",
        f"- rebuild vs bare scipy: {ratio('scipy', 'rebuild')} the time of scipy (aim <= 2x)",
        (
            f"- fold vs rebuild: {ratio('fold', 'rebuild')} cheaper (aim >= 20x); with "
            f"serialization {ratio('fold+bytes', 'rebuild')}; through the store "
            f"{ratio('fold-store', 'rebuild')}"
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
