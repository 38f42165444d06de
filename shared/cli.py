"""The ``retailfn`` command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from shared.config import ConfigError, ServiceConfig, load_service
from shared.observability import configure_logging
from shared.settings import get_settings

log = logging.getLogger("retailfn.cli")


def _service(ctx: click.Context) -> ServiceConfig:
    try:
        return load_service(ctx.obj["config"], stage=ctx.obj["stage"])
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(path_type=Path), default="serverless.yaml",
              show_default=True, help="The service description.")
@click.option("--stage", default=None, help="Stage in serverless.yaml (default: provider.stage).")
@click.pass_context
def main(ctx: click.Context, config: Path, stage: str | None) -> None:
    """retailfn: serverless retail functions, run locally from serverless.yaml."""
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, stage=stage)
    configure_logging(get_settings().log_level)


def _run_until_signal(runtime) -> None:  # type: ignore[no-untyped-def]
    done = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runtime.start()
    runtime.wait_ready()
    click.echo(f"retailfn ready (stage {runtime.service.stage})"
               + (f" on http://{runtime.host}:{runtime.port}" if runtime.serve_http else ""),
               err=True)
    done.wait()
    runtime.stop()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--functions", default="", help="Comma-separated subset of functions.")
@click.pass_context
def up(ctx: click.Context, host: str, port: int, functions: str) -> None:
    """Serve every HTTP trigger on one port and run every event trigger, in one process."""
    from shared.runtime.app import Runtime

    names = [f for f in functions.split(",") if f] or None
    _run_until_signal(Runtime(_service(ctx), functions=names, host=host, port=port))


@main.command()
@click.option("--functions", default="", help="Comma-separated functions (default: all with "
              "event triggers).")
@click.pass_context
def worker(ctx: click.Context, functions: str) -> None:
    """Run only event consumers; start several to share a consumer group's partitions."""
    from shared.runtime.app import Runtime

    service = _service(ctx)
    names = [f for f in functions.split(",") if f] or [
        n for n, f in service.functions.items() if any(e.kind != "http" for e in f.events)]
    _run_until_signal(Runtime(service, functions=names, serve_http=False))


@main.command()
@click.argument("function")
@click.option("--event", "event_file", required=True, type=click.File("rb"),
              help="A structured-mode CloudEvent JSON file ('-' for stdin).")
@click.pass_context
def invoke(ctx: click.Context, function: str, event_file) -> None:  # type: ignore[no-untyped-def]
    """Run one function once on one event, with its retries and dead letter."""
    from cloudevents.http import from_json

    from shared.adapters import get_bus, get_store
    from shared.runtime.app import Runtime

    service = _service(ctx)
    runtime = Runtime(service, functions=[function], serve_http=False, run_events=False)
    runtime.start()
    if runtime.loaded[function].signature != "cloudevent":
        raise click.ClickException(f"{function} is an HTTP function: run `retailfn up` and call it")
    try:
        ce = from_json(event_file.read())
    except Exception as exc:  # the SDK raises several types for a malformed event
        raise click.ClickException(f"not a structured-mode CloudEvent: {exc}") from None
    outcome = runtime.invoker(function, "invoke", get_bus(), get_store()).deliver(ce)
    click.echo(json.dumps({"function": function, "event_id": ce["id"], "outcome": outcome.status,
                           "attempts": outcome.attempts, "dead_letter_id": outcome.dead_letter_id}))
    runtime.stop()
    if outcome.status != "ok":
        sys.exit(1)


@main.command()
@click.pass_context
def validate(ctx: click.Context) -> None:
    """Check serverless.yaml against the code, events/ and infra/."""
    from shared.validate import validate_project

    service = _service(ctx)
    problems = validate_project(service, Path(ctx.obj["config"]).resolve().parent)
    if problems:
        for p in problems:
            click.echo(f"error: {p}", err=True)
        raise click.ClickException(f"{len(problems)} problem(s) in {ctx.obj['config']}")
    click.echo(f"{ctx.obj['config']}: {len(service.functions)} functions OK "
               f"(stage {service.stage})")


@main.command()
@click.pass_context
def provision(ctx: click.Context) -> None:
    """Create the catalog's topics and buckets on the configured bus and object store."""
    from shared.adapters import get_bus, get_store
    from shared.runtime.app import provision as do_provision

    _service(ctx)
    created = do_provision(get_bus(), get_store())
    click.echo(json.dumps(created))


@main.group()
def dlq() -> None:
    """Dead letters: list, show and replay."""


@contextmanager
def _no_bucket_is_an_error() -> Iterator[None]:
    # Before anything was provisioned or dead-lettered the bucket is missing: say so, no traceback.
    from shared.objectstore.port import NoSuchBucket

    try:
        yield
    except NoSuchBucket as exc:
        raise click.ClickException(f"{exc}: nothing dead-lettered on this object store yet, "
                                   "or it is not provisioned (retailfn provision)") from None


def _dead_letters():  # type: ignore[no-untyped-def]
    from shared.adapters import bucket, get_store
    from shared.config import DEAD_LETTER_BUCKET
    from shared.runtime.deadletter import DeadLetterStore

    return DeadLetterStore(get_store(), bucket(DEAD_LETTER_BUCKET))


@dlq.command("list")
@click.option("--function", default=None)
@click.option("--replayed", is_flag=True, help="List replayed dead letters instead of pending.")
def dlq_list(function: str | None, replayed: bool) -> None:
    """One line per dead letter: id, function, event type and id, error."""
    with _no_bucket_is_an_error():
        for d in _dead_letters().list(function, status="replayed" if replayed else "pending"):
            dl = d.dead_letter
            click.echo(f"{d.id}  {dl.function:<22} {dl.event.type or '-'}  {dl.event.id or '-'}  "
                       f"attempts={dl.attempts}  {dl.error.type}: {dl.error.message[:80]}")


@dlq.command("show")
@click.argument("dead_letter_id")
def dlq_show(dead_letter_id: str) -> None:
    """The whole dead letter as JSON."""
    try:
        with _no_bucket_is_an_error():
            d = _dead_letters().get(dead_letter_id)
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None
    click.echo(json.dumps({"id": d.id, "status": d.status,
                           **d.dead_letter.model_dump(mode="json")}, indent=2))


@dlq.command("replay")
@click.argument("dead_letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every pending dead letter.")
@click.option("--function", default=None, help="With --all: only this function's.")
@click.pass_context
def dlq_replay(ctx: click.Context, dead_letter_id: str | None, replay_all: bool,
               function: str | None) -> None:
    """Deliver dead letters to their function again; success moves them to `replayed`."""
    from shared.adapters import get_bus, get_store
    from shared.runtime.app import Runtime
    from shared.runtime.deadletter import original_event

    if not (dead_letter_id or replay_all):
        raise click.UsageError("give a dead letter id or --all")
    store = _dead_letters()
    try:
        with _no_bucket_is_an_error():
            chosen = ([store.get(dead_letter_id)] if dead_letter_id
                      else list(store.list(function)))
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None
    service = _service(ctx)
    names = sorted({d.dead_letter.function for d in chosen})
    runtime = Runtime(service, functions=names, serve_http=False, run_events=False).start()
    failed = 0
    for d in chosen:
        invoker = runtime.invoker(d.dead_letter.function, "replay", get_bus(), get_store())
        outcome = invoker.deliver(original_event(d.dead_letter))
        if outcome.status == "ok":
            store.mark_replayed(d)
        else:
            failed += 1
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
    from shared.demo import run_demo

    settings = get_settings()
    if settings.bus != "embedded" or settings.objectstore != "local":
        raise click.ClickException("the demo runs on the embedded default (RETAILFN_BUS=embedded,"
                                   " RETAILFN_OBJECTSTORE=local)")
    if not verbose:
        logging.getLogger().setLevel(logging.ERROR)
    run_demo(_service(ctx), settings.data_dir.resolve(), click.echo, port)


@main.group()
def schema() -> None:
    """Event contracts."""


@schema.command("export")
@click.option("--out", type=click.Path(path_type=Path), default=Path("events/schemas"),
              show_default=True)
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
@click.option("--scopes", default="stock:write catalog:write inventory:read", show_default=True,
              help="Space- or comma-separated scopes.")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None,
              help="Expire the key after this many days (default: never).")
def keys_create(partner: str, scopes: str, expires_in_days: int | None) -> None:
    """Create a key and print it once (stdout); only its hash is stored."""
    from datetime import timedelta

    from shared.auth import create_api_key

    try:
        key_id, key = create_api_key(
            partner, scopes, timedelta(days=expires_in_days) if expires_in_days else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created API key {key_id} for partner {partner}; it is shown only now, "
               "store it safely", err=True)
    click.echo(key)


@keys.command("list")
@click.option("--partner", default=None, help="Only this partner's keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def keys_list(partner: str | None, as_json: bool) -> None:
    """One line per key: id, partner, status, scopes, created, expires (never the secret)."""
    from shared.auth import list_api_keys

    for r in list_api_keys(partner):
        if as_json:
            click.echo(json.dumps({**r.model_dump(mode="json", exclude={"secret_sha256"}),
                                   "status": r.status()}))
            continue
        expires = r.expires_at.isoformat(timespec="seconds") if r.expires_at else "never"
        click.echo(f"{r.key_id:<18} {r.partner_id:<16} {r.status():<8} {' '.join(r.scopes):<40} "
                   f"created={r.created_at.isoformat(timespec='seconds')} expires={expires}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; every process refuses it within the key cache TTL."""
    from shared.auth import UnknownApiKey, revoke_api_key

    try:
        record = revoke_api_key(key_id)
    except UnknownApiKey as exc:
        raise click.ClickException(str(exc)) from None
    ttl = get_settings().api_key_cache_ttl_s
    click.echo(f"revoked {record.key_id} (partner {record.partner_id}); running functions "
               f"refuse it within {ttl:g} s")


@keys.command("dev")
def keys_dev() -> None:
    """Create (if absent) and print the local stage's dev keys, one `partner key` per line."""
    from shared.auth import DevOnlyError, ensure_dev_api_keys

    try:
        dev_keys = ensure_dev_api_keys()
    except DevOnlyError as exc:
        raise click.ClickException(str(exc)) from None
    for partner, key in dev_keys.items():
        click.echo(f"{partner} {key}")


@main.command()
@click.option("--subject", required=True, help="The token's sub (a user or client id).")
@click.option("--partner", default=None, help="The partner the token acts for (none: a member).")
@click.option("--scopes", default=None,
              help="Space- or comma-separated (default: stock:write catalog:write "
                   "inventory:read).")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(min=1),
              help="Lifetime in seconds.")
@click.pass_context
def token(ctx: click.Context, subject: str, partner: str | None, scopes: str | None,
          ttl: int) -> None:
    """Print a bearer token from the local dev issuer (local stage only)."""
    from shared.auth import DevOnlyError, issue_dev_token

    if ctx.obj.get("stage") not in (None, "local"):
        raise click.ClickException("dev tokens exist on the local stage only")
    try:
        chosen = scopes.replace(",", " ").split() if scopes is not None else None
        click.echo(issue_dev_token(subject, partner_id=partner, scopes=chosen, ttl=ttl))
    except DevOnlyError as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
