"""Committed sample events, one per CloudEvents type plus the platform envelopes, loaded by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


def sample_names() -> list[str]:
    """Names of all samples, sorted (``order-completed``, ``codeengine-cos-write``, ...)."""
    return sorted(path.stem for path in _HERE.glob("*.json"))


def load_sample(name: str) -> dict[str, Any]:
    """A sample as a fresh dict (callers may change it freely)."""
    path = _HERE / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no sample {name!r}; there are {sample_names()}")
    sample: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))  # each is an object
    return sample
