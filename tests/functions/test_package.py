"""`retailfn package`: every function builds; a packaged function runs from its folder alone.

The run test builds a fresh virtual environment from the package alone: ``python -m venv`` and
``pip install -r <package>/requirements.txt`` (the package registry, or pip's cache; about 20 s),
so the function can only import what its package pins and carries. The test checks that the
repository's ``shared``, ``events`` and ``functions`` are not importable there before starting it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cloudevents.conversion import to_binary

import shared.cli
from events.envelope import event_from_sample, from_kafka
from shared.adapters import bucket, get_bus, get_store
from shared.cli import main
from shared.config import load_service
from shared.ingest import COLUMNS
from shared.inventory import ProductCatalog
from shared.package import build_packages, command_for, kind_of
from shared.runtime.app import provision
from shared.runtime.cos_trigger import cos_event
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "serverless.yaml"
SERVICE = load_service(CONFIG, stage="local")
FORBIDDEN = {"tests", "bench", "__pycache__"}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.cli, "configure_logging", lambda *args, **kwargs: None)


def package(out: Path, *args: str) -> dict:
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "package", "--out", str(out),
                                       *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "package", "--out", str(out)],
                                catch_exceptions=False)
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
            p.stat().st_size for p in files)
        assert (folder / "functions" / name / "main.py").is_file()
        assert (folder / "functions/__init__.py").is_file()
        others = {p.name for p in (folder / "functions").iterdir() if p.is_dir()}
        assert others == {name}  # only its own function
        assert (folder / "shared/config.py").is_file()
        assert (folder / "events/catalog.py").is_file()
        assert list((folder / "events/samples").glob("*.json"))
        assert list((folder / "events/schemas").glob("*.json"))
        assert (folder / "requirements.txt").read_text() == requirements
        assert (folder / "serverless.yaml").is_file()
        dockerfile = (folder / "Dockerfile").read_text()
        assert dockerfile.startswith(f"# retailfn / {name}")
        assert "FROM python:3.11-slim" in dockerfile
        assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
        assert "USER 10001" in dockerfile
        assert f"CMD {json.dumps(entry['command'])}" in dockerfile
        assert (dist / f"{name}.zip").stat().st_size == entry["archive_bytes"]


def test_commands_start_functions_framework_or_the_runtime_for_batch_functions(
        dist: Path) -> None:
    manifest = {p["function"]: p for p in json.loads((dist / "manifest.json").read_text())[
        "packages"]}
    assert manifest["ingest_stock"]["command"] == [
        "functions-framework", "--target", "ingest_stock", "--source",
        "functions/ingest_stock/main.py", "--asgi"]
    assert manifest["report_stock"]["kind"] == "http"
    assert manifest["archive_events"]["kind"] == "batch"
    assert "python -m shared.cli --config serverless.yaml worker --functions archive_events" in \
        manifest["archive_events"]["command"][-1]
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


def test_a_subset_rebuild_keeps_the_others_in_the_manifest(tmp_path: Path) -> None:
    package(tmp_path, "--functions", "ingest_stock,report_stock")
    manifest = package(tmp_path, "--functions", "ingest_stock")
    assert [p["function"] for p in manifest["packages"]] == ["ingest_stock", "report_stock"]


def test_package_refuses_to_write_into_the_project() -> None:
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "package", "--out",
                                       str(ROOT / "shared")])
    assert result.exit_code != 0 and "project's own folders" in result.output


def test_unknown_function_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "package", "--out",
                                       str(tmp_path), "--functions", "nope"])
    assert result.exit_code != 0 and "unknown function(s) nope" in result.output


# --- a packaged function, alone, in a fresh virtual environment ----------------------------------


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build_packages(SERVICE, ROOT, out, ["ingest_stock_file"])
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(out / "ingest_stock_file" / "requirements.txt")],
                   check=True, env=_clean_env())
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RETAILFN_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def test_the_fresh_environment_sees_the_libraries_but_not_the_repository(
        fresh_python: Path, tmp_path: Path) -> None:
    probe = ("import importlib.util as u, functions_framework, pydantic; "
             "print([u.find_spec(m) is None for m in ('shared', 'events', 'functions')])")
    out = subprocess.run([str(fresh_python), "-c", probe], cwd=tmp_path, env=_clean_env(),
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[True, True, True]"


@pytest.fixture
def packaged_ingest_stock_file(dist: Path, fresh_python: Path,
                               tmp_path: Path) -> Iterator[tuple[int, Path]]:
    folder = dist / "ingest_stock_file"
    port = free_port()
    cmd = command_for(SERVICE, "ingest_stock_file")
    assert cmd[0] == "functions-framework"
    # `python -m functions_framework` is the console script's module; PYTHONPATH as in the
    # Dockerfile (functions-framework adds only the source file's own folder to sys.path).
    log = (tmp_path / "function.log").open("wb")
    process = subprocess.Popen(
        [str(fresh_python), "-m", "functions_framework", *cmd[1:], "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        env=_clean_env(PYTHONPATH=str(folder), RETAILFN_STAGE="local",
                       RETAILFN_DATA_DIR=os.environ["RETAILFN_DATA_DIR"]))
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
        packaged_ingest_stock_file: tuple[int, Path]) -> None:
    port, log = packaged_ingest_stock_file
    provision(get_bus(), get_store())
    product = event_from_sample("product-introduced").data
    for partner_sku in ("SKU-1", "SKU-2"):  # acme introduced them: the lines are good lines
        ProductCatalog().put(product.model_copy(update={"sku": f"ACME-{partner_sku}",
                                                        "partner_sku": partner_sku}))
    csv = "\n".join([",".join(COLUMNS),
                     "SKU-1,LOC-1,eu,7,0,0,each,,2026-11-27T10:00:00Z,1",
                     "SKU-2,LOC-2,eu,3,0,0,each,,2026-11-27T10:00:00Z,1"]) + "\n"
    info = get_store().put(bucket("partner-drops"), "acme/2026-11-27/stock.csv", csv.encode(),
                           content_type="text/csv")
    # Code Engine's COS subscription, delivered in CloudEvents binary HTTP mode.
    headers, body = to_binary(cos_event(info.bucket, info.key, "write", info.etag, info.size,
                                        "text/csv"))

    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, log.read_text()

    records = [from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
               for r in get_bus().read_all("inventory.stock-reported")]
    assert sorted((e.data.partner_sku, e.data.on_hand) for e in records) == [
        ("SKU-1", 7), ("SKU-2", 3)]
    assert {e.data.partner_id for e in records} == {"acme"}
    report = json.loads(get_store().get(bucket("partner-drops"),
                                        "acme/2026-11-27/stock.csv.report.json").body)
    assert (report["lines_published"], report["lines_rejected"]) == (2, 0)
