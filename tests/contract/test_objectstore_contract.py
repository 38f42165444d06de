"""One behaviour suite for every object store adapter: the local folder and COS (on moto)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shared.integration.objectstore import (
    InvalidKey,
    NoSuchBucket,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from shared.integration.objectstore.local import LocalFolderStore
from shared.platform.adapters import object_store_from_settings
from shared.platform.settings import Settings
from tests.servers import MotoS3

REPO = Path(__file__).resolve().parents[2]
WRITERS = 20


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
def bucket(store: ObjectStore) -> str:
    name = f"ct-{uuid.uuid4().hex[:20]}"
    assert store.create_bucket(name) is True
    return name


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# Buckets


def test_create_bucket_reports_whether_it_created(store: ObjectStore, bucket: str) -> None:
    assert store.bucket_exists(bucket)
    assert store.create_bucket(bucket) is False
    assert not store.bucket_exists(f"absent-{uuid.uuid4().hex[:12]}")


def test_operations_on_a_missing_bucket_raise_no_such_bucket(store: ObjectStore) -> None:
    missing = f"absent-{uuid.uuid4().hex[:12]}"
    with pytest.raises(NoSuchBucket):
        store.put(missing, "k", b"x")
    with pytest.raises(NoSuchBucket):
        store.get(missing, "k")
    with pytest.raises(NoSuchBucket):
        store.head(missing, "k")
    with pytest.raises(NoSuchBucket):
        store.list_page(missing)


# Reads and writes


def test_put_get_head_round_trip_with_content_type_and_metadata(
    store: ObjectStore, bucket: str
) -> None:
    put = store.put(
        bucket,
        "docs/a.json",
        b'{"a": 1}',
        content_type="application/json",
        metadata={"source": "erp", "Run-Id": "42"},
    )
    assert put.etag == md5(b'{"a": 1}')  # plain MD5 hex, no quotes
    assert put.size == 8

    got = store.get(bucket, "docs/a.json")
    head = store.head(bucket, "docs/a.json")
    assert got.body == b'{"a": 1}'
    for info in (got.info, head):
        assert info.etag == put.etag
        assert info.size == 8
        assert info.content_type == "application/json"
        assert dict(info.metadata) == {"source": "erp", "run-id": "42"}  # names lower-cased, as S3
        assert info.last_modified.tzinfo is not None


def test_get_head_and_open_of_a_missing_key_raise_object_not_found(
    store: ObjectStore, bucket: str
) -> None:
    with pytest.raises(ObjectNotFound):
        store.get(bucket, "nope")
    with pytest.raises(ObjectNotFound):
        store.head(bucket, "nope/deeper")
    with pytest.raises(ObjectNotFound), store.open(bucket, "nope"):
        pass


def test_put_overwrites_unconditionally(store: ObjectStore, bucket: str) -> None:
    store.put(bucket, "k", b"one")
    second = store.put(bucket, "k", b"two")
    assert store.get(bucket, "k").body == b"two"
    assert store.head(bucket, "k").etag == second.etag == md5(b"two")


def test_keys_with_equals_plus_and_slashes_round_trip(store: ObjectStore, bucket: str) -> None:
    folder = "events/sales.order-completed/date=2026-11-27/hour=08/"
    key = folder + "sales.order-completed+0+42.ndjson.gz"
    store.put(bucket, key, b"\x1f\x8b payload", content_type="application/gzip")
    assert store.get(bucket, key).body == b"\x1f\x8b payload"
    assert [i.key for i in store.list(bucket, folder)] == [key]
    assert [i.key for i in store.list(bucket, "events/sales.order-completed/date=2026-")] == [key]


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/", "../x", "a/../b", "a\\b", "a/.hidden"])
def test_invalid_keys_are_rejected_the_same_way_by_every_adapter(
    store: ObjectStore, bucket: str, key: str
) -> None:
    with pytest.raises(InvalidKey) as raised:
        store.put(bucket, key, b"x")
    assert isinstance(raised.value, ValueError)


# Conditional writes


def test_create_only_succeeds_once_then_raises_precondition_failed(
    store: ObjectStore, bucket: str
) -> None:
    first = store.put(bucket, "once", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put(bucket, "once", b"second", if_none_match=True)
    assert store.get(bucket, "once").body == b"first"
    assert store.head(bucket, "once").etag == first.etag


def test_compare_and_swap_with_the_current_etag_succeeds_and_returns_a_new_etag(
    store: ObjectStore, bucket: str
) -> None:
    v1 = store.put(bucket, "state.json", b'{"n": 1}')
    v2 = store.put(bucket, "state.json", b'{"n": 2}', if_match=v1.etag)
    assert v2.etag != v1.etag
    assert v2.etag == md5(b'{"n": 2}') == store.head(bucket, "state.json").etag
    assert store.get(bucket, "state.json").body == b'{"n": 2}'


def test_compare_and_swap_with_a_stale_etag_fails_and_leaves_the_object_unchanged(
    store: ObjectStore, bucket: str
) -> None:
    v1 = store.put(bucket, "state.json", b'{"n": 1}')
    v2 = store.put(bucket, "state.json", b'{"n": 2}', if_match=v1.etag)
    with pytest.raises(PreconditionFailed):
        store.put(bucket, "state.json", b'{"n": 99}', if_match=v1.etag)
    assert store.get(bucket, "state.json").body == b'{"n": 2}'
    assert store.head(bucket, "state.json").etag == v2.etag


def test_compare_and_swap_on_a_deleted_key_raises_precondition_failed(
    store: ObjectStore, bucket: str
) -> None:
    v1 = store.put(bucket, "gone", b"x")
    store.delete(bucket, "gone")
    with pytest.raises(PreconditionFailed):
        store.put(bucket, "gone", b"y", if_match=v1.etag)
    with pytest.raises(ObjectNotFound):
        store.head(bucket, "gone")


# Listing


def test_list_by_prefix_is_paginated_in_key_order(store: ObjectStore, bucket: str) -> None:
    keys = [f"orders/{n:03d}.json" for n in range(25)]
    for key in reversed(keys):
        store.put(bucket, key, key.encode())
    store.put(bucket, "orders-archive/000.json", b"other prefix")
    store.put(bucket, "other/000.json", b"other prefix")

    pages, token = [], None
    while True:
        page = store.list_page(bucket, "orders/", token=token, limit=10)
        pages.append([item.key for item in page.items])
        if page.next_token is None:
            break
        token = page.next_token
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [k for p in pages for k in p] == keys

    first = store.list_page(bucket, "orders/", limit=10).items[0]
    assert (first.etag, first.size) == (md5(b"orders/000.json"), len("orders/000.json"))


def test_list_orders_keys_bytewise_across_folders_like_s3(store: ObjectStore, bucket: str) -> None:
    # "-" (0x2d) < "/" (0x2f) < "0" (0x30): a folder's keys sort between its siblings.
    keys = ["a-b", "a/b/c", "a/c", "a0", "ab", "b"]
    for key in reversed(keys):
        store.put(bucket, key, b"x")
    assert [i.key for i in store.list(bucket)] == keys
    assert [i.key for i in store.list(bucket, page_size=2)] == keys
    assert [i.key for i in store.list(bucket, "a/")] == ["a/b/c", "a/c"]
    assert [i.key for i in store.list(bucket, "a")] == ["a-b", "a/b/c", "a/c", "a0", "ab"]


def test_list_of_an_empty_prefix_is_one_empty_page(store: ObjectStore, bucket: str) -> None:
    page = store.list_page(bucket, "nothing/here/")
    assert page.items == [] and page.next_token is None


# Delete


def test_delete_removes_the_object_and_deleting_an_absent_key_is_fine(
    store: ObjectStore, bucket: str
) -> None:
    store.put(bucket, "dir/k", b"x")
    store.delete(bucket, "dir/k")
    with pytest.raises(ObjectNotFound):
        store.get(bucket, "dir/k")
    assert list(store.list(bucket)) == []
    store.delete(bucket, "dir/k")
    store.delete(bucket, "never/existed")


def test_delete_if_match_deletes_only_the_version_read(store: ObjectStore, bucket: str) -> None:
    v1 = store.put(bucket, "k", b"one")
    v2 = store.put(bucket, "k", b"two")
    with pytest.raises(PreconditionFailed):
        store.delete(bucket, "k", if_match=v1.etag)
    assert store.get(bucket, "k").body == b"two"
    store.delete(bucket, "k", if_match=v2.etag)
    with pytest.raises(ObjectNotFound):
        store.head(bucket, "k")
    with pytest.raises(PreconditionFailed):
        store.delete(bucket, "k", if_match=v2.etag)


# Streaming


class GeneratedBody(io.RawIOBase):
    """A non-seekable body produced on the fly, so nothing holds the whole of it."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._blocks, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def test_streaming_put_and_read_of_a_large_body(store: ObjectStore, bucket: str) -> None:
    size, block = 20 * 1024 * 1024, 256 * 1024
    sent = hashlib.md5(usedforsecurity=False)

    def blocks() -> Iterator[bytes]:
        for n in range(size // block):
            data = hashlib.sha256(n.to_bytes(4, "big")).digest() * (block // 32)
            sent.update(data)
            yield data

    info = store.put(bucket, "big.bin", io.BufferedReader(GeneratedBody(blocks())))
    assert info.size == size
    assert info.etag == sent.hexdigest()

    received, total = hashlib.md5(usedforsecurity=False), 0
    with store.open(bucket, "big.bin") as (head, stream):
        assert head.size == size
        while chunk := stream.read(1024 * 1024):
            received.update(chunk)
            total += len(chunk)
    assert total == size
    assert received.hexdigest() == sent.hexdigest() == head.etag


# Concurrency: separate processes for the local folder (they share nothing but the folder),
# threads for COS (the server is what arbitrates).

_CHILD = """
import sys
from shared.integration.objectstore.local import LocalFolderStore
from shared.integration.objectstore.port import PreconditionFailed

root, bucket, key, mode, n = sys.argv[1:]
store = LocalFolderStore(root)
print("ready", flush=True)
sys.stdin.read(1)  # the starting gun: every writer is loaded and waiting
if mode == "create":
    try:
        store.put(bucket, key, ("writer " + n).encode(), if_none_match=True)
        print("won")
    except PreconditionFailed:
        print("lost")
else:
    attempts = 0
    while True:
        attempts += 1
        current = store.get(bucket, key)
        try:
            store.put(bucket, key, str(int(current.body) + 1).encode(), if_match=current.info.etag)
            break
        except PreconditionFailed:
            continue
    print(attempts)
"""


def _in_processes(store: LocalFolderStore, bucket: str, key: str, mode: str) -> list[str]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(store.root), bucket, key, mode, str(n)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("g")
            child.stdin.close()
        outputs = [child.stdout.read().strip() for child in children]  # until each exits
        for child in children:
            child.wait(timeout=60)
        assert [child.returncode for child in children] == [0] * WRITERS
        return outputs
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _in_threads(fn: Callable[[int], str]) -> list[str]:
    start = threading.Barrier(WRITERS)

    def run(n: int) -> str:
        start.wait(timeout=30)
        return fn(n)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        return list(pool.map(run, range(WRITERS)))


def _create_once(store: ObjectStore, bucket: str, key: str, n: int) -> str:
    try:
        store.put(bucket, key, f"writer {n}".encode(), if_none_match=True)
    except PreconditionFailed:
        return "lost"
    return "won"


def _increment(store: ObjectStore, bucket: str, key: str) -> str:
    attempts = 0
    while True:
        attempts += 1
        current = store.get(bucket, key)
        try:
            store.put(bucket, key, str(int(current.body) + 1).encode(), if_match=current.info.etag)
        except PreconditionFailed:
            continue
        return str(attempts)


def test_create_only_lets_exactly_one_of_20_concurrent_writers_win(
    store: ObjectStore, bucket: str
) -> None:
    if isinstance(store, LocalFolderStore):
        outcomes = _in_processes(store, bucket, "leader", "create")
    else:
        outcomes = _in_threads(lambda n: _create_once(store, bucket, "leader", n))
    assert sorted(outcomes) == ["lost"] * (WRITERS - 1) + ["won"]
    winner = store.get(bucket, "leader")
    assert winner.body.startswith(b"writer ")
    assert winner.info.etag == md5(winner.body)


def test_concurrent_compare_and_swap_increments_lose_no_update(
    store: ObjectStore, bucket: str
) -> None:
    store.put(bucket, "counter", b"0")
    if isinstance(store, LocalFolderStore):
        attempts = _in_processes(store, bucket, "counter", "increment")
    else:
        attempts = _in_threads(lambda _: _increment(store, bucket, "counter"))
    assert int(store.get(bucket, "counter").body) == WRITERS
    assert len(attempts) == WRITERS and all(int(a) >= 1 for a in attempts)


def test_settings_choose_the_adapter(tmp_path: Path) -> None:
    local = object_store_from_settings(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalFolderStore)
    assert local.root == tmp_path / "objects"


def test_put_info_matches_a_later_head(store: ObjectStore, bucket: str) -> None:
    put = store.put(bucket, "k", b"abc", content_type="text/plain", metadata={"a": "b"})
    head = store.head(bucket, "k")
    assert (put.etag, put.size, put.content_type, dict(put.metadata)) == (
        head.etag,
        head.size,
        head.content_type,
        dict(head.metadata),
    )
    assert abs((put.last_modified - head.last_modified).total_seconds()) < 5
