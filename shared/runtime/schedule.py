"""Schedule triggers: ``rate(5 minutes)`` or ``cron(0 3 * * *)`` (UTC).

The event is what Code Engine's cron subscription (Knative's PingSource) posts:
``dev.knative.sources.ping``. Ticks are aligned to the clock (a ``rate(5 minutes)`` fires at :00,
:05, ...) and each tick is claimed in the state database before it fires, so several runtimes or
workers fire it once between them, and a restart does not fire a tick twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cloudevents.http import CloudEvent
from cronsim import CronSim

from shared.runtime.config import ScheduleTrigger
from shared.runtime.invoker import Invoker

if TYPE_CHECKING:
    from shared.integration.state.claims import SqlClaimStore

log = logging.getLogger("retailfn.runtime")

PING_EVENT = "dev.knative.sources.ping"


def next_tick(trigger: ScheduleTrigger, after: datetime) -> datetime:
    interval = trigger.interval
    if interval is not None:
        step = interval.total_seconds()
        return datetime.fromtimestamp((after.timestamp() // step + 1) * step, UTC)
    naive = after.astimezone(UTC).replace(tzinfo=None)
    return next(CronSim(trigger.cron, naive)).replace(tzinfo=UTC)  # type: ignore[arg-type]


def ping_event(function: str, trigger: ScheduleTrigger, tick: datetime) -> CloudEvent:
    stamp = tick.isoformat().replace("+00:00", "Z")
    return CloudEvent(
        {
            "type": PING_EVENT,
            "source": f"/schedule/{function}",
            "id": f"{function}@{stamp}",
            "time": stamp,
            "datacontenttype": "application/json",
        },
        {"scheduled_time": stamp, "expression": trigger.expression},
    )


@dataclass(frozen=True)
class ScheduledFunction:
    function: str
    trigger: ScheduleTrigger
    invoker: Invoker


class Scheduler:
    def __init__(
        self, jobs: list[ScheduledFunction], claims: SqlClaimStore, stop: threading.Event
    ) -> None:
        self.jobs = [j for j in jobs if j.trigger.enabled]
        self.claims = claims
        self.stop = stop
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="scheduler", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    def run(self) -> None:
        now = datetime.now(UTC)
        due = {i: next_tick(j.trigger, now) for i, j in enumerate(self.jobs)}
        while due and not self.stop.is_set():
            i = min(due, key=due.__getitem__)
            wait = (due[i] - datetime.now(UTC)).total_seconds()
            if wait > 0 and self.stop.wait(min(wait, 1.0)):
                break
            if wait > 1.0:
                continue
            job, tick = self.jobs[i], due[i]
            try:
                claimed = self.claims.claim(f"schedule/{job.function}", tick.isoformat())
            except Exception:  # the state database is down: the tick waits, the thread lives
                log.warning(
                    "could not claim a schedule tick; retrying",
                    exc_info=True,
                    extra={"function": job.function, "tick": tick.isoformat()},
                )
                if self.stop.wait(1.0):
                    break
                continue
            due[i] = next_tick(job.trigger, tick + timedelta(microseconds=1))
            if claimed:
                job.invoker.deliver(
                    ping_event(job.function, job.trigger, tick),
                    {"schedule": job.trigger.expression},
                )
