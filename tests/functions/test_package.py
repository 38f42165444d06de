"""`retailfn package`: every function builds; a packaged function runs from its folder alone.

The run tests build fresh virtual environments from the packages alone, as their Dockerfiles do:
``python -m venv`` and ``pip install -r <package>/requirements.txt`` (pip's configured sources;
about 20 s each), so a function can only import what its package pins and carries. Packages with
the same requirements share one environment (6 for 9 functions). The tests check that the
repository's ``shared``, ``events`` and ``functions`` are not importable there, then start every
package with the command and environment ``infra/generated/apps.tf.json`` gives its app.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from cloudevents.conversion import to_binary

import shared.tools.cli
from events.envelope import event_from_sample, from_kafka
from shared.inventory import ProductCatalog
from shared.inventory.stockfile import COLUMNS
from shared.platform.adapters import bucket, get_bus, get_store
from shared.runtime.app import provision
from shared.runtime.config import load_service
from shared.runtime.cos_trigger import cos_event
from shared.tools.cli import main
from shared.tools.package import IMAGE_ENV, IMAGE_WORKDIR, command_for, kind_of
from shared.tools.requirements import (
    Entry,
    RequirementsError,
    distributions_for,
    import_closure,
    pinned,
)
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "serverless.yaml"
SERVICE = load_service(CONFIG, stage="local")
FORBIDDEN = {"tests", "bench", "__pycache__"}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.tools.cli, "configure_logging", lambda *args, **kwargs: None)


def package(out: Path, *args: str) -> dict:
    result = CliRunner().invoke(
        main, ["--config", str(CONFIG), "package", "--out", str(out), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = CliRunner().invoke(
        main, ["--config", str(CONFIG), "package", "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert f"{len(SERVICE.functions)} package(s)" in result.stdout
    return out


def test_every_function_is_packaged_with_its_code_the_layers_and_a_size_report(dist: Path) -> None:
    manifest = json.loads((dist / "manifest.json").read_text())
    assert [p["function"] for p in manifest["packages"]] == list(SERVICE.functions)
    requirements = (ROOT / "requirements.txt").read_text()
    for entry in manifest["packages"]:
        name = entry["function"]
        folder = dist / name
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert entry["files"] == len(files) and entry["bytes"] == sum(
            p.stat().st_size for p in files
        )
        assert (folder / "functions" / name / "main.py").is_file()
        assert (folder / "functions/__init__.py").is_file()
        others = {p.name for p in (folder / "functions").iterdir() if p.is_dir()}
        assert others == {name}  # only its own function
        assert (folder / "shared/runtime/config.py").is_file()
        assert (folder / "events/catalog.py").is_file()
        assert list((folder / "events/samples").glob("*.json"))
        assert list((folder / "events/schemas").glob("*.json"))
        pinned = [
            line
            for line in (folder / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert pinned == entry["requirements"]
        assert set(pinned) <= set(requirements.splitlines())  # the project's pins, unchanged
        assert (folder / "serverless.yaml").is_file()
        dockerfile = (folder / "Dockerfile").read_text()
        assert dockerfile.startswith(f"# retailfn / {name}")
        assert "FROM python:3.11-slim" in dockerfile
        assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
        assert "USER 10001" in dockerfile
        assert f"CMD {json.dumps(entry['command'])}" in dockerfile
        assert (dist / f"{name}.zip").stat().st_size == entry["archive_bytes"]


def test_commands_start_the_http_app_the_subscription_app_or_the_worker(dist: Path) -> None:
    manifest = {
        p["function"]: p for p in json.loads((dist / "manifest.json").read_text())["packages"]
    }
    assert manifest["report_stock"]["command"] == [
        "python",
        "-m",
        "shared.runtime.http_app",
        "--function",
        "report_stock",
    ]
    assert manifest["ingest_stock_file"]["command"] == [
        "python",
        "-m",
        "shared.runtime.subscription",
        "--function",
        "ingest_stock_file",
    ]
    assert manifest["ingest_stock"]["command"] == [
        "python",
        "-m",
        "shared.runtime.worker",
        "--function",
        "ingest_stock",
    ]
    assert manifest["report_stock"]["kind"] == "http"
    assert manifest["archive_events"]["kind"] == "worker"
    assert manifest["ingest_stock_file"]["kind"] == "subscription"
    assert manifest["archive_events"]["command"] == [
        "python",
        "-m",
        "shared.runtime.worker",
        "--function",
        "archive_events",
    ]
    for name in SERVICE.functions:
        assert command_for(SERVICE, name) == manifest[name]["command"]
        assert kind_of(SERVICE, name) == manifest[name]["kind"]


def test_nothing_from_tests_bench_or_caches_is_inside(dist: Path) -> None:
    for folder in (p for p in dist.iterdir() if p.is_dir()):
        parts = {part for p in folder.rglob("*") for part in p.relative_to(folder).parts}
        assert not parts & FORBIDDEN, folder.name
        assert not [p for p in folder.rglob("*.pyc")]
        with zipfile.ZipFile(dist / f"{folder.name}.zip") as zf:
            names = zf.namelist()
        assert not {part for n in names for part in n.split("/")} & FORBIDDEN
        assert f"functions/{folder.name}/main.py" in names and "Dockerfile" in names
        # The tools (CLI, deploy, infra, package...) run on an operator's machine only.
        assert not (folder / "shared" / "tools").exists(), folder.name
        assert not [n for n in names if n.startswith("shared/tools/")], folder.name
        assert "shared/runtime/app.py" in names and "shared/platform/settings.py" in names


def test_a_subset_rebuild_keeps_the_others_in_the_manifest(tmp_path: Path) -> None:
    package(tmp_path, "--functions", "ingest_stock,report_stock")
    manifest = package(tmp_path, "--functions", "ingest_stock")
    assert [p["function"] for p in manifest["packages"]] == ["ingest_stock", "report_stock"]


def test_package_refuses_to_write_into_the_project() -> None:
    result = CliRunner().invoke(
        main, ["--config", str(CONFIG), "package", "--out", str(ROOT / "shared")]
    )
    assert result.exit_code != 0 and "project's own folders" in result.output


def test_unknown_function_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--config", str(CONFIG), "package", "--out", str(tmp_path), "--functions", "nope"]
    )
    assert result.exit_code != 0 and "unknown function(s) nope" in result.output


# --- a packaged function, alone, in a fresh virtual environment ----------------------------------


class Venvs:
    """One fresh virtual environment per distinct requirements.txt, built on first use.

    The pinned wheels are fetched once (``pip wheel`` from pip's configured sources into a
    wheelhouse); each environment then installs its package's requirements.txt from there alone
    (``--no-index``), as the Dockerfile's ``pip install -r requirements.txt`` would (same pins,
    same wheels, compiled). The sets are built two at a time."""

    def __init__(self, base: Path, folders: list[Path]) -> None:
        self.base = base
        self.made: dict[str, Path] = {}
        self._bare: int | None = None
        self.wheels = base / "wheelhouse"
        distinct = {(f / "requirements.txt").read_text(): f for f in folders}
        union = sorted(
            {
                line
                for text in distinct
                for line in text.splitlines()
                if line and not line.startswith("#")
            }
        )
        (base / "union.txt").write_text("\n".join(union) + "\n")
        # `pip wheel`: fetched wheels are kept as they are, an sdist (ibm-cos-sdk) is built once.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "-w",
                str(self.wheels),
                "-r",
                str(base / "union.txt"),
            ],
            check=True,
            env=_clean_env(),
            stderr=subprocess.DEVNULL,
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            built = pool.map(self._build, range(len(distinct)), distinct.values())
            self.made = dict(zip(distinct, built, strict=True))

    def _build(self, index: int, folder: Path) -> Path:
        venv = self.base / f"venv-{index}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "--no-index",
                "--find-links",
                str(self.wheels),
                "-r",
                str(folder / "requirements.txt"),
            ],
            check=True,
            env=_clean_env(),
            stderr=subprocess.DEVNULL,
        )
        return python

    def python_for(self, folder: Path) -> Path:
        return self.made[(folder / "requirements.txt").read_text()]

    def added_bytes(self, python: Path) -> int:
        """What the requirements added to site-packages (a bare venv's pip and setuptools
        subtracted)."""
        if self._bare is None:
            bare = self.base / "bare"
            subprocess.run([sys.executable, "-m", "venv", str(bare)], check=True)
            self._bare = _tree_bytes(_site_packages(bare / "bin" / "python"))
        return _tree_bytes(_site_packages(python)) - self._bare


def _site_packages(python: Path) -> Path:
    return next((python.parent.parent / "lib").glob("python3*/site-packages"))


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def venvs(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Venvs:
    return Venvs(tmp_path_factory.mktemp("venvs"), [dist / name for name in SERVICE.functions])


@pytest.fixture(scope="module")
def fresh_python(dist: Path, venvs: Venvs) -> Path:
    return venvs.python_for(dist / "ingest_stock_file")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETAILFN_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


def test_the_fresh_environment_sees_the_libraries_but_not_the_repository(
    fresh_python: Path, tmp_path: Path
) -> None:
    probe = (
        "import importlib.util as u, functions_framework, pydantic; "
        "print([u.find_spec(m) is None for m in ('shared', 'events', 'functions')])"
    )
    out = subprocess.run(
        [str(fresh_python), "-c", probe],
        cwd=tmp_path,
        env=_clean_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == "[True, True, True]"


# --- what each image installs --------------------------------------------------------------------

CROSS_SELL = {"recommend", "record_click", "recalc_cross_sell"}
"""The functions whose code reaches shared/crosssell/rules/cooccurrence.py (numpy, scipy.sparse)."""


def _requirement_names(folder: Path) -> set[str]:
    lines = (folder / "requirements.txt").read_text().splitlines()
    return {line.split("==")[0].lower() for line in lines if line and not line.startswith("#")}


def test_only_the_cross_sell_functions_install_numpy_and_scipy(dist: Path) -> None:
    for name in SERVICE.functions:
        has = {"numpy", "scipy"} & _requirement_names(dist / name)
        assert has == ({"numpy", "scipy"} if name in CROSS_SELL else set()), name


def test_no_image_installs_the_tooling_only_dependencies(dist: Path) -> None:
    for name in SERVICE.functions:
        names = _requirement_names(dist / name)
        assert "python-hcl2" not in names and "lark" not in names, name


def test_an_event_function_image_leaves_out_what_only_auth_uses(dist: Path) -> None:
    # ingest_stock (worker) and ingest_stock_file (subscription) authenticate nobody: no JWT
    # (their closures reach the runtime and its metrics, not shared.platform.auth).
    for name in ("ingest_stock", "ingest_stock_file"):
        names = _requirement_names(dist / name)
        assert {"pyjwt", "cryptography"}.isdisjoint(names), name
        assert {"prometheus_client", "kafka-python", "ibm-cos-sdk", "pydantic"} <= names, name
    names = _requirement_names(dist / "ingest_stock")
    assert {"functions-framework", "kafka-python", "ibm-cos-sdk", "pydantic"} <= names


def test_the_package_report_gives_the_installed_size_of_each_image(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(CONFIG),
            "package",
            "--out",
            str(tmp_path),
            "--functions",
            "ingest_stock,recalc_cross_sell",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert "installed MB" in header
    manifest = {
        p["function"]: p for p in json.loads((tmp_path / "manifest.json").read_text())["packages"]
    }
    for row in rows[:2]:
        name, *_rest, installed = row.split()
        assert float(installed) == round(manifest[name]["installed_bytes"] / 1e6, 1)
    # scipy and numpy alone are well over 100 MB installed.
    assert (
        manifest["recalc_cross_sell"]["installed_bytes"]
        - manifest["ingest_stock"]["installed_bytes"]
        > 100e6
    )


def test_an_import_inside_a_function_counts_and_one_for_type_checking_does_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared/__init__.py").write_text("")
    (tmp_path / "shared/lazy.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\n"
        "def bus():\n    from kafka import KafkaProducer\n    return KafkaProducer\n"
    )
    (tmp_path / "shared/entry.py").write_text(
        "import json\nfrom shared import lazy\ndef later():\n    import hcl2\n"
    )

    assert import_closure(tmp_path, [Entry("shared.entry")]) == (
        {"shared", "shared.entry", "shared.lazy"},
        {"kafka", "hcl2"},
    )
    # Module level only (the CLI's group): the command bodies' imports are left out.
    assert import_closure(tmp_path, [Entry("shared.entry", nested=False)])[1] == {"kafka"}


def test_a_distribution_requirements_txt_does_not_pin_is_refused() -> None:
    lock = "\n".join(
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if not line.startswith("scipy==")
    )

    with pytest.raises(RequirementsError, match="not pinned in requirements.txt: scipy"):
        pinned(lock, distributions_for({"scipy", "pydantic"}))


# --- every packaged app starts, as its generated Code Engine app runs it ------------------------

APPS = json.loads((ROOT / "infra/generated/apps.tf.json").read_text())


def _from_terraform(value: str) -> str:
    # Terraform JSON strings are templates: `$${` and `%%{` are a literal `${` and `%{`.
    return value.replace("$${", "${").replace("%%{", "%{")


def app_command(name: str) -> list[str]:
    app = APPS["resource"]["ibm_code_engine_app"][name]
    return [_from_terraform(c) for c in [*app["run_commands"], *app.get("run_arguments", [])]]


def app_environment(name: str, stage: str) -> dict[str, str]:
    return {
        k: _from_terraform(v)
        for k, v in APPS["locals"]["function_environment"][name][stage].items()
    }


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


ROUTE_CHECKS: dict[str, tuple[str, str, int, str]] = {
    # One request per HTTP app that only its function answers this way (the front answers no
    # 401 or 422, and its own 404 says no function serves the path): the route reaches the
    # function. Method, path, status, and a piece of the function's answer.
    "report_stock": ("POST", "/v1/partners/acme/stock", 401, "missing credentials"),
    "introduce_product": ("POST", "/v1/partners/acme/products", 401, "missing credentials"),
    "stock_rejections": ("GET", "/v1/partners/acme/rejections", 401, "missing credentials"),
    "inventory_api": ("GET", "/v1/inventory?region=eu", 200, '"items":[]'),
    "recommend": ("GET", "/v1/recommendations/ACME-SKU-1?region=eu", 404, "not in the eu catalog"),
    "record_click": ("POST", "/v1/recommendations/nope/clicks", 422, "failed validation"),
}


def _request(method: str, url: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url,
        data=b"{}" if method == "POST" else None,
        headers={"Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_every_http_function_has_a_route_check() -> None:
    assert set(ROUTE_CHECKS) == {n for n in SERVICE.functions if kind_of(SERVICE, n) == "http"}


@pytest.mark.parametrize("name", list(SERVICE.functions))
def test_every_packaged_app_starts_with_its_generated_command_and_environment(
    name: str, dist: Path, venvs: Venvs, tmp_path: Path
) -> None:
    folder = dist / name
    python = venvs.python_for(folder)
    command = app_command(name)  # the image's CMD too (tests/functions/test_infra.py)
    port = free_port()
    if kind_of(SERVICE, name) == "http":
        # An HTTP app provisions nothing (Terraform does, in the cloud): the buckets are there
        # before it starts, in the data folder it is given.
        provision(get_bus(), get_store())
    # The image's ENV with /app where the package is, the app's config map for stage local
    # (embedded bus and store: the cloud stages need the platform's secrets), and what Code
    # Engine sets. PATH starts at the venv's bin, as pip's /usr/local/bin in the image.
    env = {k: v.replace(IMAGE_WORKDIR, str(folder)) for k, v in IMAGE_ENV.items()}
    env.update(app_environment(name, "local"))
    env.update(
        PATH=f"{python.parent}:/usr/bin:/bin",
        HOME=str(tmp_path),
        HOST="127.0.0.1",
        PORT=str(port),
        RETAILFN_DATA_DIR=os.environ["RETAILFN_DATA_DIR"],
    )
    log_path = tmp_path / "app.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, f"{name} exited:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"{name} did not listen on {port}"
                try:
                    status, body = _get(f"http://127.0.0.1:{port}/healthz")
                    break
                except OSError:
                    time.sleep(0.2)
            assert status == 200, body
            deadline = time.monotonic() + 30
            while (ready := _get(f"http://127.0.0.1:{port}/readyz"))[0] != 200:
                assert time.monotonic() < deadline, ready
                time.sleep(0.2)
            if kind_of(SERVICE, name) == "http":
                method, path, expected, answer = ROUTE_CHECKS[name]
                status, content_type, body = _request(method, f"http://127.0.0.1:{port}{path}")
                assert (status, answer in body.decode()) == (expected, True), (
                    status,
                    body,
                    log_path.read_text(),
                )
                assert content_type == (
                    "application/json" if status < 400 else "application/problem+json"
                ), content_type
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert "Traceback" not in log_path.read_text()


def test_the_reported_installed_size_is_what_the_fresh_environment_measures(
    dist: Path, venvs: Venvs
) -> None:
    manifest = {
        p["function"]: p for p in json.loads((dist / "manifest.json").read_text())["packages"]
    }
    for name in ("ingest_stock", "recalc_cross_sell"):
        python = venvs.python_for(dist / name)
        reported = manifest[name]["installed_bytes"] - manifest[name]["bytes"]
        measured = venvs.added_bytes(python)
        assert abs(measured - reported) <= 0.05 * measured, (name, measured, reported)


def test_pip_installs_exactly_the_pinned_set(dist: Path, venvs: Venvs) -> None:
    # Nothing resolved beyond the file: the computed closure is complete and every pin is used.
    for name in ("archive_events", "report_stock"):
        python = venvs.python_for(dist / name)
        frozen = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "freeze",
                "--all",
                "--exclude",
                "pip",
                "--exclude",
                "setuptools",
            ],
            check=True,
            capture_output=True,
            text=True,
            env=_clean_env(),
        )
        wanted = {
            _canonical(line)
            for line in (dist / name / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")
        }
        assert {_canonical(line) for line in frozen.stdout.split()} == wanted, name


def _canonical(pin: str) -> str:
    name, _, version = pin.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


@pytest.fixture
def packaged_ingest_stock_file(
    dist: Path, fresh_python: Path, tmp_path: Path
) -> Iterator[tuple[int, Path]]:
    folder = dist / "ingest_stock_file"
    port = free_port()
    cmd = command_for(SERVICE, "ingest_stock_file")
    assert cmd[:3] == ["python", "-m", "shared.runtime.subscription"]
    # The fresh venv's python; PYTHONPATH as in the Dockerfile.
    log = (tmp_path / "function.log").open("wb")
    process = subprocess.Popen(
        [str(fresh_python), *cmd[1:], "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_clean_env(
            PYTHONPATH=str(folder),
            RETAILFN_STAGE="local",
            RETAILFN_DATA_DIR=os.environ["RETAILFN_DATA_DIR"],
        ),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (a GET without an event is a 4xx)
            except OSError:
                assert process.poll() is None, (tmp_path / "function.log").read_text()
                assert time.monotonic() < deadline, "the packaged function did not start"
                time.sleep(0.1)
            else:
                break
        yield port, tmp_path / "function.log"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_a_packaged_function_runs_from_its_folder_in_a_fresh_venv_and_takes_a_cos_event(
    packaged_ingest_stock_file: tuple[int, Path],
) -> None:
    port, log = packaged_ingest_stock_file
    provision(get_bus(), get_store())
    product = event_from_sample("product-introduced").data
    for partner_sku in ("SKU-1", "SKU-2"):  # acme introduced them: the lines are good lines
        ProductCatalog().put(
            product.model_copy(update={"sku": f"ACME-{partner_sku}", "partner_sku": partner_sku})
        )
    csv = (
        "\n".join(
            [
                ",".join(COLUMNS),
                "SKU-1,LOC-1,eu,7,0,0,each,,2026-11-27T10:00:00Z,1",
                "SKU-2,LOC-2,eu,3,0,0,each,,2026-11-27T10:00:00Z,1",
            ]
        )
        + "\n"
    )
    info = get_store().put(
        bucket("partner-drops"), "acme/2026-11-27/stock.csv", csv.encode(), content_type="text/csv"
    )
    # Code Engine's COS subscription, delivered in CloudEvents binary HTTP mode.
    headers, body = to_binary(
        cos_event(info.bucket, info.key, "write", info.etag, info.size, "text/csv")
    )

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, log.read_text()

    records = [
        from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
        for r in get_bus().read_all("inventory.stock-reported")
    ]
    assert sorted((e.data.partner_sku, e.data.on_hand) for e in records) == [
        ("SKU-1", 7),
        ("SKU-2", 3),
    ]
    assert {e.data.partner_id for e in records} == {"acme"}
    report = json.loads(
        get_store().get(bucket("partner-drops"), "acme/2026-11-27/stock.csv.report.json").body
    )
    assert (report["lines_published"], report["lines_rejected"]) == (2, 0)
