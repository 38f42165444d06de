"""The process's adapters, built lazily from settings on first use.

Functions call :func:`get_bus` and :func:`get_store`; nothing is connected at import time, so a
cold start pays only for what the function touches and tests can set the environment first.
They are built from the *process* settings (the stage's), never from the settings of whichever
function happens to touch them first.
"""

from __future__ import annotations

import threading

from shared.bus import EventBus, event_bus_from_settings
from shared.objectstore import ObjectStore, object_store_from_settings
from shared.settings import process_settings

_lock = threading.Lock()
_bus: EventBus | None = None
_store: ObjectStore | None = None


def get_bus() -> EventBus:
    global _bus
    if _bus is None:
        with _lock:
            if _bus is None:
                _bus = event_bus_from_settings(process_settings())
    return _bus


def get_store() -> ObjectStore:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = object_store_from_settings(process_settings())
    return _store


def bucket(logical_name: str) -> str:
    """The physical name of a logical bucket (``state``, ``events-archive``, ...)."""
    return process_settings().bucket(logical_name)


def reset_adapters() -> None:
    """Close and forget the adapters; the next call builds them from the settings again."""
    global _bus, _store
    with _lock:
        if _bus is not None:
            _bus.close()
        if _store is not None:
            _store.close()
        _bus = _store = None
