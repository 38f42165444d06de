from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.platform.adapters import reset_adapters
from shared.platform.settings import reset_settings
from tests.servers import MotoS3, Tansu

E2E_CONFIG = Path(__file__).parent / "serverless.yaml"


@dataclass
class Stack:
    """Which adapters a test runs on, and the environment that selects them."""

    kind: str
    env: dict[str, str] = field(default_factory=dict)
    broker: Tansu | None = None
    s3: MotoS3 | None = None


def _real_env(broker: Tansu, s3: MotoS3, prefix: str) -> dict[str, str]:
    return {
        "RETAILFN_BUS": "kafka",
        "RETAILFN_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "RETAILFN_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "RETAILFN_KAFKA_HEARTBEAT_INTERVAL_MS": "400",
        "RETAILFN_KAFKA_MAX_POLL_INTERVAL_MS": "8000",
        "RETAILFN_OBJECTSTORE": "cos",
        "RETAILFN_COS_ENDPOINT": s3.endpoint,
        "RETAILFN_COS_REGION": "us-east-1",
        "RETAILFN_COS_HMAC_ACCESS_KEY_ID": "test",
        "RETAILFN_COS_HMAC_SECRET_ACCESS_KEY": "test",
        "RETAILFN_BUCKET_PREFIX": prefix,
    }


def state_database(request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's PostgreSQL server, at the newest schema, as ``retailfn
    deploy`` (``db upgrade``) leaves it."""
    from shared.integration.state import create_state_engine
    from shared.integration.state.migrate import upgrade

    url: str = request.getfixturevalue("postgres_url")
    engine = create_state_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["embedded", "real"])
def stack(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Stack]:
    """The embedded default (SQLite under its data folder), or a fresh Tansu broker, a fresh
    bucket prefix on moto server and a fresh database on the session's PostgreSQL server."""
    if request.param == "embedded":
        yield Stack("embedded", {"RETAILFN_DATA_DIR": str(tmp_path / "retailfn-data")})
        return
    s3: MotoS3 = request.getfixturevalue("moto_s3")
    database = state_database(request)
    broker = Tansu.start(log_path=tmp_path / "tansu.log")
    env = {
        **_real_env(broker, s3, f"e2e{uuid.uuid4().hex[:8]}"),
        "RETAILFN_DATABASE_URL": database,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    try:
        yield Stack("real", env, broker, s3)
    finally:
        reset_adapters()  # close the clients while their broker is still there to say goodbye
        broker.stop()


def eventually(check: Callable[[], Any], timeout_s: float = 20.0, interval_s: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")


def deployed(service: Any) -> Any:
    """``retailfn deploy --stage local`` against the test's stack, twice: the first run creates
    every topic and bucket, the second changes nothing. The runtime then starts with
    ``provision=False``, so the e2e suite runs on exactly what the deploy made."""
    from shared.tools.deploy import deploy_direct

    first = deploy_direct(service)
    assert first.changed and not first.drift, first.summary()
    second = deploy_direct(service)
    assert not second.changed, second.summary()
    assert second.summary().startswith("no changes"), second.summary()
    return service
