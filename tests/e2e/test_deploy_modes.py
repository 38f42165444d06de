"""Each deployment mode's app, started with its generated command, keeps the delivery promises.

The packaged apps of ``serverless.yaml`` (``retailfn package``) run from their own folder with
exactly the command their Dockerfile and the generated Terraform give them, on Tansu + moto:

* ``deploy: subscription`` (``ingest_stock_file``, and the e2e suite's ``record_order`` as
  ``record_order_pushed``):
  Code Engine-shaped events are POSTed as its subscription would, once each, no retry;
* ``deploy: worker`` (``ingest_stock``): the app consumes its consumer group by itself.

Faults: a dependency that fails and recovers, a poison event, a re-delivery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibm_boto3
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from ibm_botocore.client import Config

from events.envelope import event_from_sample, from_kafka, new_event, to_kafka
from shared.inventory import ProductCatalog
from shared.inventory.stockfile import COLUMNS
from shared.platform.adapters import bucket, get_bus, get_store, reset_adapters
from shared.platform.settings import reset_settings
from shared.runtime.commands import start_command
from shared.runtime.config import ServiceConfig, load_service
from shared.runtime.cos_trigger import cos_event
from shared.tools.package import build_packages
from tests.e2e.conftest import E2E_CONFIG, _real_env, deployed, eventually, state_database
from tests.servers import MotoS3, Tansu, free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _json(raw: bytes) -> dict[str, Any]:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:  # not this app's answer (a platform's error page)
        return {"text": raw.decode(errors="replace")[:200]}


@dataclass
class App:
    """A deployed function's app, running as its own process."""

    port: int
    folder: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]

    def post(self, event: CloudEvent, timeout: float = 60) -> tuple[int, dict[str, Any]]:
        """POST as a Code Engine subscription does: binary-mode CloudEvent, one try."""
        headers, body = to_binary(event)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``retailfn`` as ops run it beside the app: same folder, same environment."""
        return subprocess.run(
            [sys.executable, "-m", "shared.tools.cli", "--config", "serverless.yaml", *args],
            check=False,  # the caller reads the exit code
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def logged(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")


@dataclass
class Stack:
    env: dict[str, str]
    broker: Tansu
    s3: MotoS3


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    moto_s3: MotoS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """A broker of the test's own (topics are per broker), a fresh bucket prefix on moto and a
    fresh database on the session's PostgreSQL (the apps' claims)."""
    database = state_database(request)
    broker = Tansu.start(log_path=tmp_path / "tansu.log")
    env = {
        **_real_env(broker, moto_s3, f"dm{uuid.uuid4().hex[:8]}"),
        "RETAILFN_STAGE": "local",
        "RETAILFN_DATABASE_URL": database,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    try:
        yield Stack(env, broker, moto_s3)
    finally:
        reset_adapters()
        broker.stop()


def start_app(
    folder: Path,
    command: list[str],
    stack_env: dict[str, str],
    log: Path,
    *,
    pythonpath: Path,
    ready_path: str = "/healthz",
) -> App:
    """Run ``command`` exactly as generated, in ``folder``, on a free loopback port."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETAILFN_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        stack_env,
        PORT=str(port),
        PYTHONPATH=str(pythonpath),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    out = log.open("wb")
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    app = App(port, folder, env, log, process)

    def ready() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        eventually(ready, timeout_s=60)
    except BaseException:
        stop_app(app)
        raise
    return app


def stop_app(app: App) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait()


def packaged(service: ServiceConfig, name: str, out: Path) -> tuple[Path, list[str]]:
    """The function's package folder and the command its manifest (and Dockerfile) give."""
    manifest = build_packages(service, REPO, out, [name])
    entry = next(p for p in manifest["packages"] if p["function"] == name)
    assert entry["command"] == start_command(name, service.functions[name])
    return Path(entry["path"]), entry["command"]


def s3_client(s3: MotoS3) -> Any:
    """Another client of the object store (ops, a partner), not the project's adapter."""
    return ibm_boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )


def records(topic: str) -> list[Any]:
    return [
        from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
        for r in get_bus().read_all(topic)
    ]


# --- deploy: subscription, the packaged ingest_stock_file ---------------------------------------

CSV = (
    "\n".join(
        [
            ",".join(COLUMNS),
            "SKU-1,LOC-1,eu,7,0,0,each,,2026-11-27T10:00:00Z,1",
            "SKU-2,LOC-2,eu,3,0,0,each,,2026-11-27T10:00:00Z,1",
        ]
    )
    + "\n"
).encode()


@pytest.fixture
def drop_app(stack: Stack, tmp_path: Path) -> Iterator[App]:
    service = deployed(load_service(REPO / "serverless.yaml", stage="local", env={}))
    assert service.functions["ingest_stock_file"].deployment == "subscription"
    product = event_from_sample("product-introduced").data
    for partner_sku in ("SKU-1", "SKU-2"):  # acme introduced them: the drop's lines are good
        ProductCatalog().put(
            product.model_copy(update={"sku": f"ACME-{partner_sku}", "partner_sku": partner_sku})
        )
    folder, command = packaged(service, "ingest_stock_file", tmp_path / "dist")
    app = start_app(folder, command, stack.env, tmp_path / "app.log", pythonpath=folder)
    yield app
    stop_app(app)


def drop_event(key: str) -> tuple[CloudEvent, str]:
    """Put a partner's drop and return Code Engine's COS event for it (and its etag)."""
    info = get_store().put(bucket("partner-drops"), key, CSV, content_type="text/csv")
    return cos_event(info.bucket, info.key, "write", info.etag, info.size, "text/csv"), info.etag


def remove_drops_bucket(stack: Stack) -> None:
    """The fault: the drops' bucket is gone (the event names an object nobody can read)."""
    s3, name = s3_client(stack.s3), bucket("partner-drops")
    for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def restore_drops_bucket(stack: Stack, key: str) -> None:
    s3 = s3_client(stack.s3)
    s3.create_bucket(Bucket=bucket("partner-drops"))
    s3.put_object(Bucket=bucket("partner-drops"), Key=key, Body=CSV, ContentType="text/csv")


def stock_lines() -> list[tuple[str, int]]:
    return sorted((e.data.partner_sku, e.data.on_hand) for e in records("inventory.stock-reported"))


def test_subscription_app_applies_an_event_after_its_failing_dependency_recovers(
    stack: Stack, drop_app: App
) -> None:
    key = "acme/2026-12-03/stock.csv"
    event, _ = drop_event(key)
    remove_drops_bucket(stack)
    answers: list[tuple[int, dict[str, Any]]] = []
    post = threading.Thread(target=lambda: answers.append(drop_app.post(event)))
    post.start()
    eventually(lambda: drop_app.logged("event failed, will retry"))  # the first attempt failed
    restore_drops_bucket(stack, key)  # same bytes, so the same etag the event names
    post.join(60)

    status, body = answers[0]
    assert status == 200 and body["outcome"] == "ok" and body["attempts"] >= 2, body
    assert stock_lines() == [("SKU-1", 7), ("SKU-2", 3)]


def test_subscription_app_dead_letters_a_poison_event_and_answers_that_it_took_it(
    stack: Stack, drop_app: App
) -> None:
    poison = CloudEvent(
        {
            "type": "com.ibm.cloud.cos.document.write",
            "id": "poison-1",
            "source": f"/cos/bucket/{bucket('partner-drops')}",
            "datacontenttype": "application/json",
        },
        "not a notification",
    )

    status, body = drop_app.post(poison)

    assert status == 200 and body["outcome"] == "dead_letter", body
    listed = drop_app.cli("dlq", "list")
    assert listed.returncode == 0, listed.stderr
    assert "poison-1" in listed.stdout and "InvalidEvent" in listed.stdout
    announced = [json.loads(r.value) for r in get_bus().read_all("platform.dead-letter")]
    assert [(d["function"], d["event"]["id"]) for d in announced] == [
        ("ingest_stock_file", "poison-1")
    ]


def test_subscription_app_dead_letters_an_event_its_retries_cannot_save_and_replay_applies_it(
    stack: Stack, drop_app: App
) -> None:
    key = "acme/2026-12-03/late.csv"
    event, _ = drop_event(key)
    remove_drops_bucket(stack)

    status, body = drop_app.post(event)  # retry: 3 at PT1S exponential, then the dead letter
    assert status == 200 and body["outcome"] == "dead_letter" and body["attempts"] == 4, body
    assert stock_lines() == []

    restore_drops_bucket(stack, key)  # the fix
    replay = drop_app.cli("dlq", "replay", "--all")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert stock_lines() == [("SKU-1", 7), ("SKU-2", 3)]
    assert drop_app.cli("dlq", "list").stdout.strip() == ""


def test_subscription_app_answers_a_redelivered_drop_as_a_duplicate_and_publishes_once(
    stack: Stack, drop_app: App
) -> None:
    event, _ = drop_event("acme/2026-12-03/twice.csv")

    first, again = drop_app.post(event), drop_app.post(event)

    assert first == (200, {"outcome": "ok", "attempts": 1, "dead_letter_id": None})
    assert again == (200, {"outcome": "duplicate"})
    assert stock_lines() == [("SKU-1", 7), ("SKU-2", 3)]


# --- deploy: subscription, a Kafka subscription (the e2e suite's record_order_pushed) -----------


RECORD_ORDER_PUSHED = """
  record_order_pushed:
    handler: tests.support.event_functions:record_order
    deploy: subscription
    events:
      - kafka:
          topic: sales.order-completed
          ordering: unordered
"""
"""The e2e suite's record_order, behind a Code Engine Kafka subscription."""


@pytest.fixture
def order_app(stack: Stack, tmp_path: Path) -> Iterator[App]:
    """The e2e suite's functions are not packaged (they live in tests/): the app runs from a
    folder laid out like a package (its serverless.yaml, here the e2e suite's plus
    record_order_pushed) with the repository on PYTHONPATH."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "serverless.yaml").write_text(
        E2E_CONFIG.read_text(encoding="utf-8") + RECORD_ORDER_PUSHED, encoding="utf-8"
    )
    service = deployed(load_service(folder / "serverless.yaml", stage="local"))
    command = start_command("record_order_pushed", service.functions["record_order_pushed"])
    app = start_app(folder, command, stack.env, tmp_path / "app.log", pythonpath=REPO)
    yield app
    stop_app(app)


def knative_kafka_event(partition: int, offset: int, data: dict[str, Any]) -> CloudEvent:
    """What Code Engine's Kafka subscription POSTs for a record without CloudEvents headers."""
    return CloudEvent(
        {
            "type": "dev.knative.kafka.event",
            "id": f"partition:{partition}/offset:{offset}",
            "source": "/apis/v1/namespaces/retailfn/kafkasources/record-order#sales.order-completed",
            "subject": f"partition:{partition}#{offset}",
            "key": data["order_id"],
            "datacontenttype": "application/json",
        },
        data,
    )


def recorded_orders() -> list[dict[str, Any]]:
    from shared.integration.objectstore.port import ObjectNotFound

    try:
        return json.loads(get_store().get(bucket("state"), "effects/record_order.json").body)
    except ObjectNotFound:
        return []


def test_subscription_app_applies_a_redelivered_kafka_event_once(
    stack: Stack, order_app: App
) -> None:
    order = event_from_sample("order-completed").data.model_dump(mode="json")
    event = knative_kafka_event(0, 41, order)

    first, again = order_app.post(event), order_app.post(event)

    assert first[0] == 200 and first[1].get("outcome") == "ok", first
    assert again == (200, {"outcome": "duplicate"})
    assert len(recorded_orders()) == 1


# --- deploy: worker, the packaged ingest_stock --------------------------------------------------


def stock_report(partner_sku: str, sequence: int, on_hand: int = 48) -> Any:
    sample = event_from_sample("stock-reported")
    data = type(sample.data).model_validate(
        {
            **sample.data.model_dump(mode="json"),
            "partner_sku": partner_sku,
            "sequence": sequence,
            "on_hand": on_hand,
        }
    )
    return new_event(data, source=sample.source, key=sample.partitionkey)


def publish(event: Any) -> None:
    key, value, headers = to_kafka(event)
    get_bus().publish("inventory.stock-reported", value, key=key, headers=headers)


def test_worker_app_started_with_its_generated_command_keeps_the_delivery_guarantees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = MotoS3.start()  # the test's own endpoint, so that it can fail and come back
    broker = Tansu.start(log_path=tmp_path / "tansu.log")
    env = {**_real_env(broker, s3, f"dw{uuid.uuid4().hex[:8]}"), "RETAILFN_STAGE": "local"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    app = None
    try:
        service = deployed(load_service(REPO / "serverless.yaml", stage="local", env={}))
        assert service.functions["ingest_stock"].deployment == "worker"
        folder, command = packaged(service, "ingest_stock", tmp_path / "dist")
        product = event_from_sample("product-introduced").data
        ProductCatalog().put(product)
        app = start_app(
            folder, command, env, tmp_path / "app.log", pythonpath=folder, ready_path="/readyz"
        )

        # A poison event: stock of a SKU the partner never introduced.
        unknown = stock_report("NEVER-INTRODUCED", 1)
        publish(unknown)
        listed = eventually(lambda: (r := app.cli("dlq", "list")).stdout.strip() and r)
        assert unknown.id in listed.stdout and "not in the catalog" in listed.stdout

        # A failing dependency: the object store goes away while a report is on its way.
        report = stock_report(product.partner_sku, 2000)
        s3.stop()
        publish(report)
        eventually(lambda: app.logged("event failed, will retry"), timeout_s=30)
        s3 = MotoS3.start(s3.port)
        changed = eventually(lambda: records("inventory.stock-changed"), timeout_s=30)
        assert [e.data.on_hand for e in changed] == [48]

        # A re-delivery: the same event again, then a later one behind it on the partition.
        publish(report)
        later = stock_report(product.partner_sku, 2001, on_hand=40)
        publish(later)
        changed = eventually(
            lambda: (
                len(records("inventory.stock-changed")) >= 2 and records("inventory.stock-changed")
            ),
            timeout_s=30,
        )
        assert [e.data.on_hand for e in changed] == [48, 40]

        # The fix for the poison event (the product is introduced), then the replay.
        ProductCatalog().put(
            product.model_copy(update={"sku": "NEW-SKU", "partner_sku": "NEVER-INTRODUCED"})
        )
        replay = app.cli("dlq", "replay", "--all")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert app.cli("dlq", "list").stdout.strip() == ""
        assert sorted(e.data.sku for e in records("inventory.stock-changed")) == sorted(
            [product.sku, product.sku, "NEW-SKU"]
        )
    finally:
        if app is not None:
            stop_app(app)
        reset_adapters()
        broker.stop()
        s3.stop()
