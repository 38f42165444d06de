"""Functions the benchmarks run through the runtime."""

from __future__ import annotations

import functions_framework.aio as ff
from cloudevents.http import CloudEvent


@ff.cloud_event
def noop(cloud_event: CloudEvent) -> None:
    """Does nothing, so the benchmark measures the runtime around it."""
