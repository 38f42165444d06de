"""Scale-out is Kafka's: two `retailfn worker` processes in one consumer group, one killed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.integration.bus.kafka import KafkaBus
from shared.integration.objectstore.local import LocalFolderStore
from shared.runtime.app import topic_specs
from tests.e2e.conftest import E2E_CONFIG, eventually
from tests.servers import Tansu

REPO = Path(__file__).resolve().parents[2]
KEYS = 50
PER_KEY = 400  # 20,000 events


def _applied(store: LocalFolderStore) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    if not store.bucket_exists("state"):
        return out  # the workers provision it when they start
    for info in store.list("state", "effects/sequence/"):
        out[info.key.rsplit("/", 1)[-1].removesuffix(".json")] = json.loads(
            store.get("state", info.key).body
        )
    return out


def test_two_workers_one_killed_apply_every_event_once_in_key_order(tmp_path: Path) -> None:
    broker = Tansu.start(log_path=tmp_path / "tansu.log")
    workers: list[subprocess.Popen[bytes]] = []
    logs = contextlib.ExitStack()  # the workers' stderr files, closed once they are stopped
    try:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "RETAILFN_DATA_DIR": str(tmp_path / "data"),
            "RETAILFN_BUS": "kafka",
            "RETAILFN_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "RETAILFN_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "RETAILFN_KAFKA_HEARTBEAT_INTERVAL_MS": "400",
            "RETAILFN_KAFKA_MAX_POLL_INTERVAL_MS": "8000",
            "RETAILFN_LOG_LEVEL": "WARNING",
        }
        bus = KafkaBus(broker.bootstrap)
        bus.create_topics(topic_specs())
        store = LocalFolderStore(tmp_path / "data" / "objects")

        for n in range(2):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "shared.tools.cli",
                        "--config",
                        str(E2E_CONFIG),
                        "worker",
                        "--functions",
                        "sequence",
                    ],
                    env=env,
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=logs.enter_context((tmp_path / f"worker{n}.log").open("wb")),
                )
            )

        records = [
            (f"k{k}", json.dumps({"key": f"k{k}", "seq": seq}).encode(), ())
            for seq in range(1, PER_KEY + 1)
            for k in range(KEYS)
        ]
        bus.publish_many("inventory.stock-reported", records)

        eventually(
            lambda: sum(map(len, _applied(store).values())) >= KEYS * PER_KEY // 2,
            timeout_s=120,
            interval_s=0.2,
        )
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()

        def all_applied() -> bool:
            applied = _applied(store)
            return len(applied) == KEYS and all(len(v) >= PER_KEY for v in applied.values())

        eventually(all_applied, timeout_s=180, interval_s=0.5)
        time.sleep(1)  # anything still in flight would show up as an extra application
        applied = _applied(store)
        assert {k: v for k, v in applied.items() if v != list(range(1, PER_KEY + 1))} == {}
        gaps = tmp_path / "data" / "objects" / "state" / "effects" / "sequence-gaps.json"
        assert not gaps.exists(), gaps.read_text()
        assert workers[1].poll() is None, "the surviving worker died"
        bus.close()
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                try:
                    w.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    w.kill()
        logs.close()
        broker.stop()
