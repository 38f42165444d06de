"""The runtime: one process that serves every trigger of ``serverless.yaml`` it is asked to.

``retailfn up`` runs HTTP and event triggers together; ``retailfn worker --functions a,b`` runs only
event consumers, so that several workers in one consumer group share the partitions (scale-out is
Kafka's, not ours). The same functions run unchanged behind Code Engine, where the platform does
the wiring that this module does locally.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from events.catalog import BUCKETS, TOPICS
from events.deadletter import DeadLetter
from events.envelope import new_event, to_kafka
from shared.integration.bus.port import EventBus, TopicSpec
from shared.integration.objectstore.port import ObjectStore
from shared.platform.adapters import bucket, get_bus, get_claim_store, get_state_engine, get_store
from shared.platform.dedup import SeenLog
from shared.platform.observability import configure_metrics
from shared.platform.publisher import flush_background
from shared.platform.settings import Settings, get_settings
from shared.runtime.config import DEAD_LETTER_BUCKET, ServiceConfig
from shared.runtime.cos_trigger import CosSubscription, CosWatcher
from shared.runtime.deadletter import DeadLetterStore, within
from shared.runtime.invoker import Invoker
from shared.runtime.kafka_trigger import KafkaTriggerWorker
from shared.runtime.loader import LoadedFunction, load_function
from shared.runtime.schedule import ScheduledFunction, Scheduler
from shared.runtime.stage import apply_stage, function_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from shared.integration.state.claims import SqlClaimStore
    from shared.runtime.server import HttpServer

log = logging.getLogger("retailfn.runtime")


def topic_specs(names: Iterable[str] | None = None) -> list[TopicSpec]:
    chosen = TOPICS if names is None else {n: TOPICS[n] for n in names}
    return [TopicSpec(t.name, t.partitions, t.config()) for t in chosen.values()]


def provision(
    bus: EventBus, store: ObjectStore, engine: Engine | None = None
) -> dict[str, list[str]]:
    """Create every topic of the catalog and every bucket, and bring the state database's schema
    (``engine``, default the process's, whatever the database) to the newest revision;
    idempotent. Returns the topics and buckets created."""
    from shared.integration.state.migrate import upgrade

    created_topics = bus.create_topics(topic_specs())
    created_buckets = [bucket(name) for name in BUCKETS if store.create_bucket(bucket(name))]
    upgrade(engine or get_state_engine())
    return {"topics": created_topics, "buckets": created_buckets}


class UnknownFunction(ValueError):
    """A function name that ``serverless.yaml`` does not define."""


class DeadLetterSink:
    """Keeps a dead letter as an object and announces it on the dead-letter topic."""

    def __init__(self, store: ObjectStore, bus: EventBus, topic: str) -> None:
        self.objects = DeadLetterStore(store, bucket(DEAD_LETTER_BUCKET))
        self.bus = bus
        self.topic = topic

    def __call__(self, dl_id: str, dl: DeadLetter) -> None:
        self.objects.save(dl_id, dl)
        # The object keeps up to 4 MB of the event's data; the record must fit the topic.
        event = new_event(
            within(dl), source=f"/retailfn/runtime/{dl.function}", key=dl.function, id=dl_id
        )
        key, value, headers = to_kafka(event)
        self.bus.publish(self.topic, value, key=key, headers=headers)


@dataclass
class Runtime:
    service: ServiceConfig
    functions: list[str] | None = None
    """Only these functions (all if ``None``)."""
    serve_http: bool = True
    run_events: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    cos_interval_s: float = 0.5
    provision: bool = True
    allow_embedded: bool = False
    """Let a stage other than ``local`` run on the embedded adapters (see shared/runtime/stage.py)."""
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        names = self.functions or list(self.service.functions)
        unknown = [n for n in names if n not in self.service.functions]
        if unknown:
            raise UnknownFunction(
                f"unknown function(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.service.functions))}"
            )
        self.names = names
        self.loaded: dict[str, LoadedFunction] = {}
        self.settings: dict[str, Settings] = {}
        self.workers: list[KafkaTriggerWorker] = []
        self.watchers: list[CosWatcher] = []
        self.scheduler: Scheduler | None = None
        self.http_server: HttpServer | None = None
        self._pending_ready = 0
        self._swept = False
        self._ready_lock = threading.Lock()
        self._ready = threading.Event()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        # The stage's environment makes the process settings before anything reads them (the
        # adapters), and each function gets its own on top; one merged os.environ cannot hold
        # two functions' different values.
        stage = apply_stage(self.service, allow_embedded=self.allow_embedded)
        configure_metrics(created=stage.metrics_created)
        self.settings = function_settings(self.service, self.names)
        bus, store = get_bus(), get_store()
        if self.provision:
            created = provision(bus, store)
            if any(created.values()):
                log.info("provisioned", extra=created)
        for name in self.names:
            self.loaded[name] = load_function(name, self.service.functions[name].handler)
        if self.run_events:
            self._start_events(bus, store)
        if self.serve_http:
            self._start_http()
        if self._pending_ready == 0:
            self._ready.set()
        return self

    def wait_ready(self, timeout: float = 60.0) -> bool:
        return self._ready.wait(timeout)

    def ready(self) -> bool:
        """Serving and consuming: a trigger whose thread died makes the process unready, so the
        platform restarts it instead of leaving a consumer silently gone."""
        return (
            self._ready.is_set()
            and not self.stop_event.is_set()
            and all(w.alive for w in self._triggers())
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking new work; finish or abandon (uncommitted) what is in flight."""
        self.stop_event.set()
        if self.http_server is not None:
            self.http_server.stop()
        for w in self._triggers():
            w.join(timeout)
        if self.scheduler:
            self.scheduler.join(timeout)
        flush_background()
        log.info("runtime stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- wiring ----------------------------------------------------------------------------

    def _triggers(self) -> list[KafkaTriggerWorker | CosWatcher]:
        return [*self.workers, *self.watchers]

    def _one_ready(self) -> None:
        with self._ready_lock:
            self._pending_ready -= 1
            if self._pending_ready == 0:
                self._ready.set()

    def invoker(self, name: str, trigger: str, bus: EventBus, store: ObjectStore) -> Invoker:
        fn = self.service.functions[name]
        return Invoker(
            self.loaded[name],
            fn.delivery,
            trigger,
            DeadLetterSink(store, bus, fn.delivery.dead_letter),
            self.stop_event,
            settings=self.settings.get(name),
        )

    def _start_events(self, bus: EventBus, store: ObjectStore) -> None:
        state = bucket("state")
        claims = get_claim_store()
        cos_by_bucket: dict[str, list[CosSubscription]] = {}
        jobs: list[ScheduledFunction] = []
        for name in self.names:
            fn = self.service.functions[name]
            if self.loaded[name].signature != "cloudevent":
                continue
            for trigger in fn.triggers("kafka"):
                seen = SeenLog(store, state, name)
                seen.load()
                self.workers.append(
                    KafkaTriggerWorker(
                        function=name,
                        group=self.service.consumer_group(name, trigger),
                        trigger=trigger,
                        bus=bus,
                        invoker=self.invoker(name, "kafka", bus, store),
                        seen=seen,
                        stop=self.stop_event,
                        on_ready=self._one_ready,
                        commit_interval_s=get_settings().kafka_commit_interval_ms / 1000,
                    )
                )
            for trigger in fn.triggers("cos"):
                cos_by_bucket.setdefault(bucket(trigger.bucket), []).append(
                    CosSubscription(name, trigger, self.invoker(name, "cos", bus, store))
                )
            for trigger in fn.triggers("schedule"):
                jobs.append(
                    ScheduledFunction(name, trigger, self.invoker(name, "schedule", bus, store))
                )
        for physical, subs in cos_by_bucket.items():
            self.watchers.append(
                CosWatcher(
                    bucket=physical,
                    subscriptions=subs,
                    store=store,
                    claims=claims,
                    state_bucket=state,
                    stop=self.stop_event,
                    interval_s=self.cos_interval_s,
                    on_ready=self._one_ready,
                )
            )
        self._pending_ready = len(self.workers) + len(self.watchers)
        for w in self._triggers():
            w.start()
        if jobs:
            self.scheduler = Scheduler(jobs, claims, self.stop_event)
            self.scheduler.start()
        self._housekeeping = threading.Thread(
            target=self._sweep_claims, args=(claims,), name="housekeeping", daemon=True
        )
        self._housekeeping.start()

    def _sweep_claims(self, claims: SqlClaimStore, every_s: float = 3600.0) -> None:
        """Expired dedup claims are deleted hourly so the claims table does not grow forever."""
        while not self.stop_event.wait(every_s if self._swept else 5.0):
            try:
                removed = claims.sweep()
            except Exception:  # housekeeping must never take the runtime down
                log.exception("claim sweep failed")
                continue
            self._swept = True
            if removed:
                log.info("expired claims removed", extra={"removed": removed})

    def _start_http(self) -> None:
        from shared.runtime.http import build_http_app
        from shared.runtime.server import HttpServer

        http_functions = {n: f for n, f in self.loaded.items() if f.signature == "http"}
        app = build_http_app(self.service, http_functions, ready=self.ready, settings=self.settings)
        self.http_server = HttpServer(app, host=self.host, port=self.port)
        self.http_server.start()
        self.port = self.http_server.port
        log.info(
            "serving HTTP",
            extra={"host": self.host, "port": self.port, "functions": sorted(http_functions)},
        )
