from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.platform.settings import reset_settings
from tests.servers import MotoS3, Postgres, Tansu

# Moto needs some credentials to sign with; they never leave loopback.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the layer folder it lives in, so `-m unit` etc. select by layer."""
    layers = {"unit", "functions", "integration", "e2e"}
    for item in items:
        parts = set(Path(str(item.fspath)).parts)
        for layer in layers & parts:
            item.add_marker(getattr(pytest.mark, layer))
        if "contract" in parts and not (layers & parts):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test starts from the embedded default in its own data folder."""
    for name in list(os.environ):
        if name.startswith("RETAILFN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RETAILFN_DATA_DIR", str(tmp_path / "retailfn-data"))
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    broker = Tansu.start(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server per test session (per xdist worker); tests take a database each."""
    server = Postgres.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: Postgres) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.fixture(autouse=True)
def _fresh_adapters() -> Iterator[None]:
    """Adapters are process-wide singletons built from settings; each test gets its own."""
    from shared.platform.adapters import reset_adapters
    from shared.platform.publisher import flush_background

    reset_adapters()
    yield
    flush_background()  # what a test queued goes to its own bus, not the next test's
    reset_adapters()
