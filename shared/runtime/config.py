"""``serverless.yaml``: the one description of the service that ops deploy from.

The file follows the Serverless Framework's shape (``service``, ``provider``, ``stages`` with
``params``, ``functions`` with ``handler`` and ``events``) plus a Knative-style ``delivery`` block,
because the platforms we deploy to (Code Engine subscriptions) give no retries or dead letters.

Triggers are written as Serverless writes them (``kafka`` with ``consumerGroupId``,
``startingPosition``; storage events with ``rules``, as ``cos:`` since the store is IBM COS);
README.md's "serverless.yaml dialect" shows each beside Serverless's. Loading resolves
``${param:x}`` (v4 ``stages.<stage>.params`` or v3 top-level ``params``), ``${env:X}`` /
``${env:X, default}``, ``${opt:stage}``, ``${sls:stage}`` and ``${self:path}``, then validates.
What Serverless accepts and we do not is refused saying what to write instead. Every mistake is
reported as one line with its path in the file and what is allowed, e.g.::

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
        super().__init__(
            f"{source}: " + "; ".join(problems)
            if len(problems) == 1
            else f"{source} has {len(problems)} problems:\n  " + "\n  ".join(problems)
        )


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


# Serverless's startingPosition values and the Kafka offset reset each means.
_STARTING_POSITIONS = {"TRIM_HORIZON": "earliest", "LATEST": "latest"}


class KafkaTrigger(_Model):
    """A Kafka event, with the field names of Serverless's ``kafka`` event."""

    topic: str
    """A topic of the catalog, or ``*`` for every topic (the event archive)."""
    consumer_group: str | None = Field(None, alias="consumerGroupId")
    batch_size: int = Field(100, alias="batchSize", ge=1, le=10_000)
    ordering: Literal["ordered", "unordered"] = "ordered"
    start_position: Literal["earliest", "latest"] = Field("earliest", alias="startingPosition")
    """Where a new consumer group starts: written ``TRIM_HORIZON`` (the oldest retained record)
    or ``LATEST``, as in Serverless; held as Kafka's ``earliest`` / ``latest``."""
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

    @field_validator("start_position", mode="before")
    @classmethod
    def _serverless_position(cls, v: object) -> object:
        if isinstance(v, str) and v in _STARTING_POSITIONS:
            return _STARTING_POSITIONS[v]
        if isinstance(v, str) and v.upper() == "AT_TIMESTAMP":
            raise ValueError(
                "startingPosition AT_TIMESTAMP is not supported (a Code Engine "
                "Kafka subscription cannot start at a time); write TRIM_HORIZON "
                "or LATEST"
            )
        if isinstance(v, str) and v.lower() in ("earliest", "latest"):
            raise ValueError(
                f"startingPosition {v!r} is written "
                f"{'TRIM_HORIZON' if v.lower() == 'earliest' else 'LATEST'} "
                "(Serverless's name)"
            )
        raise ValueError(f"startingPosition {v!r} must be TRIM_HORIZON or LATEST")

    @property
    def topics(self) -> list[str]:
        return sorted(TOPICS) if self.topic == "*" else [self.topic]


class CosRule(_Model):
    """One filter rule of a storage event: ``{prefix: ...}`` or ``{suffix: ...}``."""

    prefix: str | None = None
    suffix: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CosRule:
        if (self.prefix is None) == (self.suffix is None):
            raise ValueError("a rule is either {prefix: ...} or {suffix: ...}")
        return self


# Serverless's s3 event types that COS can notify, and what they mean here.
_COS_EVENTS = {
    "write": "write",
    "delete": "delete",
    "all": "all",
    "s3:ObjectCreated:*": "write",
    "s3:ObjectRemoved:*": "delete",
}


class CosTrigger(_Model):
    """An object storage event in the shape of Serverless's ``s3`` event, on IBM COS.

    ``rules`` hold at most one prefix and any number of suffixes: a key matches when it starts
    with the prefix and ends with one of the suffixes (Serverless allows one suffix per event;
    several suffixes here save repeating the event)."""

    bucket: str
    event: Literal["write", "delete", "all"] = "write"
    rules: tuple[CosRule, ...] = ()
    existing: bool = True
    """Serverless's ``existing: true``: always so here, since buckets come from the catalog."""

    @field_validator("bucket")
    @classmethod
    def _known_bucket(cls, v: str) -> str:
        if v not in BUCKETS:
            raise ValueError(f"unknown bucket {v!r}; known: {_known(BUCKETS)}")
        return v

    @field_validator("event", mode="before")
    @classmethod
    def _event_type(cls, v: object) -> object:
        if isinstance(v, str) and v in _COS_EVENTS:
            return _COS_EVENTS[v]
        raise ValueError(
            f"event {v!r} must be one of: s3:ObjectCreated:*, s3:ObjectRemoved:*, "
            "write, delete, all (COS notifies writes and deletes, not their kinds)"
        )

    @field_validator("existing")
    @classmethod
    def _bucket_exists(cls, v: bool) -> bool:
        if not v:
            raise ValueError(
                "existing: false asks for a bucket made for this event; buckets are "
                "defined in events/catalog.py and created by `retailfn deploy`, so "
                "remove existing (or write existing: true)"
            )
        return v

    @field_validator("rules")
    @classmethod
    def _one_prefix_distinct_suffixes(cls, v: tuple[CosRule, ...]) -> tuple[CosRule, ...]:
        prefixes = [r.prefix for r in v if r.prefix is not None]
        if len(prefixes) > 1:
            raise ValueError(
                f"one prefix per event (got {', '.join(map(repr, prefixes))}); "
                "write one cos event per prefix"
            )
        suffixes = [r.suffix for r in v if r.suffix is not None]
        # Each suffix becomes its own COS subscription: overlapping ones would deliver twice.
        for i, s in enumerate(suffixes):
            if s in suffixes[:i]:
                raise ValueError(f"suffix {s!r} is given twice")
            covering = [o for o in suffixes if o != s and s.endswith(o)]
            if covering:
                raise ValueError(f"suffix {s!r} is already matched by suffix {covering[0]!r}")
        return v

    @property
    def prefix(self) -> str:
        return next((r.prefix for r in self.rules if r.prefix is not None), "")

    @property
    def suffixes(self) -> tuple[str, ...]:
        return tuple(r.suffix for r in self.rules if r.suffix is not None)

    def matches(self, key: str, operation: Literal["write", "delete"]) -> bool:
        return (
            self.event in (operation, "all")
            and key.startswith(self.prefix)
            and (not self.suffixes or key.endswith(self.suffixes))
        )


_RATE = re.compile(r"^rate\((\d+) (second|seconds|minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")


def _five_field_form(fields: list[str]) -> str:
    """What to write instead of AWS's 6-field cron (minute hour dom month dow year)."""
    minute, hour, dom, month, dow, year = fields
    dom, dow = ("*" if f == "?" else f for f in (dom, dow))
    hint = (
        f"cron({' '.join(fields)}) has 6 fields (AWS's form, with a year); write the 5-field "
        f"form cron({minute} {hour} {dom} {month} {dow}) (minute hour day-of-month month "
        "day-of-week, UTC)"
    )
    if re.search(r"\d", dow):
        hint += "; AWS numbers the days of the week 1-7 from Sunday, the 5-field form 0-6"
    if year != "*":
        hint += f"; the year {year!r} has no 5-field equivalent"
    return hint


class ScheduleTrigger(_Model):
    """``rate(5 minutes)`` or ``cron(*/5 * * * *)`` (five fields, UTC)."""

    expression: str = Field(alias="rate")
    enabled: bool = True

    @field_validator("expression", mode="before")
    @classmethod
    def _one_expression(cls, v: object) -> object:
        # Serverless v3 writes the long form's rate as a list of expressions.
        if isinstance(v, list):
            if len(v) != 1:
                raise ValueError(
                    f"rate has {len(v)} expressions; write one schedule event per expression"
                )
            return v[0]
        return v

    @field_validator("expression")
    @classmethod
    def _parse(cls, v: str) -> str:
        v = v.strip()
        if _RATE.match(v):
            if int(_RATE.match(v).group(1)) == 0:  # type: ignore[union-attr]
                raise ValueError("rate must be at least 1")
            return v
        cron = _CRON.match(v)
        if cron and len(cron.group(1).split()) == 6:
            raise ValueError(_five_field_form(cron.group(1).split()))
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
                return k
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
            raise ValueError(
                "deploy is for event functions (kafka, cos, schedule); an HTTP "
                "function is served by its own app"
            )
        if v == "subscription":
            for i, e in enumerate(events):
                if e.kind != "kafka":
                    continue
                if e.kafka.mode == "batch":
                    raise ValueError(
                        f"subscription delivers one event at a time, but events[{i}]"
                        ".kafka has mode: batch; use deploy: worker"
                    )
                if e.kafka.ordering == "ordered":
                    raise ValueError(
                        f"a subscription keeps no per-key order, but events[{i}]"
                        ".kafka has ordering: ordered (the default); use deploy: "
                        "worker, or ordering: unordered"
                    )
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
    custom: dict[str, Any] = {}
    """Free-form values for ``${self:custom.x}``, as in the Serverless Framework."""
    stage: str = "local"
    """The stage the file was resolved for (not written in the file)."""
    params: dict[str, Any] = {}
    """The resolved parameters of that stage: the ``default`` ones overlaid by the stage's own
    (from ``stages.<stage>.params`` or Serverless v3's top-level ``params.<stage>``)."""

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

_VAR = re.compile(r"\$\{([^}]*)\}")
_EPOCH = __import__("datetime").datetime(2026, 1, 1)
_KNOWN_VARIABLES = "${env:X}, ${param:x}, ${opt:stage}, ${sls:stage}, ${self:path.in.file}"
_UNSET = object()


def _text(value: object) -> str:
    # Inside a longer string a YAML boolean reads as YAML wrote it, not as Python's True.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Resolver:
    """The variables of one file for one stage, resolved as the Serverless Framework does.

    ``${opt:stage}`` is the stage asked for (``--stage``, which deployed apps get as
    ``RETAILFN_STAGE``), ``${sls:stage}`` the stage the file is resolved for, ``${param:x}`` that
    stage's parameter, ``${self:a.b}`` the value at that path of the file (itself resolved)."""

    def __init__(
        self,
        raw: dict[str, Any],
        env: Mapping[str, str],
        option_stage: str | None,
        problems: list[str],
    ) -> None:
        self.raw = raw
        self.env = env
        self.option_stage = option_stage
        self.problems = problems
        self.stage: str | None = None
        """``None`` while ``provider.stage`` itself is being resolved."""
        self.params: dict[str, Any] = {}
        self._following: list[str] = []

    def resolve(self, node: Any, where: str) -> Any:
        if isinstance(node, dict):
            return {
                k: self.resolve(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()
            }
        if isinstance(node, list):
            return [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, str) or "${" not in node:
            return node
        whole = _VAR.fullmatch(node)
        if whole:
            # A whole value keeps its type: a number parameter stays a number.
            value = self._value(whole.group(1), where)
            return node if value is _UNSET else value

        def embed(m: re.Match[str]) -> str:
            value = self._value(m.group(1), where)
            if value is _UNSET:
                return m.group(0)
            if isinstance(value, dict | list):
                self.problems.append(
                    f"{where}: ${{{m.group(1)}}} is a "
                    f"{'mapping' if isinstance(value, dict) else 'list'}; it "
                    "can only be a whole value, not part of a string"
                )
                return m.group(0)
            return _text(value)

        return _VAR.sub(embed, node)

    def _value(self, expr: str, where: str) -> Any:
        kind, colon, arg = (s.strip() for s in expr.partition(":"))
        default: str | None = None
        if "," in arg:
            arg, default = (s.strip().strip("'\"") for s in arg.split(",", 1))
        variable = f"${{{kind}:{arg}}}"
        for_stage = f" for stage {self.stage!r}" if self.stage else ""
        if colon and kind == "env" and arg:
            value, unset = self.env.get(arg), f"is not set{for_stage} and has no default"
        elif colon and kind == "param" and arg:
            value, unset = self.params.get(arg), f"is not set{for_stage} and has no default"
        elif colon and kind == "opt" and arg == "stage":
            value, unset = (
                self.option_stage,
                (
                    "is not set: no --stage (or RETAILFN_STAGE) was given and it has no default; "
                    "write ${opt:stage, <stage>} or ${sls:stage}"
                ),
            )
        elif colon and kind == "sls" and arg == "stage":
            if self.stage is None:
                self.problems.append(
                    f"{where}: ${{sls:stage}} is the stage this value decides; "
                    "write ${opt:stage, <stage>}"
                )
                return _UNSET
            value, unset = self.stage, ""
        elif colon and kind == "self" and arg:
            value, unset = self._self(arg, where), f"is not set: the file has no {arg}"
            if value is _UNSET:
                return _UNSET
        else:
            self.problems.append(
                f"{where}: unknown variable ${{{expr}}}; known: {_KNOWN_VARIABLES}"
            )
            return _UNSET
        if value is None:
            value = default
        if value is None:
            self.problems.append(f"{where}: {variable} {unset}")
            return _UNSET
        return value

    def _self(self, path: str, where: str) -> Any:
        if path in self._following:
            self.problems.append(f"{where}: ${{self:{path}}} refers back to itself")
            return _UNSET
        node: Any = self.raw
        for part in path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        self._following.append(path)
        try:
            return self.resolve(node, path)
        finally:
            self._following.pop()


def _params_by_stage(raw: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    """Parameters per stage name (and ``default``): Serverless v3's top-level ``params`` or
    v4's ``stages.<stage>.params``."""
    written_stages = raw.get("stages")
    stages: dict[str, Any] = written_stages if isinstance(written_stages, dict) else {}
    v4 = {
        name: body["params"]
        for name, body in stages.items()
        if isinstance(body, dict) and isinstance(body.get("params"), dict)
    }
    if "params" not in raw:
        return v4
    v3 = raw["params"]
    if not isinstance(v3, dict):
        problems.append("params: must map stage names (and default) to their parameters")
        return {}
    if v4:
        problems.append(
            f"params: parameters are written both here (Serverless v3) and under "
            f"stages.<stage>.params (v4: {_known(v4)}); keep one of the two"
        )
    out = {}
    for name, body in v3.items():
        if isinstance(body, dict):
            out[str(name)] = body
        else:
            problems.append(f"params.{name}: must map parameter names to values")
    return out


# Fields Serverless users write that mean nothing here: refused, saying what to write instead.
# Keyed by (the mapping they are in, the field); "event" is one entry of a function's events.
_INSTEAD = {
    ("kafka", "consumerGroup"): "write consumerGroupId (Serverless's name)",
    ("kafka", "startPosition"): "write startingPosition: TRIM_HORIZON or LATEST (Serverless's "
    "names)",
    ("kafka", "bootstrapServers"): "the brokers are the stage's RETAILFN_KAFKA_BOOTSTRAP_SERVERS, "
    "not part of the event",
    ("kafka", "accessConfigurations"): "the credentials are the stage's RETAILFN_KAFKA_* "
    "settings, not part of the event",
    ("cos", "prefix"): "write rules: [{prefix: ...}], as in Serverless's s3 event",
    ("cos", "suffix"): "write rules: [{suffix: ...}], as in Serverless's s3 event",
    ("event", "s3"): "storage events are on IBM COS: write cos: with the same bucket, event and "
    "rules",
}


def _loc(loc: tuple[Any, ...]) -> str:
    # pydantic ends the location of a bad mapping key with "[key]": the key itself is the path.
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc if p != "[key]").lstrip(
        "."
    )


def _unknown_field(loc: tuple[Any, ...]) -> str:
    parent = loc[-2] if len(loc) >= 2 else ""
    if isinstance(parent, int) and len(loc) >= 3 and loc[-3] == "events":
        parent = "event"
    instead = _INSTEAD.get((str(parent), str(loc[-1])))
    return f"unknown field; {instead}" if instead else "unknown field"


def _format(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if err["type"] == "extra_forbidden":
            msg = _unknown_field(loc)
        problems.append(f"{_loc(loc)}: {msg}" if loc else msg)
    return problems


def parse_service(
    text: str,
    *,
    stage: str | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "serverless.yaml",
) -> ServiceConfig:
    """Resolve and validate one ``serverless.yaml``.

    The stage is ``stage`` (the ``--stage`` option), else ``RETAILFN_STAGE``, else
    ``provider.stage``, else ``local``. A stage with no parameters of its own gets the
    ``default`` ones, as in the Serverless Framework."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], source) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            ["the file must be a mapping with service, provider and functions"], source
        )
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    option_stage = stage or env.get("RETAILFN_STAGE") or None
    resolver = _Resolver(raw, env, option_stage, problems)
    written_provider = raw.get("provider")
    provider: dict[str, Any] = written_provider if isinstance(written_provider, dict) else {}
    written = resolver.resolve(provider.get("stage"), "provider.stage")
    if problems:  # without its stage the rest of the file cannot be resolved
        raise ConfigError(problems, source)
    resolver.stage = stage = option_stage or (str(written) if written else None) or "local"
    if "stage" in raw:  # the resolved stage is recorded there: a written one would be lost
        problems.append("stage: unknown field; write provider.stage (or pass --stage)")
    by_stage = _params_by_stage(raw, problems)
    resolver.params = {**by_stage.get("default", {}), **by_stage.get(stage, {})}
    resolver.params = resolver.resolve(resolver.params, "params")
    resolved = resolver.resolve({k: v for k, v in raw.items() if k != "params"}, "")
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), source)
    resolved["stage"] = stage
    resolved["params"] = resolver.params
    try:
        return ServiceConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_format(exc), source) from None


def load_service(
    path: Path | str = DEFAULT_PATH,
    *,
    stage: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ServiceConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], str(path)) from None
    return parse_service(text, stage=stage, env=env, source=str(path))
