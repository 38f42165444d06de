"""POST /v1/partners/acme/stock through the runtime's HTTP server, against a bare
functions-framework function on the same uvicorn settings.

    .venv/bin/python -m bench.http_stock [--requests 20000] [--concurrency 32] [--no-fsync]

In one run, one after the other, each on a fresh port:

* ``runtime``: :class:`~shared.runtime.server.HttpServer` over ``build_http_app`` with
  ``report_stock`` from ``serverless.yaml``, embedded adapters in a temporary data folder, the
  dev API key. Every request is routed, authenticated (API key from the in-memory cache),
  parsed, turned into a CloudEvent and appended to ``inventory.stock-reported`` on the embedded
  bus **with an fsync per request**, counted in the metrics and, at INFO, access-logged as JSON
  (to a file in the temporary folder). Run at INFO and at WARNING.
* ``runtime, no fsync`` (with ``--no-fsync``): the same at WARNING on an embedded bus built with
  ``fsync=False``, to show what the per-request fsync costs (the runtime has no setting for it;
  durability wants it).
* ``bare``: ``bench.bare_stock:bare_stock`` (``functions_framework.aio.http``, the same
  ``StockPost`` model, 202 without auth or publish) on the same ``HttpServer``: the baseline.
* ``bare + publish``: ``bench.bare_stock:bare_stock_publishing``, the bare function plus the same
  events published the same way (fsync on), to tell the runtime's cost from the bus's.

The load comes from a separate process: an asyncio client writing raw HTTP/1.1 over keep-alive
connections (``asyncio.open_connection`` on 127.0.0.1), ``--concurrency`` connections sharing
``--requests`` requests, after a warm-up. Prints requests/s, p50 and p99 latency per server and
the ratio runtime/bare. Server and client share the machine's cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.loadgen import measure, serve

PATH = "/v1/partners/acme/stock"
BODY = (
    b'{"lines": [{"partner_sku": "YM-4MM-PURPLE", "location_id": "BERLIN-1", "region": "eu",'
    b' "on_hand": 12, "reserved": 2}, {"partner_sku": "YM-4MM-BLUE", "location_id":'
    b' "BERLIN-1", "region": "eu", "on_hand": 3}]}'
)
WARMUP = 500


# --- the servers ------------------------------------------------------------------------------


def runtime_app() -> Any:
    from shared.runtime.config import load_service
    from shared.runtime.http import build_http_app
    from shared.runtime.loader import load_function

    service = load_service(Path(__file__).parent.parent / "serverless.yaml", env={})
    handler = service.functions["report_stock"].handler
    os.environ.update(service.environment_for("report_stock"))  # as the runtime does
    logging.getLogger("retailfn.http").disabled = True  # "function ... is not served", once
    app = build_http_app(service, {"report_stock": load_function("report_stock", handler)})
    logging.getLogger("retailfn.http").disabled = False
    return app


def use_data_dir(path: Path, *, fsync: bool = True) -> int:
    """Fresh embedded adapters in ``path``; returns the records already on the topic (0)."""
    from shared.integration.bus.embedded import EmbeddedBus
    from shared.platform import adapters
    from shared.platform.auth import ensure_dev_api_keys, reset_auth_caches
    from shared.platform.settings import reset_settings
    from shared.runtime.app import provision

    os.environ["RETAILFN_DATA_DIR"] = str(path)
    reset_settings()
    adapters.reset_adapters()
    reset_auth_caches()
    if not fsync:
        adapters._bus = EmbeddedBus(path / "bus", fsync=False)  # bench only: no setting for it
    provision(adapters.get_bus(), adapters.get_store())
    ensure_dev_api_keys()
    return len(adapters.get_bus().read_all("inventory.stock-reported"))


def published() -> int:
    from shared.platform.adapters import get_bus

    return len(get_bus().read_all("inventory.stock-reported"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="also run the runtime on an embedded bus without fsync",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="retailfn-bench-http-"))
    for name in [n for n in os.environ if n.startswith("RETAILFN_")]:
        del os.environ[name]
    from shared.platform.auth import dev_api_key
    from shared.platform.observability import configure_logging

    log_file = (tmp / "access.log").open("a", encoding="utf-8")
    configure_logging("INFO", stream=log_file)
    key = dev_api_key("acme")
    n, c = args.requests, args.concurrency

    def load(port: int) -> dict[str, Any]:
        request = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: ApiKey {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
        return measure(port, request, n, c, WARMUP)

    from shared.runtime.loader import load_function

    bare = load_function("bare_stock", "bench.bare_stock:bare_stock").asgi_app()
    publishing = load_function(
        "bare_stock_publishing", "bench.bare_stock:bare_stock_publishing"
    ).asgi_app()
    runtime = runtime_app()
    variants = [("runtime, INFO", "INFO", True), ("runtime, WARNING", "WARNING", True)]
    if args.no_fsync:
        variants.append(("runtime, WARNING, no fsync", "WARNING", False))

    # The baseline first and last: on a shared machine, the two show how much the load drifted.
    results: dict[str, dict[str, Any]] = {}
    logging.getLogger().setLevel("WARNING")
    results["bare (first)"] = serve(bare, load)
    for label, level, fsync in variants:
        logging.getLogger().setLevel(level)
        use_data_dir(tmp / label.replace(", ", "-").replace(" ", "-"), fsync=fsync)
        results[label] = serve(runtime, load)
        results[label]["published"] = published()
    logging.getLogger().setLevel("WARNING")
    use_data_dir(tmp / "bare-publishing")
    results["bare + publish"] = serve(publishing, load)
    results["bare + publish"]["published"] = published()
    results["bare (last)"] = serve(bare, load)
    log_file.close()

    print(
        f"POST {PATH}, 2 lines ({len(BODY)} bytes), {n} requests, concurrency {c}, "
        f"after {WARMUP} warm-up requests; {os.cpu_count()} CPUs shared with the client, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    base = (results["bare (first)"]["rps"] + results["bare (last)"]["rps"]) / 2
    print(
        f"{'server':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}  statuses, "
        "events on the topic"
    )
    for label, r in results.items():
        events = f", {r['published']} events" if "published" in r else ""
        print(
            f"{label:<28}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['rps'] / base:>9.2f}  {r['statuses']}{events}"
        )
    print(
        f"ratio runtime (WARNING) / bare: {results['runtime, WARNING']['rps'] / base:.2f}; "
        f"runtime (WARNING) / bare + publish: "
        f"{results['runtime, WARNING']['rps'] / results['bare + publish']['rps']:.2f}"
    )
    print(f"(data and the INFO access log in {tmp})")


if __name__ == "__main__":
    main()
