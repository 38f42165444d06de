"""The command each function's app starts with: its image's ``CMD`` and the generated
Code Engine app's ``run_commands`` (the package and Terraform generators of :mod:`shared.tools`).

Kept apart from the apps themselves so that packaging and Terraform generation can name a command
without importing the app it starts.
"""

from __future__ import annotations

import argparse
import os

from shared.runtime.config import ConfigError, FunctionConfig, ServiceConfig, load_service


def start_command(function_name: str, fn: FunctionConfig) -> list[str]:
    """The command a function's app starts with, in its image and in the generated Terraform.

    Every app listens on ``$HOST:$PORT`` (``0.0.0.0:8080`` by default) and serves ``/healthz``,
    ``/readyz`` and ``/metrics`` beside the function:

    * an HTTP function: :mod:`shared.runtime.http_app`, the local runtime's HTTP front for that
      one function (its routes from serverless.yaml, problem documents, JSON access logs);
    * ``deploy: worker``: :mod:`shared.runtime.worker`, the function's event triggers;
    * ``deploy: subscription``: :mod:`shared.runtime.subscription`, taking the subscription's
      POSTs.
    """
    if fn.deployment is None:
        return ["python", "-m", "shared.runtime.http_app", "--function", function_name]
    if fn.deployment == "worker":
        return ["python", "-m", "shared.runtime.worker", "--function", function_name]
    return ["python", "-m", "shared.runtime.subscription", "--function", function_name]


def app_arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every one-function app takes (``--function``, ``--config``, ``--stage``,
    ``--host``, ``--port``), with Code Engine's ``$PORT`` and ``$HOST`` as defaults."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--function",
        default=os.environ.get("RETAILFN_FUNCTION"),
        help="the function in serverless.yaml (default: $RETAILFN_FUNCTION)",
    )
    parser.add_argument("--config", default="serverless.yaml")
    parser.add_argument("--stage", default=None)
    parser.add_argument("--host", default=os.environ.get("HOST") or "0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8080))
    return parser


def load_app_service(args: argparse.Namespace) -> ServiceConfig:
    """serverless.yaml for the app's stage; :class:`ConfigError` if it has no such function."""
    service = load_service(args.config, stage=args.stage)
    if args.function not in service.functions:
        raise ConfigError(
            [
                (
                    f"functions: no function {args.function!r}; known: "
                    f"{', '.join(sorted(service.functions))}"
                )
            ],
            args.config,
        )
    return service
