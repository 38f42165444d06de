"""Serve an ASGI app with uvicorn (uvloop + httptools) in a background thread.

Used by ``retailfn serve`` and by the tests; never Flask's development server.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


class HttpServer:
    """``start()`` returns once the socket is listening (``port=0`` picks a free port, read it
    from ``.port``); ``stop()`` lets in-flight requests finish (up to ``graceful_timeout_s``)."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        graceful_timeout_s: float = 10.0,
        log_level: str = "warning",
        backlog: int = 2048,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.graceful_timeout_s = graceful_timeout_s
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            ws="none",
            lifespan="off",
            access_log=False,  # the app writes its own access log, as JSON
            log_config=None,  # keep the process's logging (configure_logging) as it is
            log_level=log_level,
            server_header=False,
            backlog=backlog,
            timeout_graceful_shutdown=graceful_timeout_s,  # type: ignore[arg-type]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        # Bind here, not in uvicorn, so that a taken port fails in the caller and port 0 is known.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        sock.set_inheritable(True)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._server = server = uvicorn.Server(self._config)
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"http-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive():
                self._cleanup()
                raise RuntimeError(f"the HTTP server on {self.url} did not start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the HTTP server on {self.url} did not start in {timeout_s}s")
            time.sleep(0.005)
        return self

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start(); SystemExit included
            self._error = exc

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests, and wait for the thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(self.graceful_timeout_s + 5)
        if self._thread.is_alive():  # a request that will not end: stop waiting for it
            self._server.force_exit = True
            self._thread.join(5)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
