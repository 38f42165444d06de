"""The cross-sell store on every object store adapter: concurrent folds lose nothing."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.envelope import new_event, to_kafka
from events.platform import BatchRecord
from events.sales import OrderCompleted
from shared.crosssell import CrossSellStore
from shared.integration.objectstore import ObjectStore
from shared.integration.objectstore.local import LocalFolderStore
from shared.platform import archive
from shared.platform.adapters import object_store_from_settings
from shared.platform.settings import Settings
from tests.servers import MotoS3

REPO = Path(__file__).resolve().parents[2]
FOLDS = 6
ORDERS_EACH = 15
T0 = datetime(2026, 11, 27, 8, tzinfo=UTC)
SKUS = [f"SKU-{n:03d}" for n in range(25)]


@pytest.fixture(params=["local", "cos"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        adapter: ObjectStore = LocalFolderStore(tmp_path / "objects")
    else:
        moto: MotoS3 = request.getfixturevalue("moto_s3")
        adapter = object_store_from_settings(
            Settings(
                objectstore="cos",
                cos_endpoint=moto.endpoint,
                cos_region="us-east-1",
                cos_hmac_access_key_id="test",
                cos_hmac_secret_access_key="test",
            )
        )
    yield adapter
    adapter.close()


@pytest.fixture
def buckets(store: ObjectStore) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:16]
    archive_bucket, state_bucket = f"archive-{suffix}", f"state-{suffix}"
    store.create_bucket(archive_bucket)
    store.create_bucket(state_bucket)
    return archive_bucket, state_bucket


def archive_objects(store: ObjectStore, archive_bucket: str) -> dict[str, str]:
    """FOLDS archive objects of orders on different partitions: key -> ETag."""
    rng = random.Random(3)
    written = {}
    for partition in range(FOLDS):
        batch = []
        for offset in range(ORDERS_EACH):
            n = partition * 100 + offset
            payload = OrderCompleted.model_validate(
                {
                    "order_id": f"ORD-{n:06d}",
                    "channel": "web",
                    "region": rng.choice(["na", "eu"]),
                    "country": "US",
                    "currency": "USD",
                    "completed_at": (T0 + timedelta(seconds=n)).isoformat(),
                    "lines": [
                        {"sku": s, "quantity": "1", "unit_price": "5.00"}
                        for s in rng.sample(SKUS, rng.randint(1, 5))
                    ],
                }
            )
            key, value, headers = to_kafka(new_event(payload, source="/test", id=f"o-{n}"))
            batch.append(
                BatchRecord(
                    offset=offset,
                    timestamp_ms=int(T0.timestamp() * 1000),
                    key=key.decode() if key else None,
                    value=value.decode(),
                    headers={k: v.decode() for k, v in headers},
                )
            )
        topic = "sales.order-completed"
        key = archive.object_key(topic, partition, 0, batch[0].timestamp_ms)
        info = store.put(
            archive_bucket,
            key,
            archive.encode(topic, partition, batch),
            content_type=archive.CONTENT_TYPE,
        )
        written[key] = info.etag
    return written


def republished_objects(store: ObjectStore, archive_bucket: str) -> dict[str, str]:
    """FOLDS archive objects holding the same ORDERS_EACH orders, each object under new event
    ids, half of them on pos.checkout-completed: key -> ETag."""
    rng = random.Random(5)
    orders = [
        OrderCompleted.model_validate(
            {
                "order_id": f"ORD-{n:06d}",
                "channel": "store",
                "store_id": "BERLIN-1",
                "region": rng.choice(["na", "eu"]),
                "country": "DE",
                "currency": "EUR",
                "completed_at": (T0 + timedelta(seconds=n)).isoformat(),
                "lines": [
                    {"sku": s, "quantity": "1", "unit_price": "5.00"}
                    for s in rng.sample(SKUS, rng.randint(1, 5))
                ],
            }
        )
        for n in range(ORDERS_EACH)
    ]
    written = {}
    for partition in range(FOLDS):
        topic = ("sales.order-completed", "pos.checkout-completed")[partition % 2]
        batch = []
        for offset, payload in enumerate(orders):
            key, value, headers = to_kafka(
                new_event(payload, source="/test", id=f"o-{partition}-{offset}")
            )
            batch.append(
                BatchRecord(
                    offset=offset,
                    timestamp_ms=int(T0.timestamp() * 1000) + partition,
                    key=key.decode() if key else None,
                    value=value.decode(),
                    headers={k: v.decode() for k, v in headers},
                )
            )
        key = archive.object_key(topic, partition, 0, batch[0].timestamp_ms)
        info = store.put(
            archive_bucket,
            key,
            archive.encode(topic, partition, batch),
            content_type=archive.CONTENT_TYPE,
        )
        written[key] = info.etag
    return written


_CHILD = """
import sys
from shared.crosssell import CrossSellStore
from shared.integration.objectstore.local import LocalFolderStore

root, archive_bucket, state_bucket, key, etag = sys.argv[1:]
folds = CrossSellStore(LocalFolderStore(root), state_bucket, half_life_days=None)
print("ready", flush=True)
sys.stdin.read(1)
print(folds.fold_archive_object(archive_bucket, key, etag))
"""


def fold_in_processes(
    store: LocalFolderStore, archive_bucket: str, state_bucket: str, objects: dict[str, str]
) -> list[str]:
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(store.root),
                archive_bucket,
                state_bucket,
                key,
                etag,
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for key, etag in objects.items()
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("g")
            child.stdin.close()
        outcomes = [child.stdout.read().strip() for child in children]
        assert [child.wait(timeout=120) for child in children] == [0] * len(children)
        return outcomes
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def fold_in_threads(
    store: ObjectStore, archive_bucket: str, state_bucket: str, objects: dict[str, str]
) -> list[str]:
    start = threading.Barrier(len(objects))

    def run(item: tuple[str, str]) -> str:
        start.wait(timeout=30)
        return CrossSellStore(store, state_bucket, half_life_days=None).fold_archive_object(
            archive_bucket, *item
        )

    with ThreadPoolExecutor(max_workers=len(objects)) as pool:
        return list(pool.map(run, objects.items()))


def test_concurrent_folds_of_different_objects_all_land(
    store: ObjectStore, buckets: tuple[str, str]
) -> None:
    archive_bucket, state_bucket = buckets
    objects = archive_objects(store, archive_bucket)
    if isinstance(store, LocalFolderStore):
        outcomes = fold_in_processes(store, archive_bucket, state_bucket, objects)
    else:
        outcomes = fold_in_threads(store, archive_bucket, state_bucket, objects)
    assert outcomes == ["folded"] * FOLDS

    folds = CrossSellStore(store, state_bucket, half_life_days=None)
    current = folds.current()
    assert current is not None and current.folded == objects
    assert sum(current.region(r).basket_count for r in current.regions) == FOLDS * ORDERS_EACH

    rebuilt = folds.version(folds.rebuild(archive_bucket))
    assert {r: rebuilt.region_bytes(r) for r in rebuilt.regions} == {
        r: current.region_bytes(r) for r in current.regions
    }


def test_a_reader_sees_a_whole_version_or_none(
    store: ObjectStore, buckets: tuple[str, str]
) -> None:
    archive_bucket, state_bucket = buckets
    folds = CrossSellStore(store, state_bucket, half_life_days=None)
    assert folds.current() is None
    objects = archive_objects(store, archive_bucket)
    key, etag = next(iter(objects.items()))
    assert folds.fold_archive_object(archive_bucket, key, etag) == "folded"
    assert folds.fold_archive_object(archive_bucket, key, etag) == "already_folded"
    versions = {i.key.split("/")[2] for i in store.list(state_bucket, "crosssell/versions/")}
    assert versions == {folds.current().version}  # nothing orphaned, one version


def test_concurrent_folds_of_copies_of_the_same_orders_count_each_order_once(
    store: ObjectStore, buckets: tuple[str, str]
) -> None:
    archive_bucket, state_bucket = buckets
    objects = republished_objects(store, archive_bucket)
    if isinstance(store, LocalFolderStore):
        outcomes = fold_in_processes(store, archive_bucket, state_bucket, objects)
    else:
        outcomes = fold_in_threads(store, archive_bucket, state_bucket, objects)
    assert outcomes == ["folded"] * FOLDS  # each object is recorded, its copies skipped

    folds = CrossSellStore(store, state_bucket, half_life_days=None)
    current = folds.current()
    assert current is not None and current.folded == objects
    assert sum(current.region(r).basket_count for r in current.regions) == ORDERS_EACH
    assert len(current.counted_orders()) == ORDERS_EACH

    rebuilt = folds.version(folds.rebuild(archive_bucket))
    assert sum(rebuilt.region(r).basket_count for r in rebuilt.regions) == ORDERS_EACH
    assert {r: rebuilt.region_bytes(r) for r in rebuilt.regions} == {
        r: current.region_bytes(r) for r in current.regions
    }
