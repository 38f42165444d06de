"""``retailfn package``: one deployable folder (and a .zip) per function, plus a size report.

``dist/<function>/`` holds everything one function needs and nothing else of the repository:

* ``functions/__init__.py`` and ``functions/<function>/`` (its own code only);
* ``shared/`` without ``shared/tools/`` (the capabilities, the platform, the ports and the
  runtime; the tools run on an operator's machine, never in an image) and ``events/``
  (contracts, samples, schemas);
* ``serverless.yaml`` (worker and subscription apps read it; Terraform and ops read it too);
* ``requirements.txt``: what this function's code imports, with the distributions' own
  dependencies, each line pinned exactly as in the project's requirements.txt (the one lock):
  :mod:`shared.tools.requirements` computes it, so an image carries numpy and scipy only when its
  function reaches the cross-sell model, and never the tooling (python-hcl2);
* ``Dockerfile`` (+ ``.dockerignore``) and a ``Procfile`` for buildpack builds.

Each app starts with :func:`shared.runtime.commands.start_command` (port from ``$PORT``,
8080 by default, as Code Engine sets it). HTTP functions start as ``python -m
shared.runtime.http_app --function <fn>``: the local runtime's HTTP front for that one function
(its routes, ``/healthz``, ``/readyz``, ``/metrics``, problem documents, JSON access logs); the
function itself still runs under ``functions-framework --target <fn> --source
functions/<fn>/main.py --asgi`` too. ``PYTHONPATH=/app`` lets the function import ``shared`` and
``events`` (functions-framework puts only the source file's own folder on ``sys.path``).

An event function keeps its delivery promises in either ``deploy:`` mode: ``subscription`` runs
``python -m shared.runtime.subscription --function <fn>`` (each POSTed event deduplicated,
retried, dead-lettered); ``worker`` (per-key order, batches) runs the project's runtime for that
one function, ``python -m shared.runtime.worker --function <fn>``; the port (``$PORT``) serves
``/healthz``, ``/readyz`` and ``/metrics``, which Code Engine's probes need.

The manifest reports, per image, ``installed_bytes``: what its requirements occupy once
installed (measured from the same wheels in the packaging environment) plus the package's own
files; the base image is not counted. ``retailfn infra generate`` gives the Code Engine app this
same command (:func:`command_for`).

Nothing from ``tests/``, ``bench/``, ``__pycache__`` or compiled files goes in; the build checks it.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from shared.runtime.commands import start_command
from shared.runtime.config import ServiceConfig
from shared.tools.requirements import (
    Entry,
    RequirementsError,
    distributions_for,
    import_closure,
    installed_bytes,
    pinned,
)

EXCLUDED_PARTS = frozenset(
    {
        "tests",
        "bench",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".retailfn",
        "dist",
        ".venv",
    }
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".tfplan", ".lock", ".swp")
PYTHON_IMAGE = "python:3.11-slim"


class PackageError(Exception):
    """The package cannot be built; the message says why."""


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {
        n
        for n in names
        if n in EXCLUDED_PARTS or n.endswith(EXCLUDED_SUFFIXES) or n.startswith(".")
    }


def kind_of(service: ServiceConfig, name: str) -> str:
    """``http``, or an event function's ``deploy:`` mode: ``worker`` (the retailfn runtime
    consuming its consumer group) or ``subscription`` (the app a subscription POSTs events to)."""
    return service.functions[name].deployment or "http"


def command_for(service: ServiceConfig, name: str) -> list[str]:
    """The image's start command, run in its working directory (``/app``): the Dockerfile's
    ``CMD`` and the generated Code Engine app's ``run_commands``. Listens on ``$HOST:$PORT``
    (``0.0.0.0:8080`` by default)."""
    return start_command(name, service.functions[name])


IMAGE_WORKDIR = "/app"
IMAGE_ENV: dict[str, str] = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PYTHONPATH": IMAGE_WORKDIR,
    "PORT": "8080",
    "RETAILFN_DATA_DIR": "/tmp/retailfn",
}
"""The image's ``ENV`` (``PYTHONPATH``: functions-framework puts only the source file's folder on
``sys.path``, and ``shared``/``events`` live beside ``functions``)."""


def entries_for(service: ServiceConfig, name: str) -> list[Entry]:
    """The modules the image's command starts from (see :mod:`shared.tools.requirements`)."""
    fn = service.functions[name]
    kind = kind_of(service, name)
    if kind == "worker":
        return [Entry("shared.runtime.worker"), Entry(fn.module)]
    if kind == "subscription":
        return [Entry("shared.runtime.subscription"), Entry(fn.module)]
    return [Entry("shared.runtime.http_app"), Entry(fn.module)]


def requirements_for(service: ServiceConfig, root: Path, name: str) -> list[str]:
    """The pinned lines of ``root/requirements.txt`` this function's image needs."""
    _modules, imports = import_closure(root, entries_for(service, name))
    if kind_of(service, name) != "worker":
        imports.add("functions_framework")  # the command itself, or what loads the function
    try:
        return pinned(
            (root / "requirements.txt").read_text(encoding="utf-8"), distributions_for(imports)
        )
    except RequirementsError as exc:
        raise PackageError(f"{name}: {exc}") from None


def dockerfile(service: ServiceConfig, name: str) -> str:
    cmd = json.dumps(command_for(service, name))
    env = " \\\n    ".join(f"{k}={v}" for k, v in IMAGE_ENV.items())
    return f"""\
# {service.service} / {name}: built by `retailfn package`; build context is this folder.
FROM {PYTHON_IMAGE}
ENV {env}
WORKDIR {IMAGE_WORKDIR}
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER 10001
EXPOSE 8080
CMD {cmd}
"""


def procfile(service: ServiceConfig, name: str) -> str:
    cmd = command_for(service, name)
    line = " ".join(cmd) + " --port ${PORT:-8080}"
    return f"web: {line}\n"


TOOLS_PACKAGE = "tools"
"""``shared/tools/``: what operators run (this module among them); no image carries it."""


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=_ignore)


def _checked_out(root: Path, out: Path) -> Path:
    out = (out if out.is_absolute() else Path.cwd() / out).resolve()
    protected = [
        root,
        *(root / p for p in ("shared", "events", "functions", "tests", "bench", "infra", ".venv")),
    ]
    if out in protected or any(out.is_relative_to(p) for p in protected[1:]):
        raise PackageError(
            f"--out {out} would write into the project's own folders; "
            "use a folder of its own such as dist/"
        )
    return out


def build_package(service: ServiceConfig, root: Path, out: Path, name: str) -> dict[str, Any]:
    fn = service.functions[name]
    module_dir = root / Path(*fn.module.split(".")[:-1])
    if not (root / (fn.module.replace(".", "/") + ".py")).is_file():
        raise PackageError(f"functions.{name}.handler: no file for module {fn.module!r}")
    target = out / name
    archive = out / f"{name}.zip"
    if target.exists():
        shutil.rmtree(target)
    archive.unlink(missing_ok=True)
    target.mkdir(parents=True)

    # The function's own package path (functions/<name>/) with every __init__.py on the way.
    parts = fn.module.split(".")[:-1]
    for i in range(1, len(parts)):
        init = root.joinpath(*parts[:i], "__init__.py")
        if init.is_file():
            (target.joinpath(*parts[:i])).mkdir(parents=True, exist_ok=True)
            shutil.copy2(init, target.joinpath(*parts[:i], "__init__.py"))
    _copy_tree(module_dir, target / module_dir.relative_to(root))
    for layer in ("shared", "events"):
        _copy_tree(root / layer, target / layer)
    shutil.rmtree(target / "shared" / TOOLS_PACKAGE, ignore_errors=True)
    for single in ("requirements.txt", "serverless.yaml"):
        if not (root / single).is_file():
            raise PackageError(f"{root / single} is missing")
    shutil.copy2(root / "serverless.yaml", target / "serverless.yaml")
    requirements = requirements_for(service, root, name)
    (target / "requirements.txt").write_text(
        f"# {name}: what its code imports, with their dependencies; pinned as in the project's "
        "requirements.txt.\n# Written by `retailfn package`.\n" + "\n".join(requirements) + "\n",
        encoding="utf-8",
    )
    (target / "Dockerfile").write_text(dockerfile(service, name), encoding="utf-8")
    (target / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n", encoding="utf-8")
    (target / "Procfile").write_text(procfile(service, name), encoding="utf-8")

    files = sorted(p for p in target.rglob("*") if p.is_file())
    bad = [
        str(p.relative_to(target))
        for p in files
        if EXCLUDED_PARTS & set(p.relative_to(target).parts) or p.name.endswith((".pyc", ".pyo"))
    ]
    if bad:
        raise PackageError(f"{name}: excluded files in the package: {bad[:5]}")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in files:
            zf.write(p, p.relative_to(target).as_posix())
    source_bytes = sum(p.stat().st_size for p in files)
    try:
        dependency_bytes = installed_bytes(Requirement(line).name for line in requirements)
    except PackageNotFoundError as exc:
        raise PackageError(
            f"{name}: {exc} is not installed here; package from the project's venv (make venv)"
        ) from None
    return {
        "function": name,
        "kind": kind_of(service, name),
        "handler": fn.handler,
        "target": fn.target,
        "source": fn.module.replace(".", "/") + ".py",
        "command": command_for(service, name),
        "base_image": PYTHON_IMAGE,
        # infra/ runs <image_registry>/<image_name>:<image_tag>
        "image_name": name.replace("_", "-"),
        "path": str(target),
        "archive": str(archive),
        "files": len(files),
        "bytes": source_bytes,
        "archive_bytes": archive.stat().st_size,
        "requirements": requirements,
        # What the image adds to the base image: its installed requirements and these files.
        "installed_bytes": dependency_bytes + source_bytes,
        "environment": service.environment_for(name),
    }


def build_packages(
    service: ServiceConfig, root: Path, out: Path, functions: Sequence[str] | None = None
) -> dict[str, Any]:
    """Build the packages and ``<out>/manifest.json``; returns the manifest."""
    root = root.resolve()
    names = list(functions or service.functions)
    unknown = [n for n in names if n not in service.functions]
    if unknown:
        raise PackageError(
            f"unknown function(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(service.functions))}"
        )
    out = _checked_out(root, out)
    out.mkdir(parents=True, exist_ok=True)
    packages = [build_package(service, root, out, n) for n in names]
    # A subset rebuild keeps the entries of the other packages that are still there.
    previous = out / "manifest.json"
    if functions and previous.is_file():
        try:
            kept = [
                p
                for p in json.loads(previous.read_text())["packages"]
                if p["function"] not in names and Path(p["path"]).is_dir()
            ]
        except (ValueError, KeyError, TypeError):
            kept = []
        packages = sorted([*kept, *packages], key=lambda p: p["function"])
    manifest = {
        "service": service.service,
        "stage": service.stage,
        "requirements": "per package: what its function imports, pinned as in the "
        "project's requirements.txt",
        "packages": packages,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
