"""Per-function runtime requirements: what a function's code imports, pinned as in requirements.txt.

A package's image installs only the distributions its own code can reach, so a function that
never touches the cross-sell model does not carry numpy and scipy, and none carries the tooling
(python-hcl2 for ``validate`` and ``deploy``). The set is computed, never hand-kept:

1. **Import closure.** From the package's entry modules, every ``import`` in the project's own
   files (``shared``, ``events``, ``functions``), module level and inside functions alike (those
   run later, such as the Kafka or COS adapter a setting picks), is followed; imports under
   ``if TYPE_CHECKING:`` never run and are skipped. An entry may be scanned at module level only
   (``shared.tools.cli``: the worker command needs its group, not every other command's imports).
2. **Distributions.** Each third-party top-level name maps to its distribution
   (``importlib.metadata.packages_distributions()`` of the environment that packages), then the
   distributions' own ``Requires-Dist`` (markers evaluated, extras only where :data:`EXTRAS`
   asks for them) are added transitively, plus :data:`IMPLIED` (used without an import by name).
3. **Pins.** Every distribution must be pinned in the project's requirements.txt; its line is
   copied as it is there. A distribution missing from it is a :class:`RequirementsError`.

The start test of ``tests/functions/test_package.py`` installs each set alone in a fresh venv
and starts the app, which is what proves the closure complete.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_PACKAGES = ("shared", "events", "functions")

EXTRAS: dict[str, frozenset[str]] = {
    # RS256/ES256 verification of partner tokens goes through PyJWT's cryptography backend.
    "pyjwt": frozenset({"crypto"}),
    # kafka-python checks record batch CRCs with the C implementation when it is installed.
    "kafka-python": frozenset({"crc32c"}),
    # The state database's PostgreSQL driver, with libpq inside (python:3.11-slim has none).
    "psycopg": frozenset({"binary"}),
}
"""Extras the project relies on, per distribution (canonical name)."""

IMPLIED: dict[str, tuple[str, ...]] = {
    # shared/runtime/server.py names them as strings (loop="uvloop", http="httptools"), and
    # functions-framework's uvicorn worker picks them up when installed.
    "uvicorn": ("uvloop", "httptools"),
}
"""Distributions another one uses without the project importing them by name."""


class RequirementsError(Exception):
    """A function imports something the requirements cannot give it; the message says what."""


@dataclass(frozen=True)
class Entry:
    """A module the package starts from; ``nested=False`` reads its module-level imports only."""

    module: str
    nested: bool = True


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, nested: bool) -> Iterable[ast.Import | ast.ImportFrom]:
    def walk(nodes: Iterable[ast.stmt]) -> Iterable[ast.Import | ast.ImportFrom]:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from walk(node.orelse)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if nested:
                    yield from walk(node.body)
            else:  # classes, if/else, try/except/finally, with, for, while
                for name in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, name, None)
                    if isinstance(children, list):
                        stmts = [c for c in children if isinstance(c, ast.stmt)]
                        stmts += [
                            s for c in children if isinstance(c, ast.ExceptHandler) for s in c.body
                        ]
                        yield from walk(stmts)

    return walk(tree.body)


def import_closure(root: Path, entries: Iterable[Entry]) -> tuple[set[str], set[str]]:
    """(project modules reached, third-party top-level import names) from ``entries``."""
    project: set[str] = set()
    external: set[str] = set()
    queue: list[Entry] = list(entries)
    seen: set[tuple[str, bool]] = set()
    while queue:
        entry = queue.pop()
        if (entry.module, entry.nested) in seen:
            continue
        seen.add((entry.module, entry.nested))
        path = _module_file(root, entry.module)
        if path is None:
            raise RequirementsError(f"module {entry.module!r} has no file under {root}")
        project.add(entry.module)
        package = entry.module if path.name == "__init__.py" else entry.module.rpartition(".")[0]
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = entry.module.split(".")
        queue.extend(Entry(".".join(parts[:i])) for i in range(1, len(parts)))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree, entry.nested):
            names: list[tuple[str, str | None]]
            if isinstance(node, ast.Import):
                names = [(alias.name, None) for alias in node.names]
            else:
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                names = [(base, alias.name) for alias in node.names]
            for module, member in names:
                top = module.split(".")[0]
                if top in PROJECT_PACKAGES:
                    queue.append(Entry(module))
                    if member and _module_file(root, f"{module}.{member}") is not None:
                        queue.append(Entry(f"{module}.{member}"))
                elif top not in sys.stdlib_module_names and top != "__future__":
                    external.add(top)
    return project, external


def _pins(requirements: str) -> dict[str, tuple[str, Requirement]]:
    pins: dict[str, tuple[str, Requirement]] = {}
    for raw in requirements.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        pins[canonicalize_name(req.name)] = (line, req)
    return pins


def _dependencies(dist: str, extras: frozenset[str]) -> list[str]:
    found: list[str] = []
    for text in metadata.requires(dist) or []:
        req = Requirement(text)
        if req.marker is not None and not any(
            # evaluate() fills in the running interpreter's default_environment() itself
            req.marker.evaluate({"extra": extra})
            for extra in ("", *extras)
        ):
            continue
        found.append(canonicalize_name(req.name))
    return found


def distributions_for(
    imports: Iterable[str], providers: Mapping[str, list[str]] | None = None
) -> set[str]:
    """Canonical names of the distributions that provide ``imports``, closed over their
    dependencies as installed here (with :data:`EXTRAS` and :data:`IMPLIED`)."""
    providers = metadata.packages_distributions() if providers is None else providers
    todo: list[str] = []
    for name in sorted(imports):
        dists = providers.get(name)
        if not dists:
            raise RequirementsError(
                f"the code imports {name!r}, which no installed "
                "distribution provides; add it to requirements.txt"
            )
        todo.extend(canonicalize_name(d) for d in dists)
    closed: set[str] = set()
    while todo:
        dist = todo.pop()
        if dist in closed:
            continue
        closed.add(dist)
        try:
            todo.extend(_dependencies(dist, EXTRAS.get(dist, frozenset())))
        except metadata.PackageNotFoundError:
            raise RequirementsError(
                f"{dist} is not installed in this environment; "
                "package from the project's venv (make venv)"
            ) from None
        todo.extend(IMPLIED.get(dist, ()))
    return closed


def pinned(requirements: str, dists: Iterable[str]) -> list[str]:
    """The lines of ``requirements`` (a requirements.txt) that pin ``dists``, in its order."""
    pins = _pins(requirements)
    missing = sorted(set(dists) - set(pins))
    if missing:
        raise RequirementsError(
            "not pinned in requirements.txt: "
            + ", ".join(missing)
            + " (a function's code needs them)"
        )
    unpinned = [
        pins[d][0]
        for d in dists
        if not re.fullmatch(r"[^=<>~!]+==[^=*]+", pins[d][0].replace(" ", ""))
    ]
    if unpinned:
        raise RequirementsError("requirements.txt must pin with ==: " + ", ".join(unpinned))
    wanted = set(dists)
    return [line for name, (line, _req) in pins.items() if name in wanted]


def installed_bytes(dists: Iterable[str]) -> int:
    """Bytes the distributions occupy once installed: the files their RECORD lists in this
    environment (the same wheels an image installs, with the bytecode pip compiles)."""
    total = 0
    for dist in dists:
        files = metadata.distribution(dist).files or []
        for f in files:
            path = Path(str(f.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total
