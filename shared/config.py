"""``serverless.yaml``: the one description of the service that ops deploy from.

The file follows the Serverless Framework's shape (``service``, ``provider``, ``stages`` with
``params``, ``functions`` with ``handler`` and ``events``) plus a Knative-style ``delivery`` block,
because the platforms we deploy to (Code Engine subscriptions) give no retries or dead letters.

Loading resolves ``${param:x}``, ``${env:X}`` / ``${env:X, default}``, ``${sls:stage}`` and
``${self:service}``, then validates. Every mistake is reported as one line with its path in the
file and what is allowed, e.g.::

    functions.ingest_stock.events[0].kafka.topic: unknown topic 'stok.reported'; known: ...
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from events.catalog import BUCKETS, TOPICS

DEFAULT_PATH = Path("serverless.yaml")
DEAD_LETTER_TOPIC = "platform.dead-letter"
DEAD_LETTER_BUCKET = "dead-letters"


class ConfigError(Exception):
    """``serverless.yaml`` is wrong; ``problems`` holds one ``path: message`` line per mistake."""

    def __init__(self, problems: list[str], source: str = "serverless.yaml") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems) if len(problems) == 1 else
                         f"{source} has {len(problems)} problems:\n  " + "\n  ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _known(names: Mapping[str, object] | list[str]) -> str:
    return ", ".join(sorted(names))


def _env_value(v: object) -> object:
    # YAML scalars and whole-value ${param:x} keep their type (5, true), but an environment
    # variable is a string, as the Serverless Framework makes it.
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if isinstance(v, int | float) else v


EnvVars = dict[str, Annotated[str, BeforeValidator(_env_value)]]


# --- triggers ---------------------------------------------------------------------------------

_PATH = re.compile(r"^(/[A-Za-z0-9._~-]*|/\{[a-z][a-zA-Z0-9_]*\})+$")


class HttpAuth(_Model):
    type: Literal["none", "apiKey", "jwt"] = "none"
    scopes: tuple[str, ...] = ()


class HttpTrigger(_Model):
    path: str
    method: Literal["get", "post", "put", "patch", "delete"] = "get"
    auth: HttpAuth = HttpAuth()

    @field_validator("method", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_shorthand(cls, v: object) -> object:
        return {"type": v} if isinstance(v, str) else v

    @field_validator("path")
    @classmethod
    def _path_shape(cls, v: str) -> str:
        if not _PATH.match(v):
            raise ValueError(
                f"path {v!r} must start with '/' and use segments or {{param}} placeholders"
            )
        return v

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{([a-zA-Z0-9_]+)\}", self.path)


class KafkaTrigger(_Model):
    topic: str
    """A topic of the catalog, or ``*`` for every topic (the event archive)."""
    consumer_group: str | None = Field(None, alias="consumerGroup")
    batch_size: int = Field(100, alias="batchSize", ge=1, le=10_000)
    ordering: Literal["ordered", "unordered"] = "ordered"
    start_position: Literal["earliest", "latest"] = Field("earliest", alias="startPosition")
    mode: Literal["event", "batch"] = "event"
    """``event``: one CloudEvent per record (what Code Engine's subscription does). ``batch``: one
    ``com.retailfn.platform.kafka-batch.v1`` event per partition and poll, for functions that
    write records out in bulk; such a function is deployed as a ``retailfn worker``."""

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, v: str) -> str:
        if v != "*" and v not in TOPICS:
            raise ValueError(f"unknown topic {v!r}; known: {_known(TOPICS)}")
        return v

    @property
    def topics(self) -> list[str]:
        return sorted(TOPICS) if self.topic == "*" else [self.topic]


class CosTrigger(_Model):
    bucket: str
    event: Literal["write", "delete", "all"] = "write"
    prefix: str = ""
    suffix: str = ""

    @field_validator("bucket")
    @classmethod
    def _known_bucket(cls, v: str) -> str:
        if v not in BUCKETS:
            raise ValueError(f"unknown bucket {v!r}; known: {_known(BUCKETS)}")
        return v

    def matches(self, key: str, operation: Literal["write", "delete"]) -> bool:
        return (
            self.event in (operation, "all")
            and key.startswith(self.prefix)
            and key.endswith(self.suffix)
        )


_RATE = re.compile(r"^rate\((\d+) (second|seconds|minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")


class ScheduleTrigger(_Model):
    """``rate(5 minutes)`` or ``cron(*/5 * * * *)`` (five fields, UTC)."""

    expression: str = Field(alias="rate")
    enabled: bool = True

    @field_validator("expression")
    @classmethod
    def _parse(cls, v: str) -> str:
        v = v.strip()
        if _RATE.match(v):
            if int(_RATE.match(v).group(1)) == 0:  # type: ignore[union-attr]
                raise ValueError("rate must be at least 1")
            return v
        cron = _CRON.match(v)
        if cron:
            try:
                CronSim(cron.group(1), _EPOCH)
            except CronSimError as exc:
                raise ValueError(f"invalid cron expression {cron.group(1)!r}: {exc}") from None
            return v
        raise ValueError(f"schedule {v!r} must be 'rate(<n> <unit>)' or 'cron(<5 fields>)'")

    @property
    def interval(self) -> timedelta | None:
        m = _RATE.match(self.expression)
        if not m:
            return None
        unit = m.group(2).rstrip("s")
        return timedelta(**{f"{unit}s": int(m.group(1))})

    @property
    def cron(self) -> str | None:
        m = _CRON.match(self.expression)
        return m.group(1) if m else None


class EventSource(_Model):
    """One entry of a function's ``events``: exactly one of http, kafka, cos, schedule."""

    http: HttpTrigger | None = None
    kafka: KafkaTrigger | None = None
    cos: CosTrigger | None = None
    schedule: ScheduleTrigger | None = None

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_shorthand(cls, v: object) -> object:
        return {"rate": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _exactly_one(self) -> EventSource:
        set_ = [k for k in ("http", "kafka", "cos", "schedule") if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError("each event needs exactly one of: http, kafka, cos, schedule")
        return self

    @property
    def kind(self) -> Literal["http", "kafka", "cos", "schedule"]:
        for k in ("http", "kafka", "cos", "schedule"):
            if getattr(self, k) is not None:
                return k  # type: ignore[return-value]
        raise AssertionError("validated to have one")


class Delivery(_Model):
    """Knative's delivery spec: retries with backoff, then the dead letter."""

    retry: int = Field(3, ge=0, le=100)
    backoff_policy: Literal["linear", "exponential"] = Field("exponential", alias="backoffPolicy")
    backoff_delay: timedelta = Field(timedelta(milliseconds=200), alias="backoffDelay")
    backoff_max: timedelta = Field(timedelta(seconds=30), alias="backoffMax")
    dead_letter: str = Field(DEAD_LETTER_TOPIC, alias="deadLetter")

    @field_validator("dead_letter")
    @classmethod
    def _dead_letter_topic(cls, v: str) -> str:
        if v not in TOPICS:
            raise ValueError(f"unknown dead-letter topic {v!r}; known: {_known(TOPICS)}")
        return v

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        base = self.backoff_delay.total_seconds()
        delay = base * attempt if self.backoff_policy == "linear" else base * 2 ** (attempt - 1)
        return min(delay, self.backoff_max.total_seconds())


_HANDLER = re.compile(r"^[a-zA-Z_][\w]*(\.[a-zA-Z_][\w]*)*:[a-zA-Z_]\w*$")


class FunctionConfig(_Model):
    handler: str
    description: str = ""
    environment: EnvVars = {}
    events: tuple[EventSource, ...] = ()
    delivery: Delivery = Delivery()
    timeout: timedelta = timedelta(seconds=60)
    deploy: Literal["subscription", "worker"] | None = None
    """How an event function runs where ops deploy it (see :attr:`deployment`): ``worker``, an app
    consuming its consumer group through the project's runtime; ``subscription``, an app that the
    platform's subscription POSTs each event to (``shared.runtime.subscription``)."""

    @field_validator("deploy")
    @classmethod
    def _deploy_fits_the_triggers(cls, v: str | None, info: ValidationInfo) -> str | None:
        events = info.data.get("events") or ()
        if v is not None and not any(e.kind != "http" for e in events):
            raise ValueError("deploy is for event functions (kafka, cos, schedule); an HTTP "
                             "function is served by its own app")
        if v == "subscription":
            for i, e in enumerate(events):
                if e.kind != "kafka":
                    continue
                if e.kafka.mode == "batch":
                    raise ValueError(f"subscription delivers one event at a time, but events[{i}]"
                                     ".kafka has mode: batch; use deploy: worker")
                if e.kafka.ordering == "ordered":
                    raise ValueError(f"a subscription keeps no per-key order, but events[{i}]"
                                     ".kafka has ordering: ordered (the default); use deploy: "
                                     "worker, or ordering: unordered")
        return v

    @field_validator("handler")
    @classmethod
    def _handler_shape(cls, v: str) -> str:
        if not _HANDLER.match(v):
            raise ValueError(f"handler {v!r} must be 'package.module:function'")
        return v

    @property
    def module(self) -> str:
        return self.handler.split(":")[0]

    @property
    def target(self) -> str:
        return self.handler.split(":")[1]

    def triggers(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.kind == kind]

    @property
    def deployment(self) -> Literal["subscription", "worker"] | None:
        """``deploy``, or what the triggers need when it is not set (``worker`` for a batch or
        ordered Kafka trigger, else ``subscription``); ``None`` for an HTTP-only function."""
        if self.deploy is not None:
            return self.deploy
        if not any(e.kind != "http" for e in self.events):
            return None
        if any(t.mode == "batch" or t.ordering == "ordered" for t in self.triggers("kafka")):
            return "worker"
        return "subscription"


class Provider(_Model):
    name: str = "ibm"
    runtime: Literal["python3.11", "python3.12", "python3.13"] = "python3.11"
    region: str = "eu-de"
    stage: str = "local"
    environment: EnvVars = {}


class Stage(_Model):
    params: dict[str, Any] = {}
    environment: EnvVars = {}


def _function_name(name: str) -> str:
    if not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
        raise ValueError(f"function name {name!r} must be snake_case")
    return name


# Checked per key (not after the whole dict), so a bad name is reported beside other mistakes.
FunctionName = Annotated[str, AfterValidator(_function_name)]


class ServiceConfig(_Model):
    service: str = Field(pattern=r"^[a-z][a-z0-9-]{1,40}$")
    provider: Provider = Provider()
    stages: dict[str, Stage] = {}
    functions: dict[FunctionName, FunctionConfig]
    stage: str = "local"
    """The stage the file was resolved for (not written in the file)."""
    params: dict[str, Any] = {}
    """The resolved parameters of that stage (``stages.default.params`` overlaid by the stage's)."""

    @model_validator(mode="after")
    def _routes_are_unique(self) -> ServiceConfig:
        seen: dict[tuple[str, str], str] = {}
        for name, fn in self.functions.items():
            for http in fn.triggers("http"):
                route = (http.method, re.sub(r"\{[^}]+\}", "{}", http.path))
                if route in seen:
                    raise ValueError(
                        f"functions.{name}: {http.method.upper()} {http.path} is already "
                        f"served by {seen[route]}"
                    )
                seen[route] = name
        return self

    def environment_for(self, function: str) -> dict[str, str]:
        """The environment a function runs with: provider, then stage, then function."""
        env = dict(self.provider.environment)
        env.update(self.stages.get(self.stage, Stage()).environment)
        env.update(self.functions[function].environment)
        return env

    def consumer_group(self, function: str, trigger: KafkaTrigger) -> str:
        return trigger.consumer_group or f"{self.service}-{self.stage}-{function}"

    def topics_used(self) -> set[str]:
        used = {DEAD_LETTER_TOPIC}
        for fn in self.functions.values():
            used.update(name for t in fn.triggers("kafka") for name in t.topics)
            used.add(fn.delivery.dead_letter)
        return used

    def buckets_used(self) -> set[str]:
        used = {DEAD_LETTER_BUCKET}
        for fn in self.functions.values():
            used.update(t.bucket for t in fn.triggers("cos"))
        return used


# --- loading ----------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([a-z]+):([^}]*)\}")
_EPOCH = __import__("datetime").datetime(2026, 1, 1)


def _interpolate(node: Any, where: str, ctx: dict[str, Any], problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else str(k), ctx, problems)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{where}[{i}]", ctx, problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def resolve(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2).strip()
        default: str | None = None
        if "," in arg:
            arg, default = (s.strip().strip("'\"") for s in arg.split(",", 1))
        if kind == "env":
            value = ctx["env"].get(arg, default)
        elif kind == "param":
            value = ctx["params"].get(arg, default)
        elif kind == "sls" and arg == "stage":
            value = ctx["stage"]
        elif kind == "self" and arg == "service":
            value = ctx["service"]
        else:
            problems.append(f"{where}: unknown variable ${{{kind}:{arg}}}; "
                            "known: ${env:X}, ${param:x}, ${sls:stage}, ${self:service}")
            return m.group(0)
        if value is None:
            problems.append(f"{where}: ${{{kind}:{arg}}} is not set for stage "
                            f"{ctx['stage']!r} and has no default")
            return m.group(0)
        return str(value)

    whole = _VAR.fullmatch(node)
    if whole and whole.group(1) == "param":
        # A whole-value ${param:x} keeps the parameter's type (a number stays a number).
        arg = whole.group(2).split(",")[0].strip()
        if arg in ctx["params"]:
            return ctx["params"][arg]
    return _VAR.sub(resolve, node)


def _loc(loc: tuple[Any, ...]) -> str:
    # pydantic ends the location of a bad mapping key with "[key]": the key itself is the path.
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc
                   if p != "[key]").lstrip(".")


def _format(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        problems.append(f"{_loc(loc)}: {msg}" if loc else msg)
    return problems


def parse_service(text: str, *, stage: str | None = None, env: Mapping[str, str] | None = None,
                  source: str = "serverless.yaml") -> ServiceConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], source) from None
    if not isinstance(raw, dict):
        raise ConfigError(["the file must be a mapping with service, provider and functions"],
                          source)
    env = dict(os.environ if env is None else env)
    provider = raw.get("provider") or {}
    stage = stage or env.get("RETAILFN_STAGE") or provider.get("stage") or "local"
    stages = raw.get("stages") or {}
    if stages and stage not in stages:
        raise ConfigError([f"stages: unknown stage {stage!r}; known: {_known(stages)}"], source)
    params: dict[str, Any] = dict(((stages.get("default") or {}).get("params")) or {})
    params.update(((stages.get(stage) or {}).get("params")) or {})
    ctx = {"env": env, "params": params, "stage": stage, "service": raw.get("service", "")}
    problems: list[str] = []
    params = _interpolate(params, "params", ctx, problems)
    ctx["params"] = params
    resolved = _interpolate(raw, "", ctx, problems)
    if problems:
        raise ConfigError(problems, source)
    resolved["stage"] = stage
    resolved["params"] = params
    try:
        return ServiceConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_format(exc), source) from None


def load_service(path: Path | str = DEFAULT_PATH, *, stage: str | None = None,
                 env: Mapping[str, str] | None = None) -> ServiceConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], str(path)) from None
    return parse_service(text, stage=stage, env=env, source=str(path))
