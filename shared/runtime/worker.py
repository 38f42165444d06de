"""A worker app: the event triggers of one function from ``serverless.yaml`` (its Kafka consumer
group, object-storage watch or schedule), with ``/healthz``, ``/readyz`` and ``/metrics`` for the
platform's probes. What a ``deploy: worker`` function's image runs.

Start it as ``python -m shared.runtime.worker --function <name>`` (what
:func:`shared.runtime.commands.start_command` gives the package's Dockerfile and the generated
Terraform). Start several to share the consumer group's partitions. The stage's environment is
applied first; a stage other than ``local`` refuses the embedded adapters unless
``RETAILFN_ALLOW_EMBEDDED=true`` (:func:`shared.runtime.stage.check_stage`).
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("retailfn.worker")


def main(argv: list[str] | None = None) -> int:
    from shared.platform.observability import configure_logging
    from shared.runtime.app import Runtime, UnknownFunction
    from shared.runtime.commands import app_arguments, load_app_service
    from shared.runtime.config import ConfigError
    from shared.runtime.loader import HandlerError
    from shared.runtime.signals import run_until_signal
    from shared.runtime.stage import StageGuardError, apply_stage

    description = (__doc__ or "").split("\n", 1)[0]
    args = app_arguments("python -m shared.runtime.worker", description).parse_args(argv)
    if not args.function:
        print("Error: no function: give --function or set RETAILFN_FUNCTION", file=sys.stderr)
        return 2
    try:
        service = load_app_service(args)
        if any(e.kind == "http" for e in service.functions[args.function].events):
            raise ConfigError(
                [f"functions.{args.function} serves HTTP: it is not a worker"], args.config
            )
        configure_logging(apply_stage(service).log_level)
        runtime = Runtime(
            service, functions=[args.function], serve_http=True, host=args.host, port=args.port
        )
    except (ConfigError, StageGuardError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2

    def ready() -> None:
        runtime.wait_ready()
        log.info(
            "worker ready",
            extra={
                "function": args.function,
                "stage": service.stage,
                "url": f"http://{runtime.host}:{runtime.port}",
            },
        )

    try:
        run_until_signal(runtime.start, runtime.stop, ready)
    except (HandlerError, UnknownFunction, StageGuardError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, or the host is not this machine's
        print(f"Error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    log.info("worker stopped", extra={"function": args.function})
    return 0


if __name__ == "__main__":
    sys.exit(main())
