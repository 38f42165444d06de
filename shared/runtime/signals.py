"""Run a started service until SIGTERM or SIGINT, then stop it: what every long-running process of
the runtime does (``retailfn up``, the one-function apps, the workers)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("retailfn.signals")


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGTERM or SIGINT while the block runs; the previous handlers
    are put back after it."""
    done = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        done.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield done
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_until_signal(
    start: Callable[[], object],
    stop: Callable[[], object],
    ready: Callable[[], object] = lambda: None,
) -> None:
    """``start``, then ``ready``, wait for a stop signal, then ``stop``. A ``start`` or ``ready``
    that fails is stopped too (what did start, consumers say, must not keep the process alive)."""
    with stop_signals() as done:
        try:
            start()
            ready()
        except BaseException:
            stop()
            raise
        done.wait()
        stop()
