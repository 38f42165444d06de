"""One HTTP function's app: the local runtime's HTTP front, serving that one function.

``functions-framework --target <fn> --asgi`` routes every path to the function: a deployed
function would have no ``/healthz`` for the platform's probes, no ``/metrics``, no access log and
its own plain-text answers for a path it does not serve. This app is what ``retailfn up`` serves
(:func:`shared.runtime.http.build_http_app`, on uvicorn as :mod:`shared.runtime.server` runs it),
for the one function: its routes from ``serverless.yaml`` (each forwarded unchanged to the
function's own functions-framework ASGI app), ``/healthz``, ``/readyz`` (200 once serving, 503
while it drains on SIGTERM), ``/metrics``, ``/openapi.json`` and ``/docs`` for its routes,
``application/problem+json`` for an unknown path or method, a body limit and a JSON access-log
line per request. Nothing is provisioned and no event trigger runs.

The function module stays a plain functions-framework function: it still runs under
``functions-framework --target <fn> --source functions/<fn>/main.py --asgi`` on any platform.

Start it as ``python -m shared.runtime.http_app --function <name>`` (what
:func:`shared.runtime.commands.start_command` gives the package's Dockerfile and the generated
Terraform); it reads ``serverless.yaml`` from the working folder, applies the function's
environment from it (provider, stage, its own) as the process's, refuses a stage other than
``local`` on embedded adapters or the dev issuer (:func:`shared.runtime.stage.check_stage`), and listens
on ``$HOST:$PORT`` (``0.0.0.0:8080``).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from shared.runtime.config import ServiceConfig
from shared.runtime.http import HttpApp, build_http_app
from shared.runtime.loader import load_function

log = logging.getLogger("retailfn.http_app")


def build_app(
    service: ServiceConfig, name: str, *, ready: Callable[[], bool] = lambda: True
) -> HttpApp:
    """The HTTP front for function ``name`` alone (its routes, probes, metrics, API document).

    Raises :class:`ValueError` when ``name`` is not an HTTP function and
    :class:`~shared.runtime.loader.HandlerError` when its handler cannot be loaded."""
    fn = service.functions[name]
    if fn.deployment is not None:
        raise ValueError(
            f"functions.{name} is deploy: {fn.deployment}, not an HTTP function; "
            "start it with its own start command"
        )
    if not fn.triggers("http"):
        raise ValueError(f"functions.{name} has no http event: there is nothing to serve")
    loaded = load_function(name, fn.handler)
    if loaded.signature != "http":
        raise ValueError(
            f"functions.{name}: {fn.handler} is not an HTTP function "
            "(@functions_framework.aio.http)"
        )
    # The other functions are other apps: left out of the service, their routes answer 404
    # here without the front warning about each one, and the API document lists only this one.
    alone = service.model_copy(update={"functions": {name: fn}})
    return build_http_app(alone, {name: loaded}, ready=ready)


def main(argv: list[str] | None = None) -> int:
    from shared.platform.observability import configure_logging, configure_metrics
    from shared.platform.settings import get_settings
    from shared.runtime.commands import app_arguments, load_app_service
    from shared.runtime.config import ConfigError
    from shared.runtime.loader import HandlerError
    from shared.runtime.server import HttpServer
    from shared.runtime.signals import stop_signals
    from shared.runtime.stage import StageGuardError, apply_function

    args = app_arguments("python -m shared.runtime.http_app", __doc__.split("\n", 1)[0]).parse_args(
        argv
    )
    if not args.function:
        print("Error: no function: give --function or set RETAILFN_FUNCTION", file=sys.stderr)
        return 2
    serving = threading.Event()
    try:
        service = load_app_service(args)
        # One function per app: its environment is the process's (see apply_function).
        settings = apply_function(service, args.function)
        configure_logging(get_settings().log_level)
        configure_metrics(created=settings.metrics_created)
        app = build_app(service, args.function, ready=serving.is_set)
    except (ConfigError, HandlerError, StageGuardError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    # A request may run for the function's timeout (the app's request timeout on Code Engine):
    # a stop lets the ones in flight finish within it.
    timeout_s = service.functions[args.function].timeout.total_seconds()
    server = HttpServer(app, host=args.host, port=args.port, graceful_timeout_s=timeout_s)
    with stop_signals() as done:
        try:
            server.start()
        except OSError as exc:  # the port is taken, or the host is not this machine's
            print(f"Error: {exc.strerror or exc}", file=sys.stderr)
            return 1
        serving.set()
        log.info(
            "http app ready",
            extra={"function": args.function, "stage": service.stage, "url": server.url},
        )
        done.wait()
        serving.clear()  # /readyz answers 503 while the requests in flight finish
        server.stop()
        from shared.platform.publisher import flush_background

        flush_background()
        log.info("http app stopped", extra={"function": args.function})
    return 0


if __name__ == "__main__":
    sys.exit(main())
