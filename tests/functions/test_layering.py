"""The layering of docs/ARCHITECTURE.md, as the import-linter contracts in pyproject.toml check it.

`make lint` runs the same contracts; here they also run in `make test`, and on a copy of the tree
with one import added against the map, to show each contract can fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,  # the exit code is what is asserted
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the code and its pyproject.toml, to break on purpose."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("shared", "events", "functions"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(module: Path, line: str) -> None:
    text = module.read_text(encoding="utf-8")
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, module
    module.write_text(f"{head}{sep}\n{line}  # noqa: F401\n{rest}", encoding="utf-8")


def test_the_tree_keeps_every_contract() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "chain"),
    [
        (  # the platform reaching up into a capability
            "shared/platform/publisher.py",
            "from shared.inventory.rules import normalize",
            "Layers:",
            "shared.platform.publisher -> shared.inventory.rules",
        ),
        (  # a pure rules module reading settings (and through them pydantic-settings)
            "shared/inventory/rules.py",
            "from shared.platform.settings import get_settings",
            "Pure rules:",
            "shared.inventory.rules -> shared.platform.settings",
        ),
        (  # a function reaching the tools
            "functions/report_stock/main.py",
            "from shared.tools.validate import validate_project",
            "The tools package is imported by nothing outside it",
            "functions.report_stock.main -> shared.tools.validate",
        ),
        (  # the runtime knowing a capability
            "shared/runtime/invoker.py",
            "from shared.crosssell.store import CrossSellStore",
            "The runtime runs any function and knows no capability",
            "shared.runtime.invoker -> shared.crosssell.store",
        ),
        (  # one function importing another
            "functions/recommend/main.py",
            "from functions.report_stock.main import report_stock",
            "Functions are independent of each other",
            "functions.recommend.main -> functions.report_stock.main",
        ),
        (  # cross-sell and inventory: only cross-sell may read inventory
            "shared/inventory/availability.py",
            "from shared.crosssell.rules.upsell import up_sells",
            "Layers:",
            "shared.inventory.availability -> shared.crosssell.rules.upsell",
        ),
    ],
)
def test_an_import_against_the_map_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str, chain: str
) -> None:
    _add_import(tree / module, line)

    result = _lint_imports(tree)

    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout[result.stdout.index("Broken contracts") :]
    assert contract in broken, broken
    assert chain in broken, broken
