"""``serverless.yaml``'s environment applied to the settings, as a platform would apply it.

On Code Engine each function is its own process whose environment is provider, stage and function
``environment`` together. Locally one process runs many functions, so the environment is applied
in two levels: the stage's (provider, then stage) becomes the process settings, which choose the
adapters; each function's (stage, then its own) becomes that function's settings, current while
it runs (see :mod:`shared.platform.settings`). Variables that are not ``RETAILFN_*`` (a library's, say) can
only be process-wide: they are exported into ``os.environ``.

A stage other than ``local`` refuses to run on the embedded bus or the folder store unless told
so explicitly, and never trusts the local dev issuer.
"""

from __future__ import annotations

import logging
import os

from shared.platform.settings import (
    DEV_ISSUER,
    ENV_PREFIX,
    LOCAL_STAGE,
    Settings,
    build_settings,
    install_process_settings,
)
from shared.runtime.config import ServiceConfig, Stage

log = logging.getLogger("retailfn.stage")


class StageGuardError(Exception):
    """A stage other than ``local`` would run on embedded adapters or trust dev credentials."""


def stage_environment(service: ServiceConfig) -> dict[str, str]:
    """Provider, then stage ``environment``; ``RETAILFN_STAGE`` is the file's stage."""
    env = dict(service.provider.environment)
    env.update(service.stages.get(service.stage, Stage()).environment)
    env[f"{ENV_PREFIX}STAGE"] = service.stage
    return env


def function_environment(service: ServiceConfig, function: str) -> dict[str, str]:
    """Provider, stage, then the function's ``environment``."""
    env = service.environment_for(function)
    env[f"{ENV_PREFIX}STAGE"] = service.stage
    return env


def apply_stage(service: ServiceConfig, *, allow_embedded: bool = False) -> Settings:
    """Build the stage's settings, check them (:func:`check_stage`) and make them the process's.

    Raises :class:`~shared.platform.settings.SettingsError` for a bad value and :class:`StageGuardError`.
    """
    env = stage_environment(service)
    settings = build_settings(env)
    check_stage(settings, allow_embedded=allow_embedded)
    _export(env)
    install_process_settings(settings)
    return settings


def function_settings(service: ServiceConfig, functions: list[str]) -> dict[str, Settings]:
    """Each function's own settings (and its non-``RETAILFN_*`` variables exported)."""
    chosen: dict[str, Settings] = {}
    exported: dict[str, tuple[str, str]] = {}
    for name in functions:
        env = function_environment(service, name)
        chosen[name] = build_settings(env, source=f"serverless.yaml, function {name}")
        for key, value in env.items():
            if key.upper().startswith(ENV_PREFIX):
                continue
            if key in exported and exported[key][1] != value:
                log.warning(
                    "functions set one process variable differently; the last wins",
                    extra={"variable": key, "functions": [exported[key][0], name]},
                )
            exported[key] = (name, value)
    _export({key: value for key, (_name, value) in exported.items()})
    return chosen


def apply_function(service: ServiceConfig, function: str) -> Settings:
    """One function per process (its Code Engine app): the function's environment (provider,
    stage, its own) becomes the process's settings, checked like any stage's.

    Raises :class:`~shared.platform.settings.SettingsError` for a bad value and :class:`StageGuardError`.
    """
    env = function_environment(service, function)
    settings = build_settings(env, source=f"serverless.yaml, function {function}")
    check_stage(settings)
    _export(env)
    install_process_settings(settings)
    return settings


def check_stage(settings: Settings, *, allow_embedded: bool = False) -> None:
    """Outside ``local``: no embedded bus or folder store unless allowed, never the dev issuer."""
    if settings.stage == LOCAL_STAGE:
        return
    if settings.jwt_issuer == DEV_ISSUER:
        raise StageGuardError(
            f"stage {settings.stage!r} trusts the local dev issuer "
            f"(RETAILFN_JWT_ISSUER={DEV_ISSUER}); set your identity provider's "
            "issuer, audience and JWKS URL"
        )
    embedded = [
        what
        for what, on in (
            ("the embedded bus (RETAILFN_BUS=embedded)", settings.bus == "embedded"),
            ("the folder store (RETAILFN_OBJECTSTORE=local)", settings.objectstore == "local"),
        )
        if on
    ]
    if not embedded:
        return
    if not (allow_embedded or settings.allow_embedded):
        raise StageGuardError(
            f"stage {settings.stage!r} would run on {' and '.join(embedded)}; configure Kafka "
            "and COS for it (RETAILFN_BUS=kafka, RETAILFN_OBJECTSTORE=cos and their endpoints, "
            "e.g. in the stage's environment in serverless.yaml), or pass --allow-embedded "
            "(RETAILFN_ALLOW_EMBEDDED=true) if this stage really is a single box"
        )
    log.warning(
        "stage runs on embedded adapters, as explicitly allowed",
        extra={"stage": settings.stage, "bus": settings.bus, "objectstore": settings.objectstore},
    )


def _export(env: dict[str, str]) -> None:
    os.environ.update({k: v for k, v in env.items() if not k.upper().startswith(ENV_PREFIX)})
