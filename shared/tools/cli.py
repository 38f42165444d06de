"""The ``retailfn`` command line.

Results go to stdout, for people unless ``--json``; JSON logs go to stderr. A failure is one
``Error:`` line on stderr, exit code 2 for a usage or configuration mistake and 1 for a runtime
failure (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import errno
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from shared.platform.observability import configure_logging
from shared.platform.settings import LOCAL_STAGE, SettingsError, get_settings, process_settings
from shared.runtime.config import ConfigError, ServiceConfig, load_service

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from shared.runtime.app import Runtime
    from shared.runtime.deadletter import DeadLetterStore

log = logging.getLogger("retailfn.cli")


class ConfigProblem(click.ClickException):
    """A mistake in the configuration (serverless.yaml, ``RETAILFN_*``): exit code 2."""

    exit_code = 2


def _service(ctx: click.Context, *, settings: bool = True) -> ServiceConfig:
    """``serverless.yaml`` for the chosen stage, read once per command. With ``settings``, the
    stage's environment is applied first (shared/runtime/stage.py), so that everything the command
    reads afterwards (settings, adapters, credentials) is the stage's."""
    from shared.runtime.stage import apply_stage

    obj = ctx.find_root().obj
    service: ServiceConfig | None = obj.get("service")
    if service is None:
        service = obj["service"] = load_service(obj["config"], stage=obj["stage"])
    if settings and not obj.get("stage_applied"):
        applied = apply_stage(service, allow_embedded=obj["allow_embedded"])
        configure_logging(applied.log_level)
        obj["stage_applied"] = True
    return service


def _error(exc: Exception) -> click.ClickException:
    """One line saying what went wrong and what to do; usage and configuration mistakes exit 2."""
    from shared.integration.bus.port import BusError
    from shared.integration.objectstore.port import ObjectStoreError
    from shared.platform.auth_dev import DevOnlyError
    from shared.runtime.app import UnknownFunction
    from shared.runtime.loader import HandlerError
    from shared.runtime.stage import StageGuardError

    if isinstance(
        exc,
        ConfigError
        | SettingsError
        | StageGuardError
        | HandlerError
        | UnknownFunction
        | DevOnlyError,
    ):
        return ConfigProblem(str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return click.ClickException(
            f"{exc.strerror}: another process is using that port; stop "
            "it or choose another with --port"
        )
    settings = _settings_or_none()
    module = type(exc).__module__
    if isinstance(exc, BusError) or module.startswith("kafka"):
        where = settings.kafka_bootstrap_servers if settings else None
        return click.ClickException(
            f"event bus: {exc}"
            + (f" (RETAILFN_KAFKA_BOOTSTRAP_SERVERS={where})" if where else "")
            + "; check that the brokers are up and reachable from here"
        )
    if isinstance(exc, ObjectStoreError) or module.startswith(("ibm_botocore", "ibm_boto3")):
        where = settings.cos_endpoint if settings else None
        return click.ClickException(
            f"object store: {exc}"
            + (f" (RETAILFN_COS_ENDPOINT={where})" if where else "")
            + "; check the endpoint, the credentials and that the buckets are provisioned"
        )
    return click.ClickException(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")


def _settings_or_none() -> Any:
    try:
        return process_settings()
    except SettingsError:
        return None


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            raise _error(exc) from None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default="serverless.yaml",
    show_default=True,
    help="The service description.",
)
@click.option("--stage", default=None, help="Stage in serverless.yaml (default: provider.stage).")
@click.option(
    "--allow-embedded",
    is_flag=True,
    help="Let a stage other than local run on the embedded bus or folder store "
    "(RETAILFN_ALLOW_EMBEDDED=true does the same).",
)
@click.option("--debug", is_flag=True, help="On failure, show the traceback.")
@click.pass_context
def main(
    ctx: click.Context, config: Path, stage: str | None, allow_embedded: bool, debug: bool
) -> None:
    """retailfn: serverless retail functions, run locally from serverless.yaml."""
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, stage=stage, allow_embedded=allow_embedded, debug=debug)
    configure_logging(get_settings().log_level)


def _run_until_signal(runtime: Runtime) -> None:
    from shared.runtime.signals import run_until_signal

    def ready() -> None:
        runtime.wait_ready()
        log.info(
            "retailfn ready",
            extra={
                "stage": runtime.service.stage,
                "functions": runtime.names,
                **({"url": f"http://{runtime.host}:{runtime.port}"} if runtime.serve_http else {}),
            },
        )

    run_until_signal(runtime.start, runtime.stop, ready)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--functions", default="", help="Comma-separated subset of functions.")
@click.pass_context
def up(ctx: click.Context, host: str, port: int, functions: str) -> None:
    """Serve every HTTP trigger on one port and run every event trigger, in one process."""
    from shared.runtime.app import Runtime

    names = [f for f in functions.split(",") if f] or None
    _run_until_signal(
        Runtime(
            _service(ctx),
            functions=names,
            host=host,
            port=port,
            allow_embedded=ctx.obj["allow_embedded"],
        )
    )


@main.command()
@click.option(
    "--functions", default="", help="Comma-separated functions (default: all with event triggers)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=None,
    type=int,
    help="Also serve /healthz, /readyz and /metrics on this port (a platform's probes).",
)
@click.pass_context
def worker(ctx: click.Context, functions: str, host: str, port: int | None) -> None:
    """Run only event consumers; start several to share a consumer group's partitions."""
    from shared.runtime.app import Runtime

    service = _service(ctx)
    names = [f for f in functions.split(",") if f] or [
        n for n, f in service.functions.items() if any(e.kind != "http" for e in f.events)
    ]
    runtime = Runtime(
        service,
        functions=names,
        serve_http=port is not None,
        host=host,
        port=port or 0,
        allow_embedded=ctx.obj["allow_embedded"],
    )
    http_fns = [n for n in names if any(e.kind == "http" for e in service.functions[n].events)]
    if http_fns:
        raise click.UsageError(f"{', '.join(http_fns)} serve HTTP: run them with `retailfn up`")
    _run_until_signal(runtime)


@main.command()
@click.argument("function")
@click.option(
    "--event",
    "event_file",
    required=True,
    type=click.File("rb"),
    help="A structured-mode CloudEvent JSON file ('-' for stdin).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@click.pass_context
def invoke(
    ctx: click.Context,
    function: str,
    event_file: IO[bytes],
    as_json: bool,
) -> None:
    """Run one function once on one event, with its retries and dead letter.

    Exits 1 if the event was not handled (dead-lettered or abandoned)."""
    from cloudevents.http import from_json

    from shared.platform.adapters import get_bus, get_store
    from shared.runtime.app import Runtime

    service = _service(ctx)
    runtime = Runtime(
        service,
        functions=[function],
        serve_http=False,
        run_events=False,
        allow_embedded=ctx.obj["allow_embedded"],
    )
    try:
        runtime.start()
        if runtime.loaded[function].signature != "cloudevent":
            raise ConfigProblem(f"{function} is an HTTP function: run `retailfn up` and call it")
        try:
            ce = from_json(event_file.read())
        except Exception as exc:  # noqa: BLE001  # the SDK raises several types for a malformed event
            raise ConfigProblem(f"not a structured-mode CloudEvent: {exc}") from None
        outcome = runtime.invoker(function, "invoke", get_bus(), get_store()).deliver(ce)
    finally:
        runtime.stop()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "function": function,
                    "event_id": ce["id"],
                    "outcome": outcome.status,
                    "attempts": outcome.attempts,
                    "dead_letter_id": outcome.dead_letter_id,
                }
            )
        )
    elif outcome.status == "ok":
        click.echo(f"{function}: event {ce['id']} handled (attempts: {outcome.attempts})")
    elif outcome.status == "dead_letter":
        click.echo(
            f"{function}: event {ce['id']} dead-lettered after {outcome.attempts} "
            f"attempt(s) as {outcome.dead_letter_id} "
            f"(retailfn dlq show {outcome.dead_letter_id})"
        )
    else:
        click.echo(
            f"{function}: event {ce['id']} abandoned after {outcome.attempts} "
            "attempt(s) (shutting down)"
        )
    if outcome.status != "ok":
        sys.exit(1)


@main.command()
@click.pass_context
def validate(ctx: click.Context) -> None:
    """Check serverless.yaml against the code, events/ and infra/."""
    from shared.tools.validate import validate_project

    try:
        service = _service(ctx, settings=False)
    except ConfigError as exc:  # the verdict of validate, not a usage mistake
        raise click.ClickException(str(exc)) from None
    problems = validate_project(service, Path(ctx.obj["config"]).resolve().parent)
    if problems:
        for p in problems:
            click.echo(f"error: {p}", err=True)
        raise click.ClickException(f"{len(problems)} problem(s) in {ctx.obj['config']}")
    click.echo(
        f"{ctx.obj['config']}: {len(service.functions)} functions OK (stage {service.stage})"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
@click.pass_context
def provision(ctx: click.Context, as_json: bool) -> None:
    """Create the catalog's topics and buckets on the configured bus and object store, and the
    state database's schema (``db upgrade``)."""
    from shared.platform.adapters import get_bus, get_store
    from shared.runtime.app import provision as do_provision

    _service(ctx)
    with _state_errors():
        created = do_provision(get_bus(), get_store())
    if as_json:
        click.echo(json.dumps(created))
        return
    for kind in ("topics", "buckets"):
        click.echo(
            f"created {len(created[kind])} {kind}"
            + (f": {', '.join(created[kind])}" if created[kind] else " (all exist)")
        )


@main.group()
def dlq() -> None:
    """Dead letters: list, show and replay."""


@contextmanager
def _no_bucket_is_an_error() -> Iterator[None]:
    # Before anything was provisioned or dead-lettered the bucket is missing: say so, no traceback.
    from shared.integration.objectstore.port import NoSuchBucket

    try:
        yield
    except NoSuchBucket as exc:
        raise click.ClickException(
            f"{exc}: nothing dead-lettered on this object store yet, "
            "or it is not provisioned (retailfn provision)"
        ) from None


def _dead_letters() -> DeadLetterStore:
    from shared.platform.adapters import bucket, get_store
    from shared.runtime.config import DEAD_LETTER_BUCKET
    from shared.runtime.deadletter import DeadLetterStore

    return DeadLetterStore(get_store(), bucket(DEAD_LETTER_BUCKET))


@dlq.command("list")
@click.option("--function", default=None)
@click.option("--replayed", is_flag=True, help="List replayed dead letters instead of pending.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter.")
@click.pass_context
def dlq_list(ctx: click.Context, function: str | None, replayed: bool, as_json: bool) -> None:
    """One line per dead letter: id, function, event type and id, error."""
    _service(ctx)
    with _no_bucket_is_an_error():
        for d in _dead_letters().list(function, status="replayed" if replayed else "pending"):
            dl = d.dead_letter
            if as_json:
                click.echo(
                    json.dumps({"id": d.id, "status": d.status, **dl.model_dump(mode="json")})
                )
                continue
            click.echo(
                f"{d.id}  {dl.function:<22} {dl.event.type or '-'}  {dl.event.id or '-'}  "
                f"attempts={dl.attempts}  {dl.error.type}: {dl.error.message[:80]}"
            )


@dlq.command("show")
@click.argument("dead_letter_id")
@click.pass_context
def dlq_show(ctx: click.Context, dead_letter_id: str) -> None:
    """The whole dead letter as JSON."""
    _service(ctx)
    try:
        with _no_bucket_is_an_error():
            d = _dead_letters().get(dead_letter_id)
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None
    click.echo(
        json.dumps(
            {"id": d.id, "status": d.status, **d.dead_letter.model_dump(mode="json")}, indent=2
        )
    )


@dlq.command("replay")
@click.argument("dead_letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every pending dead letter.")
@click.option("--function", default=None, help="With --all: only this function's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter.")
@click.pass_context
def dlq_replay(
    ctx: click.Context,
    dead_letter_id: str | None,
    replay_all: bool,
    function: str | None,
    as_json: bool,
) -> None:
    """Deliver dead letters to their function again; success moves them to `replayed`.

    Exits 1 if any of them failed again (it stays pending)."""
    from shared.platform.adapters import get_bus, get_store
    from shared.runtime.app import Runtime
    from shared.runtime.deadletter import original_event

    if not (dead_letter_id or replay_all):
        raise click.UsageError("give a dead letter id or --all")
    service = _service(ctx)
    store = _dead_letters()
    try:
        with _no_bucket_is_an_error():
            chosen = [store.get(dead_letter_id)] if dead_letter_id else list(store.list(function))
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None
    names = sorted({d.dead_letter.function for d in chosen})
    runtime = Runtime(
        service,
        functions=names,
        serve_http=False,
        run_events=False,
        allow_embedded=ctx.obj["allow_embedded"],
    ).start()
    failed = 0
    for d in chosen:
        if d.dead_letter.event.data_truncated:
            # Only the beginning of the data was kept: replaying it would fail again and
            # overwrite the dead letter that still says how large the original was.
            failed += 1
            event = d.dead_letter.event
            where = (
                f"topic {event.topic} partition {event.partition} offset {event.offset}"
                if event.topic is not None
                else "its source"
            )
            reason = (
                f"not replayed: only the first {len(event.data or '')} of "
                f"{event.data_size} bytes were kept (sha256 {event.data_sha256}); "
                f"replay the original from {where}"
            )
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "id": d.id,
                            "function": d.dead_letter.function,
                            "outcome": "refused",
                            "reason": reason,
                        }
                    )
                )
            else:
                click.echo(f"{d.id}  {d.dead_letter.function}  refused: {reason}")
            continue
        invoker = runtime.invoker(d.dead_letter.function, "replay", get_bus(), get_store())
        outcome = invoker.deliver(original_event(d.dead_letter))
        if outcome.status == "ok":
            store.mark_replayed(d)
        else:
            failed += 1
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": d.id,
                        "function": d.dead_letter.function,
                        "outcome": outcome.status,
                        "attempts": outcome.attempts,
                        "dead_letter_id": outcome.dead_letter_id,
                    }
                )
            )
        else:
            click.echo(f"{d.id}  {d.dead_letter.function}  {outcome.status}")
    runtime.stop()
    if failed:
        sys.exit(1)


@main.command()
@click.option("--port", default=0, type=int, help="HTTP port (default: any free port).")
@click.option("--verbose", is_flag=True, help="Also print the functions' JSON logs.")
@click.pass_context
def demo(ctx: click.Context, port: int, verbose: bool) -> None:
    """Run the service on the embedded default with sample traffic; print what happened."""
    from shared.tools.demo import run_demo

    service = _service(ctx)
    settings = get_settings()
    if settings.bus != "embedded" or settings.objectstore != "local":
        raise click.ClickException(
            "the demo runs on the embedded default (RETAILFN_BUS=embedded,"
            " RETAILFN_OBJECTSTORE=local)"
        )
    if not verbose:
        logging.getLogger().setLevel(logging.ERROR)
    run_demo(service, settings.data_dir.resolve(), click.echo, port)


@main.group()
def schema() -> None:
    """Event contracts."""


@schema.command("export")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("events/schemas"), show_default=True
)
def schema_export(out: Path) -> None:
    """Write a JSON Schema per event type."""
    from events.schema import export_schemas

    for path in export_schemas(out):
        click.echo(str(path))


@main.group()
def keys() -> None:
    """Partner API keys: create, list, revoke (stored hashed in the state bucket)."""


@keys.command("create")
@click.option("--partner", required=True, help="The partner the key acts for.")
@click.option(
    "--scopes",
    default="stock:write catalog:write inventory:read",
    show_default=True,
    help="Space- or comma-separated scopes.",
)
@click.option(
    "--expires-in-days",
    type=click.IntRange(min=1),
    default=None,
    help="Expire the key after this many days (default: never).",
)
@click.pass_context
def keys_create(
    ctx: click.Context,
    partner: str,
    scopes: str,
    expires_in_days: int | None,
) -> None:
    """Create a key and print it once (stdout); only its hash is stored."""
    from datetime import timedelta

    from shared.platform.auth import create_api_key

    _service(ctx)
    try:
        key_id, key = create_api_key(
            partner, scopes, timedelta(days=expires_in_days) if expires_in_days else None
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"created API key {key_id} for partner {partner}; it is shown only now, store it safely",
        err=True,
    )
    click.echo(key)


@keys.command("list")
@click.option("--partner", default=None, help="Only this partner's keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def keys_list(ctx: click.Context, partner: str | None, as_json: bool) -> None:
    """One line per key: id, partner, status, scopes, created, expires (never the secret)."""
    from shared.platform.auth import list_api_keys

    _service(ctx)
    for r in list_api_keys(partner):
        if as_json:
            click.echo(
                json.dumps(
                    {**r.model_dump(mode="json", exclude={"secret_sha256"}), "status": r.status()}
                )
            )
            continue
        expires = r.expires_at.isoformat(timespec="seconds") if r.expires_at else "never"
        click.echo(
            f"{r.key_id:<18} {r.partner_id:<16} {r.status():<8} {' '.join(r.scopes):<40} "
            f"created={r.created_at.isoformat(timespec='seconds')} expires={expires}"
        )


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key; every process refuses it within the key cache TTL."""
    from shared.platform.auth import UnknownApiKey, revoke_api_key

    _service(ctx)
    try:
        record = revoke_api_key(key_id)
    except UnknownApiKey as exc:
        raise click.ClickException(str(exc)) from None
    ttl = get_settings().api_key_cache_ttl_s
    click.echo(
        f"revoked {record.key_id} (partner {record.partner_id}); running functions "
        f"refuse it within {ttl:g} s"
    )


def _local_stage_only(ctx: click.Context, what: str) -> None:
    # Decided on the stage the command runs for, before its settings or adapters are touched.
    stage = _service(ctx, settings=False).stage
    if stage != LOCAL_STAGE:
        raise ConfigProblem(f"{what} exist on the local stage only (this is {stage!r})")
    _service(ctx)


@keys.command("dev")
@click.pass_context
def keys_dev(ctx: click.Context) -> None:
    """Create (if absent) and print the local stage's dev keys, one `partner key` per line."""
    from shared.platform.auth import ensure_dev_api_keys

    _local_stage_only(ctx, "dev API keys")
    dev_keys = ensure_dev_api_keys()
    for partner, key in dev_keys.items():
        click.echo(f"{partner} {key}")


@main.group()
def partners() -> None:
    """Partner producers: the CloudEvents source prefixes a partner's own Kafka producers use."""


@partners.command("bind")
@click.argument("partner")
@click.option(
    "--source",
    "prefix",
    required=True,
    help="A source prefix the partner's records carry (ce_source, or the platform's "
    "source of its raw records).",
)
def partners_bind(partner: str, prefix: str) -> None:
    """Bind a source prefix to a partner: its stock reports from that source are applied."""
    from shared.inventory import PartnerBindingError, PartnerRegistry

    try:
        created = PartnerRegistry().bind(partner, prefix)
    except PartnerBindingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'bound' if created else 'already bound'}: {prefix} -> partner {partner}")


@partners.command("unbind")
@click.argument("partner")
@click.option("--source", "prefix", required=True, help="The bound source prefix.")
def partners_unbind(partner: str, prefix: str) -> None:
    """Remove a binding; running functions refuse the source within the registry cache TTL."""
    from shared.inventory import PartnerRegistry
    from shared.inventory.partners import CACHE_TTL_S

    if not PartnerRegistry().unbind(partner, prefix):
        raise click.ClickException(f"{prefix!r} is not bound to partner {partner!r}")
    click.echo(
        f"unbound {prefix} from partner {partner}; running functions refuse it within "
        f"{CACHE_TTL_S:g} s"
    )


@partners.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def partners_list(as_json: bool) -> None:
    """One line per bound source prefix: partner, prefix."""
    from shared.inventory import PartnerRegistry

    for prefix, partner in sorted(
        PartnerRegistry().sources().items(), key=lambda item: (item[1], item[0])
    ):
        if as_json:
            click.echo(json.dumps({"partner_id": partner, "source": prefix}))
        else:
            click.echo(f"{partner:<16} {prefix}")


@main.command()
@click.option("--subject", required=True, help="The token's sub (a user or client id).")
@click.option("--partner", default=None, help="The partner the token acts for (none: a member).")
@click.option(
    "--scopes",
    default=None,
    help="Space- or comma-separated (default: stock:write catalog:write inventory:read).",
)
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Lifetime in seconds.",
)
@click.pass_context
def token(
    ctx: click.Context, subject: str, partner: str | None, scopes: str | None, ttl: int
) -> None:
    """Print a bearer token from the local dev issuer (local stage only)."""
    from shared.platform.auth import issue_dev_token

    _local_stage_only(ctx, "dev tokens")
    chosen = scopes.replace(",", " ").split() if scopes is not None else None
    click.echo(issue_dev_token(subject, partner_id=partner, scopes=chosen, ttl=ttl))


@main.command()
@click.option(
    "--stage",
    "deploy_stage",
    default=None,
    help="Stage in serverless.yaml (default: the global --stage, else provider.stage).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option(
    "--mode",
    type=click.Choice(["auto", "direct", "terraform"]),
    default="auto",
    show_default=True,
    help="direct: create topics and buckets on the configured bus "
    "and object store; terraform: write tfvars and run/print terraform. auto: direct "
    "for stage local, terraform otherwise.",
)
@click.option(
    "--increase-partitions",
    is_flag=True,
    help="direct: add partitions to topics that have fewer than the catalog says.",
)
@click.option(
    "--update-configs", is_flag=True, help="direct: set topic configs that differ from the catalog."
)
@click.option(
    "--print-only",
    is_flag=True,
    help="terraform: write the tfvars and print the commands even if terraform is on the PATH.",
)
@click.option(
    "--var",
    "tf_vars",
    multiple=True,
    metavar="NAME=VALUE",
    help="terraform: an extra variable for the tfvars file (no secrets: use "
    "TF_VAR_<name>). JSON values are parsed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.pass_context
def deploy(
    ctx: click.Context,
    deploy_stage: str | None,
    dry_run: bool,
    mode: str,
    increase_partitions: bool,
    update_configs: bool,
    print_only: bool,
    tf_vars: tuple[str, ...],
    as_json: bool,
) -> None:
    """Deploy a stage: topics and buckets directly (local), or Terraform (cloud stages)."""
    from shared.tools.deploy import DeployError, deploy_direct, deploy_terraform

    if deploy_stage:
        ctx.obj["stage"] = deploy_stage
    service = _service(ctx, settings=False)  # the deploy reads the stage's settings itself
    if mode == "auto":
        mode = "direct" if service.stage == "local" else "terraform"
    try:
        if mode == "direct":
            report = deploy_direct(
                service,
                dry_run=dry_run,
                increase_partitions=increase_partitions,
                update_configs=update_configs,
            )
            if as_json:
                click.echo(json.dumps(report.to_json(), indent=2))
            else:
                for line in report.lines():
                    click.echo(line)
            if report.drift and not dry_run:
                sys.exit(2)
            return
        extra = {}
        for item in tf_vars:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise click.UsageError(f"--var {item!r}: expected NAME=VALUE")
            try:
                extra[name] = json.loads(value)
            except ValueError:
                extra[name] = value
        root = Path(ctx.obj["config"]).resolve().parent
        echo = None if as_json else (lambda s: click.echo(s, err=True))
        result = deploy_terraform(
            service,
            root,
            dry_run=dry_run,
            run=False if print_only else None,
            extra=extra,
            echo=echo,
        )
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        if result.placeholders:
            sys.exit(2)
        return
    where = (
        result.var_file.relative_to(root)
        if result.var_file.is_relative_to(root)
        else result.var_file
    )
    if dry_run:
        click.echo(f"would write {where} (dry run):")
        click.echo(json.dumps(result.variables, indent=2, sort_keys=True))
    else:
        click.echo(f"wrote {where} ({len(result.variables)} variables)")
    if result.backend_file:
        b = result.backend
        click.echo(
            f"{'would write' if dry_run else 'wrote'} "
            f"{result.backend_file.relative_to(root / 'infra')}: remote state in COS "
            f"bucket {b['bucket']}, key {b['key']} ({b['endpoints']['s3']})"
        )
    if result.skipped:
        click.echo("not declared in infra/, left out: " + ", ".join(result.skipped))
    if result.operator_var_file:
        click.echo(
            f"also passing the operator's {result.operator_var_file.relative_to(root)}"
            if result.operator_var_file.is_relative_to(root)
            else f"also passing {result.operator_var_file}"
        )
    for name, values in result.conflicts.items():
        click.echo(
            f"warning: {name} differs: "
            + ", ".join(f"{k}={v!r}" for k, v in values.items())
            + " (serverless.yaml wins)"
        )
    if result.missing:
        click.echo(
            "infra/ also needs (set it in infra/stages/<stage>.tfvars, export "
            "TF_VAR_<name> or pass --var): " + ", ".join(result.missing)
        )
    if result.ran:
        click.echo(f"terraform applied stage {service.stage}")
        return
    click.echo("run:" if not dry_run else "then run:")
    for cmd in [*([result.upgrade_command] if result.upgrade_command else []), *result.commands]:
        click.echo("  " + " ".join(cmd))
    for line in result.placeholders:
        click.echo(f"error: {line}", err=True)
    if result.placeholders:
        sys.exit(2)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Output folder: one folder and one .zip per function, plus manifest.json.",
)
@click.option("--functions", default="", help="Comma-separated subset of functions.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_context
def package(ctx: click.Context, out: Path, functions: str, as_json: bool) -> None:
    """Build one deployable per function: code, common layer, events/, requirements, Dockerfile."""
    from shared.tools.package import PackageError, build_packages

    service = _service(ctx, settings=False)
    root = Path(ctx.obj["config"]).resolve().parent
    names = [f for f in functions.split(",") if f] or None
    try:
        manifest = build_packages(service, root, out, names)
    except PackageError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    click.echo(
        f"{'function':<22} {'kind':<7} {'files':>6} {'bytes':>10} {'archive bytes':>14}"
        f" {'installed MB':>13}"
    )
    for p in manifest["packages"]:
        click.echo(
            f"{p['function']:<22} {p['kind']:<7} {p['files']:>6} {p['bytes']:>10} "
            f"{p['archive_bytes']:>14} {p['installed_bytes'] / 1e6:>13.1f}"
        )
    click.echo(f"{len(manifest['packages'])} package(s) in {out}; manifest {out}/manifest.json")


@main.group()
def infra() -> None:
    """Terraform under infra/: the generated part comes from serverless.yaml and the catalog."""


@infra.command("generate")
@click.option("--check", is_flag=True, help="Only report stale files (exit 1 if any).")
@click.pass_context
def infra_generate(ctx: click.Context, check: bool) -> None:
    """Write infra/generated/*.tf.json from serverless.yaml and events/catalog.py."""
    from shared.tools.infra import GenerateError, stale, write

    config = Path(ctx.obj["config"]).resolve()
    try:
        if check:
            problems = stale(config.parent, config)
            for p in problems:
                click.echo(f"error: {p}", err=True)
            if problems:
                raise click.ClickException(f"{len(problems)} generated file(s) out of date")
            click.echo("infra/generated: up to date")
            return
        changed = write(config.parent, config)
    except (ConfigError, GenerateError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in changed:
        click.echo(str(path.relative_to(config.parent)))
    if not changed:
        click.echo("infra/generated: up to date, nothing written", err=True)


# --- A/B experiments of the recommend API --------------------------------------------------------


@contextmanager
def _as_function(ctx: click.Context, name: str) -> Iterator[None]:
    """Run the block with ``name``'s settings (the experiments are configured on ``recommend``
    in serverless.yaml), as the runtime would while that function runs."""
    from shared.platform.settings import using_settings
    from shared.runtime.stage import function_settings

    service = _service(ctx)
    if name not in service.functions:
        yield
        return
    with using_settings(function_settings(service, [name])[name]):
        yield


@main.group()
def experiments() -> None:
    """A/B experiments of the recommend API (configured by the recommendExperiments param)."""


@experiments.command("report")
@click.option("--experiment", default=None, help="Only this experiment (default: all).")
@click.option(
    "--from-topics",
    is_flag=True,
    help="Read recommendations.events and sales.order-completed from the bus "
    "(their retention) instead of the event archive (all history).",
)
@click.option(
    "--window-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Count an order only this many days after the recommendation was shown.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per variant.")
@click.pass_context
def experiments_report(
    ctx: click.Context,
    experiment: str | None,
    from_topics: bool,
    window_days: float | None,
    as_json: bool,
) -> None:
    """Per variant: shown, clicked, click-through rate and orders with a recommended item."""
    from dataclasses import asdict
    from datetime import timedelta

    from shared.crosssell.recommendations import experiment_report

    window = None if window_days is None else timedelta(days=window_days)
    from shared.integration.objectstore.port import NoSuchBucket

    try:
        with _as_function(ctx, "recommend"):
            rows = experiment_report(
                "topics" if from_topics else "archive", experiment=experiment, window=window
            )
    except NoSuchBucket as exc:
        raise click.ClickException(
            f"{exc}: nothing archived yet, or not provisioned (retailfn provision)"
        ) from None
    if as_json:
        for row in rows:
            click.echo(json.dumps(asdict(row)))
        return
    click.echo(
        f"{'experiment':<20} {'variant':<14} {'shown':>7} {'users':>6} {'clicks':>7} "
        f"{'clicked':>8} {'CTR':>7} {'orders':>7} {'order rate':>10}"
    )
    for r in rows:
        click.echo(
            f"{r.experiment:<20} {r.variant:<14} {r.shown:>7} {r.users:>6} {r.clicks:>7} "
            f"{r.clicked:>8} {r.click_through_rate:>7.1%} {r.orders:>7} "
            f"{r.order_rate:>10.1%}"
        )


@experiments.command("assign")
@click.argument("user", required=False)
@click.pass_context
def experiments_assign(ctx: click.Context, user: str | None) -> None:
    """The variant USER sees in the running experiment (no USER: the control)."""
    from shared.crosssell.recommendations import experiments as configured
    from shared.crosssell.rules.experiments import assign

    with _as_function(ctx, "recommend"):
        running = configured().running()
    variant = assign(running, user)
    click.echo(f"{running.name} {variant.name} strategy={variant.strategy} limit={variant.limit}")


@main.group()
def crosssell() -> None:
    """The cross-sell model: rebuild it from the order archive, inspect complements."""


@crosssell.command("rebuild")
@click.pass_context
def crosssell_rebuild(ctx: click.Context) -> None:
    """Recount every archived order into a new model version and publish it."""
    from shared.crosssell import CrossSellStore

    with _no_bucket_is_an_error(), _as_function(ctx, "recalc_cross_sell"):
        folds = CrossSellStore()
        models = folds.version(folds.rebuild())
    click.echo(f"version {models.version}")
    for region in models.regions:
        entry = models.manifest.regions[region]
        click.echo(
            f"  {region:<5} baskets {entry.baskets:>12,.0f}  items {entry.items:>9,}  "
            f"pairs {entry.pairs:>12,}"
        )


@crosssell.command("prune")
@click.option(
    "--keep",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Versions to keep, counting the current one.",
)
@click.pass_context
def crosssell_prune(ctx: click.Context, keep: int) -> None:
    """Delete old model versions (never the current one or a model it still uses)."""
    from shared.crosssell import CrossSellStore

    _service(ctx)
    removed = CrossSellStore().prune(keep=keep)
    click.echo(
        f"removed {len(removed)} version(s)" + (f": {', '.join(removed)}" if removed else "")
    )


@crosssell.command("show")
@click.argument("sku")
@click.option("--region", required=True, help="na, eu, asia or au.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--min-support", default=0.0, show_default=True, type=float)
@click.option("--min-count", default=0, show_default=True, type=float)
@click.pass_context
def crosssell_show(
    ctx: click.Context, sku: str, region: str, limit: int, min_support: float, min_count: float
) -> None:
    """The items bought most strongly with SKU in a region."""
    from shared.crosssell import CrossSellStore

    _service(ctx)
    with _no_bucket_is_an_error():
        models = CrossSellStore().current()
    if models is None:
        raise click.ClickException("no cross-sell model yet (retailfn crosssell rebuild)")
    model = models.region(region)
    click.echo(
        f"{sku} in {region}: {model.item_count(sku):,} of {model.basket_count:,} baskets "
        f"(version {models.version})"
    )
    for c in model.complements(sku, limit, min_support=min_support, min_count=min_count):
        click.echo(
            f"  {c.sku:<40} support {c.support:8.4%}  confidence {c.confidence:8.2%}  "
            f"lift {c.lift:7.2f}  baskets {c.pair_count:,}"
        )


# --- the state database --------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The state database: its schema and the revision it is at."""


@contextmanager
def _state_errors() -> Iterator[None]:
    from shared.integration.state import StateUnavailable

    try:
        yield
    except StateUnavailable as exc:
        raise click.ClickException(
            f"{exc}; check RETAILFN_DATABASE_URL and that the database is up and reachable"
        ) from None


@contextmanager
def _state_database(ctx: click.Context) -> Iterator[Engine]:
    from shared.platform.adapters import state_engine_from_settings

    _service(ctx)
    engine = state_engine_from_settings(process_settings())
    try:
        with _state_errors():
            yield engine
    finally:
        engine.dispose()


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Bring the schema to the newest revision (safe to run twice, or from two places at once)."""
    from shared.integration.state.migrate import upgrade

    with _state_database(ctx) as engine:
        click.echo(upgrade(engine))


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """The revision the database is at, or "none" before the first upgrade."""
    from shared.integration.state.migrate import current

    with _state_database(ctx) as engine:
        click.echo(current(engine) or "none")


if __name__ == "__main__":  # pragma: no cover
    main()
