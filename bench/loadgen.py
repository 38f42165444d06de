"""The HTTP benchmarks' load generator: keep-alive HTTP/1.1 over asyncio, in its own process.

The same generator drives the bare baseline and the runtime in one run, so their ratio does not
depend on the client. Only loopback addresses are ever used.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any


async def _load(
    port: int, request: bytes, n: int, concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    remaining = n
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connection() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                status = int(head.split(b" ", 2)[1])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, statuses


def _client(port: int, request: bytes, n: int, concurrency: int, warmup: int, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_load(port, request, warmup, concurrency))
    out.send(asyncio.run(_load(port, request, n, concurrency)))
    out.close()


def measure(
    port: int, request: bytes, n: int, concurrency: int, warmup: int = 500
) -> dict[str, Any]:
    """Send ``request`` (raw HTTP/1.1 bytes) ``n`` times after ``warmup``; rate and latencies."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_client, args=(port, request, n, concurrency, warmup, child), daemon=True
    )
    proc.start()
    child.close()
    elapsed, latencies, statuses = parent.recv()
    proc.join()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "rps": n / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "statuses": statuses,
    }


def serve(app: Any, run: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Serve ``app`` with the runtime's server on a free loopback port while ``run`` loads it."""
    from shared.runtime.server import HttpServer

    with HttpServer(app) as server:
        return run(server.port)
