"""``retailfn validate``: serverless.yaml, the code, ``events/`` and ``infra/`` cannot drift.

``serverless.yaml`` itself is checked when it is loaded (unknown topics and buckets, bad handlers'
shape, bad schedules). This module adds what needs the rest of the tree: every handler imports
and has the signature its triggers need, every topic and bucket a trigger uses is defined in
the Terraform under ``infra/`` (read with python-hcl2), with the partitions the catalog says,
and the state database's pieces agree (a Databases for PostgreSQL instance, a credential on it,
the secret with ``RETAILFN_DATABASE_URL`` that every app gets).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from events.catalog import TOPICS
from shared.runtime.config import ConfigError, ServiceConfig
from shared.runtime.loader import HandlerError, load_function

_BUCKET_PREFIX = re.compile(r"^\$\{var\.[a-z_]*prefix[a-z_]*\}-?")


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass
class InfraDefinitions:
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Topic name -> its attributes and the file that defines it."""
    buckets: dict[str, str] = field(default_factory=dict)
    """Logical bucket name -> the file that defines it."""
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Function name (its Terraform name) -> the app's attributes and file."""
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    """The ``input`` of each generated subscription (kind, function, event, topic, bucket, ...)."""
    generated_for: str | None = None
    """The service ``infra/generated`` was generated from (its ``locals.generated_for``)."""
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``ibm_database`` name -> its service and file."""
    resource_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``ibm_resource_key`` name -> the instance it is a key of (an expression) and file."""
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``ibm_code_engine_secret`` name -> the keys of its ``data`` and file."""
    generated_module: dict[str, Any] | None = None
    """The arguments of the module that calls ``./generated`` (``name`` and ``file`` added)."""

    def files_defining(self, what: str) -> str:
        files = sorted(
            {v["file"] for v in self.topics.values()}
            if what == "topics"
            else set(self.buckets.values())
        )
        return ", ".join(files) or "infra/"


def _resources(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, attributes) of every resource; hcl2 gives a list of blocks, JSON a mapping."""
    blocks = doc.get("resource", [])
    out = []
    for block in blocks if isinstance(blocks, list) else [blocks]:
        for rtype, named in block.items():
            if rtype == "//":
                continue
            for rname, attrs in named.items():
                out.append((_unquote(rtype), _unquote(rname), attrs))
    return out


def load_terraform(path: Path) -> dict[str, Any]:
    """One Terraform file: python-hcl2 for ``.tf``, JSON for ``.tf.json``."""
    with path.open(encoding="utf-8") as f:
        return json.load(f) if path.name.endswith(".tf.json") else hcl2.load(f)


def terraform_files(folder: Path) -> list[Path]:
    return sorted([*folder.rglob("*.tf"), *folder.rglob("*.tf.json")])


def read_infra(folder: Path) -> InfraDefinitions:
    """Topics, buckets, apps and subscriptions defined by the Terraform files in ``folder``."""
    found = InfraDefinitions()
    for path in terraform_files(folder):
        doc = load_terraform(path)
        rel = str(path.relative_to(folder.parent))
        for block in (
            doc.get("locals", [])
            if isinstance(doc.get("locals"), list)
            else [doc.get("locals") or {}]
        ):
            if isinstance(block, dict) and isinstance(block.get("generated_for"), dict):
                found.generated_for = block["generated_for"].get("service")
        modules = doc.get("module", [])
        for block in modules if isinstance(modules, list) else [modules]:
            for mname, args in block.items():
                if isinstance(args, dict) and _unquote(args.get("source")) == "./generated":
                    found.generated_module = {**args, "name": _unquote(mname), "file": rel}
        for rtype, rname, attrs in _resources(doc):
            if rtype == "ibm_database":
                found.databases[rname] = {"service": _unquote(attrs.get("service")), "file": rel}
            elif rtype == "ibm_resource_key":
                found.resource_keys[rname] = {
                    "instance": str(attrs.get("resource_instance_id", "")),
                    "file": rel,
                }
            elif rtype == "ibm_code_engine_secret":
                data = attrs.get("data")
                found.secrets[rname] = {
                    "keys": sorted(_unquote(k) for k in data) if isinstance(data, dict) else [],
                    "file": rel,
                }
            elif rtype == "ibm_event_streams_topic":
                name = _unquote(attrs.get("name"))
                found.topics[name] = {
                    "file": rel,
                    "partitions": attrs.get("partitions"),
                    "config": {
                        _unquote(k): _unquote(v) for k, v in (attrs.get("config") or {}).items()
                    },
                }
            elif rtype == "ibm_cos_bucket":
                logical = _BUCKET_PREFIX.sub("", _unquote(attrs.get("bucket_name", "")))
                found.buckets[logical] = rel
            elif rtype == "ibm_code_engine_app":
                found.apps[rname] = {**attrs, "file": rel}
            elif (
                rtype == "terraform_data"
                and isinstance(attrs.get("input"), dict)
                and attrs["input"].get("kind") in ("kafka", "cos", "cron")
            ):
                found.subscriptions.append({**attrs["input"], "file": rel})
    return found


def _blocks(value: Any) -> list[dict[str, Any]]:
    """A list of blocks (hcl2 and Terraform JSON) or one block, as a list of blocks."""
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, dict)]


POSTGRESQL_SERVICE = "databases-for-postgresql"
DATABASE_SECRET_REF = "${var.database_secret}"
"""How a generated app names the database secret in its ``run_env_variables``."""
DATABASE_URL_KEY = "RETAILFN_DATABASE_URL"


def _database_problems(infra: InfraDefinitions) -> list[str]:
    """The state database's pieces agree: a Databases for PostgreSQL instance, a credential on
    it, and the secret the generated module hands every app, which defines the URL."""
    problems: list[str] = []
    postgres = {n: d for n, d in infra.databases.items() if d["service"] == POSTGRESQL_SERVICE}
    if not infra.databases:
        problems.append(
            f"infra/: no ibm_database (service {POSTGRESQL_SERVICE!r}) for the state database; "
            f"the apps' {DATABASE_URL_KEY} comes from it"
        )
    for name, db in sorted(infra.databases.items()):
        if db["service"] != POSTGRESQL_SERVICE:
            problems.append(
                f"{db['file']}: ibm_database {name!r} has service {db['service']!r}; the state "
                f"database is {POSTGRESQL_SERVICE!r}"
            )
    for name, db in sorted(postgres.items()):
        if not any(
            re.search(rf"\bibm_database\.{re.escape(name)}\.", key["instance"])
            for key in infra.resource_keys.values()
        ):
            problems.append(
                f"{db['file']}: ibm_database {name!r} has no ibm_resource_key (the apps' "
                "credential, from which the database secret is made)"
            )
    module = infra.generated_module
    if module is None:
        return problems
    where = f"{module['file']}: module {module['name']!r}"
    given = module.get("database_secret")
    if given is None:
        problems.append(
            f"{where} passes no database_secret (the Code Engine secret with "
            f"{DATABASE_URL_KEY} that every app gets)"
        )
        return problems
    named = re.search(r"\bibm_code_engine_secret\.([A-Za-z0-9_-]+)\b", str(given))
    if named is None or named.group(1) not in infra.secrets:
        problems.append(
            f"{where} passes database_secret = {_unquote(given)}, which is no "
            "ibm_code_engine_secret defined in infra/"
        )
        return problems
    secret = infra.secrets[named.group(1)]
    if DATABASE_URL_KEY not in secret["keys"]:
        problems.append(
            f"{secret['file']}: ibm_code_engine_secret {named.group(1)!r} (the apps' "
            f"database_secret) does not define {DATABASE_URL_KEY}"
        )
    return problems


def _experiment_problems(service: ServiceConfig) -> list[str]:
    import yaml
    from pydantic import ValidationError

    from shared.crosssell.recommendations import parse_experiments

    problems = []
    for name in service.functions:
        raw = service.environment_for(name).get("RETAILFN_EXPERIMENTS")
        if not raw:
            continue
        try:
            parse_experiments(raw)
        except (ValidationError, yaml.YAMLError, TypeError) as exc:
            reason = str(exc).splitlines()
            problems.append(
                f"functions.{name}.environment.RETAILFN_EXPERIMENTS: not a valid "
                f"experiments configuration: {' '.join(reason[:3])}"
            )
    return problems


def validate_project(service: ServiceConfig, root: Path) -> list[str]:
    problems: list[str] = []
    for name, fn in service.functions.items():
        if not fn.events:
            problems.append(f"functions.{name}.events: a function needs at least one trigger")
        try:
            loaded = load_function(name, fn.handler)
        except HandlerError as exc:
            problems.append(str(exc))
            continue
        kinds = {e.kind for e in fn.events}
        if "http" in kinds and loaded.signature != "http":
            problems.append(
                f"functions.{name}: has an http trigger but {fn.handler} is a "
                "CloudEvent function (@functions_framework.aio.cloud_event)"
            )
        if kinds - {"http"} and loaded.signature != "cloudevent":
            problems.append(
                f"functions.{name}: has {', '.join(sorted(kinds - {'http'}))} "
                f"trigger(s) but {fn.handler} is an HTTP function"
            )

    problems.extend(_experiment_problems(service))
    infra_dir = root / "infra"
    if not infra_dir.is_dir():
        problems.append(f"infra/: not found under {root}")
        return problems
    try:
        infra = read_infra(infra_dir)
    except Exception as exc:  # noqa: BLE001  # any failure to read infra/ is reported as a problem
        # python-hcl2 raises lark errors of several kinds
        problems.append(f"infra/: Terraform does not parse: {exc}")
        return problems
    for name, fn in service.functions.items():
        for i, ev in enumerate(fn.events):
            for topic in ev.kafka.topics if ev.kafka is not None else ():
                if topic not in infra.topics:
                    problems.append(
                        f"functions.{name}.events[{i}].kafka.topic: topic {topic!r} has no "
                        f"ibm_event_streams_topic in infra/ (defined there: "
                        f"{', '.join(sorted(infra.topics)) or 'none'}; in "
                        f"{infra.files_defining('topics')})"
                    )
            if ev.cos is not None and ev.cos.bucket not in infra.buckets:
                problems.append(
                    f"functions.{name}.events[{i}].cos.bucket: bucket {ev.cos.bucket!r} has no "
                    f"ibm_cos_bucket in infra/ (defined there: "
                    f"{', '.join(sorted(infra.buckets)) or 'none'}; in "
                    f"{infra.files_defining('buckets')})"
                )
    for topic in sorted(service.topics_used()):
        if topic in infra.topics:
            defined = infra.topics[topic]
            want = TOPICS[topic]
            if defined["partitions"] != want.partitions:
                problems.append(
                    f"{defined['file']}: topic {topic!r} has {defined['partitions']} "
                    f"partitions; events/catalog.py says {want.partitions}"
                )
            for key, value in want.config().items():
                have = defined["config"].get(key)
                if have is not None and str(have) != value:
                    problems.append(
                        f"{defined['file']}: topic {topic!r} has {key} {have}; "
                        f"events/catalog.py says {value}"
                    )
        elif not any(
            topic in e.kafka.topics
            for f in service.functions.values()
            for e in f.events
            if e.kafka is not None
        ):
            problems.append(
                f"infra/: topic {topic!r} (dead letters) has no ibm_event_streams_topic"
            )
    for b in sorted(service.buckets_used()):
        if b not in infra.buckets and not any(
            e.cos is not None and e.cos.bucket == b
            for f in service.functions.values()
            for e in f.events
        ):
            problems.append(f"infra/: bucket {b!r} has no ibm_cos_bucket")
    if infra.generated_for == service.service:
        problems.extend(_check_generated(service, infra, root))
    return problems


def _check_generated(service: ServiceConfig, infra: InfraDefinitions, root: Path) -> list[str]:
    """Apps and subscriptions against the triggers; then the generated files against the code.

    Only for the service ``infra/generated`` was generated from: the e2e suite's and the tests'
    own services are checked for topics and buckets only."""
    from shared.tools.infra import GenerateError, app_command, ce_name, stale, tf_name

    problems: list[str] = []
    subs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sub in infra.subscriptions:
        subs.setdefault((sub.get("function", ""), sub.get("event", "")), []).append(sub)
    apps_file = next((a["file"] for a in infra.apps.values()), "infra/generated/apps.tf.json")
    subs_file = "infra/generated/subscriptions.tf.json"
    expected: set[tuple[str, str]] = set()
    for name, fn in service.functions.items():
        app = infra.apps.get(tf_name(name))
        if app is None:
            problems.append(
                f"serverless.yaml functions.{name} vs {apps_file}: no "
                f"ibm_code_engine_app {tf_name(name)!r} (run `retailfn infra generate`)"
            )
            continue
        worker = fn.deployment == "worker"
        command = [*(app.get("run_commands") or []), *(app.get("run_arguments") or [])]
        if command != app_command(service, name):
            mode = f" (deploy: {fn.deployment})" if fn.deployment else ""
            problems.append(
                f"serverless.yaml functions.{name}{mode} vs {app['file']}: the app "
                f"must run its image's command {app_command(service, name)}; it runs "
                f"{command or 'the image default'} (run `retailfn infra generate`)"
            )
        env_from = [
            (e.get("type"), e.get("reference")) for e in _blocks(app.get("run_env_variables"))
        ]
        if ("secret_full_reference", DATABASE_SECRET_REF) not in env_from:
            problems.append(
                f"{app['file']}: app {ce_name(name)!r} does not get the database secret "
                f"(run_env_variables has no secret_full_reference {DATABASE_SECRET_REF}), so "
                "it has no RETAILFN_DATABASE_URL (run `retailfn infra generate`)"
            )
        for i, ev in enumerate(fn.events):
            where = f"functions.{name}.events[{i}]"
            if ev.kind == "http" or worker or (ev.schedule is not None and not ev.schedule.enabled):
                continue
            expected.add((name, where))
            have = subs.get((name, where), [])
            if ev.kafka is not None:
                got = sorted(s.get("topic", "") for s in have if s.get("kind") == "kafka")
                if got != ev.kafka.topics:
                    shown = ev.kafka.topic
                    problems.append(
                        f"serverless.yaml {where}.kafka.topic {shown!r} vs {subs_file}: "
                        + (
                            f"the subscription of {where} is on {', '.join(map(repr, got))}"
                            if got
                            else f"no Kafka subscription for {where}"
                        )
                        + " (run `retailfn infra generate`)"
                    )
                continue
            if ev.cos is not None:
                got_cos = [
                    {
                        "kind": s.get("kind"),
                        "bucket": _BUCKET_PREFIX.sub("", str(s.get("bucket", ""))),
                        "event_type": s.get("event_type"),
                        "prefix": s.get("prefix", ""),
                        "suffix": s.get("suffix", ""),
                    }
                    for s in have
                ]
                for suffix in ev.cos.suffixes or ("",):  # one subscription per suffix
                    want = {
                        "kind": "cos",
                        "bucket": ev.cos.bucket,
                        "event_type": ev.cos.event,
                        "prefix": ev.cos.prefix,
                        "suffix": suffix,
                    }
                    if want not in got_cos:
                        other = [g for g in got_cos if g["suffix"] == suffix] or got_cos
                        problems.append(
                            f"serverless.yaml {where}.cos (bucket {ev.cos.bucket!r}, event "
                            f"{ev.cos.event!r}, prefix {ev.cos.prefix!r}, suffix {suffix!r}) "
                            f"vs {subs_file}: "
                            + (
                                f"the subscription has {other[0]}"
                                if other
                                else f"no COS subscription for {where}"
                            )
                            + " (run `retailfn infra generate`)"
                        )
                continue
            if not any(s.get("kind") == "cron" for s in have):
                problems.append(
                    f"serverless.yaml {where}.schedule vs {subs_file}: no cron "
                    f"subscription for {where} (run `retailfn infra generate`)"
                )
    for (fn_name, where), have in sorted(subs.items()):
        if (fn_name, where) not in expected:
            names = ", ".join(str(s.get("name")) for s in have)
            problems.append(
                f"{have[0]['file']}: subscription(s) {names} for {where}, which "
                f"serverless.yaml does not have (run `retailfn infra generate`)"
            )
    extra_apps = set(infra.apps) - {tf_name(n) for n in service.functions}
    for app_name in sorted(extra_apps):
        problems.append(
            f"{infra.apps[app_name]['file']}: app {ce_name(app_name)!r} has no "
            "function in serverless.yaml (run `retailfn infra generate`)"
        )
    problems.extend(_database_problems(infra))
    config = root / "serverless.yaml"
    if config.exists():
        try:
            problems.extend(stale(root, config))
        except (ConfigError, GenerateError) as exc:
            problems.append(f"infra/generated: cannot be generated from serverless.yaml: {exc}")
    return problems
