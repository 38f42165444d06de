"""Kafka -> runtime -> a no-op function, against a bare kafka-python consumer on the same broker.

    .venv/bin/python -m bench.runtime_kafka [--events 50000] [--rounds 3]

Both read the same N binary-mode CloudEvents (about 300-byte values) from the same Tansu topic in
the same run, each in a fresh consumer group. The clock starts at the first record each one sees
(so the group join is not counted) and stops when the last record is handled; the runtime's
figure includes CloudEvent decoding, dedup bookkeeping, metrics, the batch's dedup object and the
offset commit. Prints events/s for both and their ratio (median of the rounds).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer

from bench.servers import Tansu
from events.envelope import event_from_sample, new_event, to_kafka

TOPIC = "inventory.stock-reported"
CONSUMER_KW = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 400,
    "max_poll_interval_ms": 8000,
}


def fill(bus, n: int) -> None:  # type: ignore[no-untyped-def]
    sample = event_from_sample("stock-reported")
    batch = []
    for i in range(n):
        ev = new_event(sample.data, source="/bench", key=f"P-{i % 64}:LOC-1")
        key, value, headers = to_kafka(ev)
        batch.append((key, value, headers))
    for i in range(0, n, 5000):
        bus.publish_many(TOPIC, batch[i : i + 5000])


def bare(bootstrap: str, n: int) -> float:
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
        **CONSUMER_KW,
    )
    seen, start = 0, None
    while seen < n:
        for records in consumer.poll(timeout_ms=500).values():
            if start is None:
                start = time.perf_counter()
            seen += len(records)
        if seen:
            consumer.commit()
    elapsed = time.perf_counter() - start  # type: ignore[operator]
    consumer.close(autocommit=False)
    return n / elapsed


def through_runtime(n: int) -> float:
    from shared.platform.adapters import reset_adapters
    from shared.platform.settings import reset_settings
    from shared.runtime.app import Runtime
    from shared.runtime.config import load_service

    reset_settings()
    reset_adapters()
    os.environ["BENCH_GROUP"] = f"bench-{uuid.uuid4()}"  # a fresh group reads from the start
    service = load_service(Path(__file__).with_name("serverless.yaml"))
    runtime = Runtime(service, serve_http=False)
    runtime.start()
    worker = runtime.workers[0]
    start = None
    while worker.processed < n:
        if start is None and worker.processed:
            start = time.perf_counter()
            first = worker.processed
        time.sleep(0.01)
    elapsed = time.perf_counter() - start  # type: ignore[operator]
    runtime.stop()
    return (n - first) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    broker = Tansu.start()
    data = tempfile.mkdtemp(prefix="retailfn-bench-")
    os.environ.update(
        {
            "RETAILFN_BUS": "kafka",
            "RETAILFN_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "RETAILFN_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "RETAILFN_KAFKA_HEARTBEAT_INTERVAL_MS": "400",
            "RETAILFN_KAFKA_MAX_POLL_INTERVAL_MS": "8000",
            "RETAILFN_DATA_DIR": data,
            "RETAILFN_LOG_LEVEL": "WARNING",
        }
    )
    try:
        from shared.platform.adapters import get_bus
        from shared.runtime.app import topic_specs

        bus = get_bus()
        bus.create_topics(topic_specs([TOPIC]))
        fill(bus, args.events)
        bare_rates, runtime_rates = [], []
        for r in range(args.rounds):
            bare_rates.append(bare(broker.bootstrap, args.events))
            runtime_rates.append(through_runtime(args.events))
            print(
                f"round {r + 1}: bare {bare_rates[-1]:,.0f} ev/s, "
                f"runtime {runtime_rates[-1]:,.0f} ev/s",
                flush=True,
            )
        b, rt = statistics.median(bare_rates), statistics.median(runtime_rates)
        ratios = sorted(r / b_ for r, b_ in zip(runtime_rates, bare_rates, strict=True))
        print(
            f"\nkafka -> runtime -> noop: {rt:,.0f} events/s; bare kafka-python consumer: "
            f"{b:,.0f} events/s; ratio of medians {rt / b:.2f} (aim >= 0.60); per-round "
            f"ratios {ratios[0]:.2f}..{ratios[-1]:.2f}, median {statistics.median(ratios):.2f}; "
            f"{args.events:,} events, {args.rounds} rounds"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
