"""The command each function's app starts with: its image's ``CMD`` and the generated
Code Engine app's ``run_commands`` (:func:`shared.package.command_for`, :mod:`shared.infra`).

Kept apart from the apps themselves so that packaging and Terraform generation can name a command
without importing the app it starts.
"""

from __future__ import annotations

from shared.config import FunctionConfig


def start_command(function_name: str, fn: FunctionConfig) -> list[str]:
    """The command a function's app starts with, in its image and in the generated Terraform.

    Every app listens on ``$HOST:$PORT`` (``0.0.0.0:8080`` by default) and serves ``/healthz``,
    ``/readyz`` and ``/metrics`` beside the function:

    * an HTTP function: :mod:`shared.runtime.http_app`, the local runtime's HTTP front for that
      one function (its routes from serverless.yaml, problem documents, JSON access logs);
    * ``deploy: worker``: the project's runtime consuming the function's consumer group;
    * ``deploy: subscription``: :mod:`shared.runtime.subscription`, taking the subscription's
      POSTs.
    """
    if fn.deployment is None:
        return ["python", "-m", "shared.runtime.http_app", "--function", function_name]
    if fn.deployment == "worker":
        return ["sh", "-c", "exec python -m shared.cli --config serverless.yaml worker "
                f"--functions {function_name} --host \"${{HOST:-0.0.0.0}}\" "
                "--port \"${PORT:-8080}\""]
    return ["python", "-m", "shared.runtime.subscription", "--function", function_name]
