"""``retailfn deploy``: one command per stage, from the same definitions the runtime uses.

* A **direct** deploy (stage ``local``, or ``--mode direct``) creates the catalog's topics
  (partitions and configs from :mod:`events.catalog`) on the configured bus and the buckets on the
  configured object store, with the stage's environment from ``serverless.yaml`` applied on top of
  the process environment, exactly as the runtime does. It plans first (create / exists /
  differs), then applies only creations: a second run changes nothing and says so. Drift is
  reported, never fixed silently: more partitions only with ``increase_partitions``, configs only
  with ``update_configs``. Kafka cannot shrink a topic; fewer wanted partitions stay a reported
  drift.
  Then it brings the state database the settings name to the newest schema revision (``retailfn
  db upgrade``: safe to run twice, or by two deployers at once).
* A **Terraform** deploy (every other stage) writes the stage's variables to
  ``infra/stages/<stage>.tfvars.json`` (only the variables ``infra/`` declares, when it declares
  any) and the stage's remote state backend to ``infra/stages/<stage>.s3.tfbackend`` (COS through
  its S3-compatible API: one bucket and state key per stage, :func:`backend_config`), then prints
  or runs ``terraform -chdir=infra init -reconfigure -backend-config=... / plan / apply``. It
  flags placeholder values (``REPLACE-...``, ``image_tag = "latest"``) and never runs Terraform
  with one. Before Terraform rolls the apps it upgrades the schema of the stage's
  PostgreSQL (``RETAILFN_DATABASE_URL``), so that no app meets an older schema; a stage on the
  SQLite default has a database per app instance, which each creates on first use.

Topics: every topic of the catalog, which is a superset of ``ServiceConfig.topics_used()``
(functions also *publish* to topics no function consumes). Buckets: every bucket of the catalog
(functions keep state in ``state``, ``events-archive`` ... without a trigger on them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from events.catalog import BUCKETS, TOPICS
from shared.integration.bus.port import BusError, EventBus, TopicSpec
from shared.integration.objectstore.port import ObjectStore
from shared.platform.settings import Settings
from shared.runtime.config import ServiceConfig

if TYPE_CHECKING:
    from sqlalchemy import Engine

TopicAction = Literal["create", "exists", "differs"]
BucketAction = Literal["create", "exists"]


class DeployError(Exception):
    """The deploy cannot go on; the message says why and what to do."""


# --- settings of a stage -------------------------------------------------------------------------


def stage_environment(service: ServiceConfig) -> dict[str, str]:
    """Provider then stage environment of ``serverless.yaml`` (no function-level variables)."""
    env = dict(service.provider.environment)
    stage = service.stages.get(service.stage)
    if stage is not None:
        env.update(stage.environment)
    return env


def stage_settings(service: ServiceConfig, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings the runtime has on ``service.stage``: the process environment, overlaid by the
    stage's environment in ``serverless.yaml`` (the runtime exports it the same way)."""
    environ = dict(os.environ if environ is None else environ)
    environ.update(stage_environment(service))
    fields = Settings.model_fields
    values: dict[str, Any] = {  # raw strings; Settings parses them as the environment would be
        k.removeprefix("RETAILFN_").lower(): v
        for k, v in environ.items()
        if k.startswith("RETAILFN_") and k.removeprefix("RETAILFN_").lower() in fields
    }
    # Init values win over the environment in pydantic-settings, so this is the overlay.
    return Settings(**values)


# --- the plan -------------------------------------------------------------------------------------


@dataclass
class TopicPlan:
    name: str
    action: TopicAction
    partitions: int
    """What the catalog says."""
    existing_partitions: int | None = None
    config: dict[str, str] = field(default_factory=dict)
    config_drift: dict[str, dict[str, str | None]] = field(default_factory=dict)
    """key -> {"want": catalog value, "have": broker value}; only keys the broker reports."""
    notes: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    """What this run did to the topic (``created``, ``partitions 6 -> 12``, ``configs updated``)."""

    @property
    def partition_drift(self) -> int:
        if self.existing_partitions is None:
            return 0
        return self.partitions - self.existing_partitions

    @property
    def done_fixes_all(self) -> bool:
        """True unless the topic still differs from the catalog after this run."""
        if self.action != "differs":
            return True
        partitions_ok = self.partition_drift == 0 or (
            self.partition_drift > 0 and any(d.startswith("partitions") for d in self.done)
        )
        configs_ok = not self.config_drift or "configs updated" in self.done
        return partitions_ok and configs_ok


@dataclass
class BucketPlan:
    name: str
    """The logical name (catalog)."""
    physical: str
    action: BucketAction
    done: list[str] = field(default_factory=list)


@dataclass
class SchemaPlan:
    database: str
    """The state database, without its password."""
    current: str | None
    """The revision it is at (``None``: no schema yet)."""
    head: str
    """The newest revision this code knows."""
    done: list[str] = field(default_factory=list)

    @property
    def action(self) -> Literal["upgrade", "current"]:
        return "current" if self.current == self.head else "upgrade"


@dataclass
class DeployReport:
    stage: str
    mode: Literal["direct"]
    bus: str
    objectstore: str
    dry_run: bool
    topics: list[TopicPlan]
    buckets: list[BucketPlan]
    schema: SchemaPlan | None = None

    @property
    def changed(self) -> bool:
        return (
            any(t.done for t in self.topics)
            or any(b.done for b in self.buckets)
            or bool(self.schema and self.schema.done)
        )

    @property
    def drift(self) -> list[TopicPlan]:
        """Topics that still differ from the catalog after this run."""
        return [t for t in self.topics if t.action == "differs" and not t.done_fixes_all]

    def summary(self) -> str:
        n_t, n_b = len(self.topics), len(self.buckets)
        if self.dry_run:
            counts = _counts(self)

            def said(kind: str) -> str:
                return ", ".join(f"{n} {a}" for a, n in counts[kind].items()) or "none"

            line = (
                f"plan (dry run, nothing changed): topics: {said('topics')}; "
                f"buckets: {said('buckets')}"
            )
            if self.schema is not None:
                line += f"; state schema: {self.schema.action}"
            return line
        if not self.changed:
            line = f"no changes: {n_t} topics and {n_b} buckets already exist"
        else:
            created_t = sum("created" in t.done for t in self.topics)
            created_b = sum("created" in b.done for b in self.buckets)
            fixed = sum(bool(t.done) and "created" not in t.done for t in self.topics)
            line = (
                f"created {created_t} topics and {created_b} buckets"
                + (f", updated {fixed} topics" if fixed else "")
                + f" ({n_t} topics and {n_b} buckets in all)"
            )
            if self.schema is not None and self.schema.done:
                line += f"; state schema upgraded to {self.schema.head}"
        if self.drift:
            line += f"; {len(self.drift)} topic(s) differ from the catalog (see above)"
        return line

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "mode": self.mode,
            "bus": self.bus,
            "objectstore": self.objectstore,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "summary": self.summary(),
            "counts": _counts(self),
            "topics": [asdict(t) for t in self.topics],
            "buckets": [asdict(b) for b in self.buckets],
            "schema": _schema_json(self.schema),
        }

    def lines(self) -> list[str]:
        """Human-readable, one line per topic and bucket, then the summary."""
        out = [f"stage {self.stage}: bus {self.bus}, object store {self.objectstore}"]
        for t in self.topics:
            state = t.action if not t.done else ", ".join(t.done)
            line = f"  topic  {t.name:<32} {state:<10} partitions={t.partitions}"
            if t.existing_partitions is not None and t.partition_drift:
                line += f" (has {t.existing_partitions})"
            for key, d in t.config_drift.items():
                line += f" {key}: want {d['want']}, has {d['have']}"
            out.append(line)
            out.extend(f"         {'':<32} note: {n}" for n in t.notes)
        for b in self.buckets:
            state = b.action if not b.done else ", ".join(b.done)
            out.append(f"  bucket {b.physical:<32} {state}")
        if self.schema is not None:
            sc = self.schema
            state = ", ".join(sc.done) or (
                f"at {sc.head}" if sc.action == "current" else f"{sc.current} -> {sc.head}"
            )
            out.append(f"  schema {sc.database} {state}")
        out.append(self.summary())
        return out


def _schema_json(schema: SchemaPlan | None) -> dict[str, Any] | None:
    return {**asdict(schema), "action": schema.action} if schema is not None else None


def _counts(report: DeployReport) -> dict[str, dict[str, int]]:
    def tally(actions: Sequence[str]) -> dict[str, int]:
        return {a: actions.count(a) for a in sorted(set(actions))}

    return {
        "topics": tally([t.action for t in report.topics]),
        "buckets": tally([b.action for b in report.buckets]),
    }


# --- direct deploy --------------------------------------------------------------------------------


def _grow(bus: EventBus, topic: str, total: int) -> None:
    try:
        bus.add_partitions(topic, total)
    except BusError as exc:
        raise DeployError(str(exc)) from exc


def _set_configs(bus: EventBus, topic: str, config: Mapping[str, str]) -> None:
    try:
        bus.alter_topic_configs(topic, config)
    except BusError as exc:
        raise DeployError(str(exc)) from exc


def wanted_topics(service: ServiceConfig) -> list[TopicSpec]:
    """Every catalog topic (the used ones are a subset: serverless.yaml is validated against it)."""
    unknown = sorted(service.topics_used() - set(TOPICS))
    if unknown:  # cannot happen for a validated config; kept as a guard for the future
        raise DeployError(f"serverless.yaml uses topics missing from the catalog: {unknown}")
    return [TopicSpec(t.name, t.partitions, t.config()) for t in TOPICS.values()]


def plan(
    service: ServiceConfig, settings: Settings, bus: EventBus, store: ObjectStore
) -> DeployReport:
    """What a deploy would do; changes nothing."""
    existing = bus.list_topics()
    topics = []
    for spec in wanted_topics(service):
        config = dict(spec.config)
        if spec.name not in existing:
            topics.append(TopicPlan(spec.name, "create", spec.partitions, config=config))
            continue
        have = existing[spec.name]
        reported = bus.topic_configs(spec.name, list(config))
        drift: dict[str, dict[str, str | None]] = {
            k: {"want": v, "have": reported[k]}
            for k, v in config.items()
            if k in reported and reported[k] != v
        }
        t = TopicPlan(spec.name, "exists", spec.partitions, have, config, drift)
        if have != spec.partitions or drift:
            t.action = "differs"
        if have < spec.partitions:
            t.notes.append(
                f"has {have} partitions, the catalog says {spec.partitions}: "
                "--increase-partitions adds them (keys move to other partitions)"
            )
        elif have > spec.partitions:
            t.notes.append(
                f"has {have} partitions, more than the catalog's {spec.partitions}: "
                "Kafka cannot remove partitions; raise the catalog or recreate the topic"
            )
        if drift:
            t.notes.append("configs differ from the catalog: --update-configs sets them")
        topics.append(t)
    buckets = [
        BucketPlan(
            name,
            settings.bucket(name),
            "exists" if store.bucket_exists(settings.bucket(name)) else "create",
        )
        for name in BUCKETS
    ]
    bus_desc = (
        "embedded " + str(settings.data_dir / "bus")
        if settings.bus == "embedded"
        else f"kafka {settings.kafka_bootstrap_servers}"
    )
    store_desc = (
        "local " + str(settings.data_dir / "objects")
        if settings.objectstore == "local"
        else f"cos {settings.cos_endpoint}"
        + (f" (prefix {settings.bucket_prefix})" if settings.bucket_prefix else "")
    )
    return DeployReport(service.stage, "direct", bus_desc, store_desc, True, topics, buckets)


def apply(
    report: DeployReport,
    bus: EventBus,
    store: ObjectStore,
    *,
    increase_partitions: bool = False,
    update_configs: bool = False,
) -> DeployReport:
    """Create what the plan says is missing; fix drift only where a flag allows it."""
    report.dry_run = False
    to_create = [
        TopicSpec(t.name, t.partitions, t.config) for t in report.topics if t.action == "create"
    ]
    created = set(bus.create_topics(to_create)) if to_create else set()
    for t in report.topics:
        if t.name in created:
            t.done.append("created")
        elif t.action == "create":
            t.action = "exists"  # created meanwhile by another process
            t.notes.append("created by someone else meanwhile")
        if t.action != "differs":
            continue
        if increase_partitions and t.partition_drift > 0:
            _grow(bus, t.name, t.partitions)
            t.done.append(f"partitions {t.existing_partitions} -> {t.partitions}")
        if update_configs and t.config_drift:
            _set_configs(
                bus,
                t.name,
                {k: d["want"] for k, d in t.config_drift.items() if d["want"] is not None},
            )
            t.done.append("configs updated")
    for b in report.buckets:
        if b.action == "create" and store.create_bucket(b.physical):
            b.done.append("created")
    return report


def deploy_direct(
    service: ServiceConfig,
    *,
    dry_run: bool = False,
    increase_partitions: bool = False,
    update_configs: bool = False,
    environ: Mapping[str, str] | None = None,
) -> DeployReport:
    """Plan, and unless ``dry_run`` apply, against the stage's configured bus, object store and
    state database."""
    from shared.platform.adapters import (
        event_bus_from_settings,
        object_store_from_settings,
        state_engine_from_settings,
    )

    settings = stage_settings(service, environ)
    bus = event_bus_from_settings(settings)
    store = object_store_from_settings(settings)
    try:
        report = plan(service, settings, bus, store)
        report.schema = upgrade_schema(state_engine_from_settings(settings), dry_run=dry_run)
        if not dry_run:
            apply(
                report,
                bus,
                store,
                increase_partitions=increase_partitions,
                update_configs=update_configs,
            )
        return report
    finally:
        bus.close()
        store.close()


def upgrade_schema(engine: Engine, *, dry_run: bool = False) -> SchemaPlan:
    """Bring the state database of ``engine`` (disposed after) to the newest revision
    (``retailfn db upgrade``); with ``dry_run``, only say where it is."""
    from shared.integration.state import StateUnavailable, describe
    from shared.integration.state.migrate import current, head, upgrade

    try:
        result = SchemaPlan(describe(engine), current(engine), head())
        if not dry_run and result.action == "upgrade":
            upgrade(engine)
            result.done.append(f"upgraded {result.current or 'empty'} -> {result.head}")
        return result
    except StateUnavailable as exc:
        raise DeployError(
            f"{exc}; check RETAILFN_DATABASE_URL and that the database is up and reachable"
        ) from None
    finally:
        engine.dispose()


# --- Terraform deploy -----------------------------------------------------------------------------

TFVARS_DIR = "stages"


def _unquote(value: Any) -> Any:
    # python-hcl2 keeps the quotes of string literals ('"prod"').
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def declared_variables(infra: Path) -> dict[str, bool] | None:
    """Variables the root module in ``infra/`` declares -> whether they have a default; None when
    none are found. Reads ``*.tf`` with python-hcl2 and ``*.tf.json`` as JSON; modules (such as
    ``infra/generated/``) get their variables from the root module, so they are not read."""
    found: dict[str, bool] = {}
    for path in sorted([*infra.glob("*.tf"), *infra.glob("*.tf.json")]):
        try:
            if path.name.endswith(".tf.json"):
                doc = json.loads(path.read_text(encoding="utf-8"))
                blocks = doc.get("variable", {})
                blocks = [blocks] if isinstance(blocks, dict) else blocks
            else:
                import hcl2

                with path.open(encoding="utf-8") as fh:
                    blocks = hcl2.load(fh).get("variable", [])
        except Exception:  # noqa: BLE001, S112 - a file being edited; validate reports it, not deploy
            continue
        for block in blocks:
            for name, body in block.items():
                found[_unquote(name)] = "default" in (body or {})
    return found or None


def operator_variables(path: Path) -> dict[str, Any]:
    """The hand-written ``infra/stages/<stage>.tfvars`` (resource group, registry, plans)."""
    if not path.is_file():
        return {}
    import hcl2

    try:
        with path.open(encoding="utf-8") as fh:
            doc = hcl2.load(fh)
    except Exception as exc:  # noqa: BLE001 - any parse error is the operator's to fix
        raise DeployError(f"{path}: not valid HCL: {exc}") from None
    return {k: _unquote(v) for k, v in doc.items() if not k.startswith("__")}


def terraform_variables(
    service: ServiceConfig, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every variable serverless.yaml can give the Terraform of its stage. The functions'
    environment is not among them: ``retailfn infra generate`` bakes it into infra/generated/."""
    env = stage_environment(service)
    prefix = env.get("RETAILFN_BUCKET_PREFIX") or f"{service.service}-{service.stage}"
    values: dict[str, Any] = {
        "service": service.service,
        "stage": service.stage,
        "region": service.provider.region,
        "bucket_prefix": prefix,
    }
    values.update(extra or {})
    return values


@dataclass
class TerraformDeploy:
    stage: str
    var_file: Path
    """Where the variables from serverless.yaml are (or would be) written."""
    variables: dict[str, Any]
    skipped: list[str]
    """Variables serverless.yaml could give but infra/ does not declare (not written)."""
    missing: list[str]
    """Variables infra/ requires (no default) that nobody gave: set TF_VAR_<name> or --var."""
    commands: list[list[str]]
    operator_var_file: Path | None = None
    """The hand-written ``infra/stages/<stage>.tfvars``, passed before ours when it exists."""
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Variables the operator's file sets differently from serverless.yaml (ours win)."""
    backend_file: Path | None = None
    """``infra/stages/<stage>.s3.tfbackend``, when infra/ declares the s3 backend."""
    backend: dict[str, Any] = field(default_factory=dict)
    placeholders: list[str] = field(default_factory=list)
    """Values that are stand-ins (``REPLACE-...``, ``image_tag = "latest"``); Terraform is not
    run while there is one."""
    written: bool = False
    ran: list[dict[str, Any]] = field(default_factory=list)
    terraform: str | None = None
    upgrade_command: list[str] | None = None
    """``retailfn --stage <stage> db upgrade``, to run before Terraform rolls the apps, when the
    stage names a PostgreSQL (``RETAILFN_DATABASE_URL``); run here when Terraform is."""
    schema: SchemaPlan | None = None
    """The stage's schema as the upgrade before Terraform left it (``None``: not run)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "mode": "terraform",
            "var_file": str(self.var_file),
            "operator_var_file": str(self.operator_var_file) if self.operator_var_file else None,
            "backend_file": str(self.backend_file) if self.backend_file else None,
            "backend": self.backend,
            "placeholders": self.placeholders,
            "written": self.written,
            "variables": self.variables,
            "skipped": self.skipped,
            "missing": self.missing,
            "conflicts": self.conflicts,
            "commands": [" ".join(c) for c in self.commands],
            "terraform": self.terraform,
            "ran": self.ran,
            "upgrade_command": " ".join(self.upgrade_command) if self.upgrade_command else None,
            "schema": _schema_json(self.schema),
        }


def backend_config(service: ServiceConfig) -> dict[str, Any]:
    """The stage's remote state: Terraform's ``s3`` backend on IBM COS (S3-compatible API).

    One bucket per stage, ``<bucket prefix>-terraform-state`` in the stage's region (the bucket
    prefix as for the stage's other buckets), key ``<service>/<stage>/terraform.tfstate``. The
    bucket lives in a COS instance made once before the first deploy (this configuration
    creates the functions' COS instance, so it cannot hold its own state). Credentials are COS
    HMAC keys in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, never in a file. The AWS-only
    checks are off: COS has no STS, no account id and no AWS region names."""
    env = stage_environment(service)
    prefix = env.get("RETAILFN_BUCKET_PREFIX") or f"{service.service}-{service.stage}"
    region = service.provider.region
    return {
        "bucket": f"{prefix}-terraform-state",
        "key": f"{service.service}/{service.stage}/terraform.tfstate",
        "region": region,
        "endpoints": {"s3": f"https://s3.{region}.cloud-object-storage.appdomain.cloud"},
        "use_path_style": True,
        "skip_credentials_validation": True,
        "skip_region_validation": True,
        "skip_requesting_account_id": True,
        "skip_metadata_api_check": True,
        "skip_s3_checksum": True,
    }


def _hcl(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_hcl(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))  # a JSON string is a valid HCL string literal


def backend_file_text(config: Mapping[str, Any]) -> str:
    """``config`` as a ``-backend-config`` file (HCL attributes)."""
    lines = [
        (
            "# written by `retailfn deploy` from serverless.yaml; the stage's remote state "
            "(infra/backend.tf)"
        )
    ]
    lines += [f"{k} = {_hcl(v)}" for k, v in config.items()]
    return "\n".join(lines) + "\n"


def placeholders(values: Mapping[str, tuple[Any, str]]) -> list[str]:
    """One line per variable whose value is a stand-in: ``REPLACE-...`` anywhere in it, or an
    ``image_tag`` of ``latest`` (a moving tag: a plan cannot say which images it deploys)."""
    found = []
    for name, (value, where) in sorted(values.items()):
        if isinstance(value, str) and "REPLACE-" in value:
            found.append(
                f"{name} = {json.dumps(value)} ({where}): a placeholder; set the real value"
            )
        elif name == "image_tag" and value == "latest":
            found.append(
                f'{name} = "latest" ({where}): a moving tag; deploy the tag you built '
                "and pushed (e.g. the commit, --var image_tag=$TAG)"
            )
    return found


def terraform_commands(
    stage: str, infra: Path, var_files: Sequence[Path], root: Path, backend_file: Path | None = None
) -> list[list[str]]:
    chdir = os.path.relpath(infra, root) if infra.is_relative_to(root) else str(infra)
    # With -chdir, terraform reads paths relative to infra/; a later -var-file wins.
    var_args = [f"-var-file={os.path.relpath(f, infra)}" for f in var_files]
    plan_file = f"{stage}.tfplan"
    # -reconfigure: the stages share infra/.terraform, each init points it at its own state.
    init = ["terraform", f"-chdir={chdir}", "init", "-input=false"]
    if backend_file is not None:
        init += ["-reconfigure", f"-backend-config={os.path.relpath(backend_file, infra)}"]
    return [
        init,
        ["terraform", f"-chdir={chdir}", "plan", "-input=false", *var_args, f"-out={plan_file}"],
        ["terraform", f"-chdir={chdir}", "apply", "-input=false", plan_file],
    ]


def declares_s3_backend(infra: Path) -> bool:
    """True when the root module in ``infra/`` has a ``backend "s3"`` block."""
    import re

    pattern = re.compile(r'^\s*backend\s+"s3"\s*\{', re.MULTILINE)
    return any(pattern.search(p.read_text(encoding="utf-8")) for p in sorted(infra.glob("*.tf")))


def deploy_terraform(
    service: ServiceConfig,
    root: Path,
    *,
    dry_run: bool = False,
    run: bool | None = None,
    extra: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> TerraformDeploy:
    """Write the stage's tfvars from serverless.yaml, then print the terraform commands or run them.

    ``run``: None runs them when ``terraform`` is on the PATH, False never, True requires it.
    The operator's own ``infra/stages/<stage>.tfvars`` (resource group, registry, plans), when
    present, is passed first; ``infra/stages/<stage>.tfvars.json`` (written here) second, so that
    serverless.yaml wins where both set a variable.
    """
    environ = dict(os.environ if environ is None else environ)
    infra = root / "infra"
    var_file = infra / TFVARS_DIR / f"{service.stage}.tfvars.json"
    operator_file = infra / TFVARS_DIR / f"{service.stage}.tfvars"
    operator = operator_variables(operator_file)
    values = terraform_variables(service, extra)
    declared = declared_variables(infra)
    skipped: list[str] = []
    missing: list[str] = []
    if declared is not None:
        skipped = sorted(k for k in values if k not in declared)
        values = {k: v for k, v in values.items() if k in declared}
        missing = sorted(
            k
            for k, has_default in declared.items()
            if not has_default
            and k not in values
            and k not in operator
            and f"TF_VAR_{k}" not in environ
        )
    conflicts = {
        k: {"serverless.yaml": v, operator_file.name: operator[k]}
        for k, v in values.items()
        if k in operator and operator[k] != v and k not in (extra or {})
    }
    var_files = [*([operator_file] if operator else []), var_file]
    backend_file = (
        infra / TFVARS_DIR / f"{service.stage}.s3.tfbackend" if declares_s3_backend(infra) else None
    )
    backend = backend_config(service) if backend_file else {}
    commands = terraform_commands(service.stage, infra, var_files, root, backend_file)
    effective = {
        k: (
            v,
            str(operator_file.relative_to(root))
            if operator_file.is_relative_to(root)
            else str(operator_file),
        )
        for k, v in operator.items()
    }
    effective.update(
        {k: (v, "--var" if k in (extra or {}) else "serverless.yaml") for k, v in values.items()}
    )
    result = TerraformDeploy(
        service.stage,
        var_file,
        values,
        skipped,
        missing,
        commands,
        operator_file if operator else None,
        conflicts,
        backend_file,
        backend,
        placeholders(effective),
    )
    # Only the database's URL: the stage's other settings (its brokers, say) need not be here.
    database_url = {**environ, **stage_environment(service)}.get("RETAILFN_DATABASE_URL")
    if database_url:
        result.upgrade_command = ["retailfn", "--stage", service.stage, "db", "upgrade"]
    if dry_run:
        return result
    var_file.parent.mkdir(parents=True, exist_ok=True)
    var_file.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if backend_file is not None:
        backend_file.write_text(backend_file_text(backend), encoding="utf-8")
    result.written = True
    terraform = shutil.which("terraform", path=environ.get("PATH"))
    result.terraform = terraform
    if run is False or (run is None and terraform is None):
        return result
    if terraform is None:
        raise DeployError("terraform is not on the PATH; install it or run the printed commands")
    if result.placeholders:
        raise DeployError(
            "placeholder values, not running terraform: " + "; ".join(result.placeholders)
        )
    if missing:
        raise DeployError(
            "infra/ needs variables that nobody set: "
            + ", ".join(missing)
            + " (put them in infra/stages/<stage>.tfvars, export TF_VAR_<name> "
            "or pass --var name=value)"
        )
    if database_url and result.upgrade_command:  # before the apps roll: none meets an older schema
        if echo:
            echo("$ " + " ".join(result.upgrade_command))
        from shared.integration.state import create_state_engine

        result.schema = upgrade_schema(create_state_engine(database_url))
    for cmd in commands:
        if echo:
            echo("$ " + " ".join(cmd))
        proc = subprocess.run([terraform, *cmd[1:]], cwd=root, env=environ, check=False)
        result.ran.append({"command": " ".join(cmd), "returncode": proc.returncode})
        if proc.returncode != 0:
            raise DeployError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}")
    return result
