"""What only the local folder adapter has: real paths, and files written by other programs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from shared.integration.objectstore import InvalidKey, ObjectNotFound, PreconditionFailed
from shared.integration.objectstore.local import LocalFolderStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def store(root: Path) -> LocalFolderStore:
    store = LocalFolderStore(root)
    store.create_bucket("bkt")
    return store


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


ESCAPES = [
    "../outside",
    "a/../../outside",
    "/etc/passwd",
    "a\\..\\b",
    "a//b",
    "a/",
    "",
    ".",
    "a/./b",
    "..",
    ".meta/x",
    "a/\x00b",
]


@pytest.mark.parametrize("key", ESCAPES)
def test_keys_that_could_escape_the_bucket_are_rejected_everywhere(
    store: LocalFolderStore, root: Path, key: str
) -> None:
    for attempt in (
        lambda: store.put("bkt", key, b"x"),
        lambda: store.get("bkt", key),
        lambda: store.head("bkt", key),
        lambda: store.delete("bkt", key),
    ):
        with pytest.raises(InvalidKey):
            attempt()
    assert files_under(root / "bkt") == set()
    assert not (root.parent / "outside").exists()


@pytest.mark.parametrize("name", ["..", ".meta", ".locks", "UPPER", "ab", "a/b", "-ab", "a..b"])
def test_bucket_names_that_are_not_s3_names_are_rejected(
    store: LocalFolderStore, name: str
) -> None:
    with pytest.raises(InvalidKey):
        store.create_bucket(name)
    with pytest.raises(InvalidKey):
        store.bucket_exists(name)


def test_objects_are_plain_files_at_their_key(store: LocalFolderStore, root: Path) -> None:
    key = "events/t/date=2026-11-27/hour=08/t+0+42.ndjson.gz"
    store.put("bkt", key, b"payload", content_type="application/gzip")
    assert (root / "bkt" / key).read_bytes() == b"payload"
    assert files_under(root / "bkt") == {key}  # no sidecar, lock or temp file in the bucket


def test_a_file_dropped_into_the_folder_is_an_object(store: LocalFolderStore, root: Path) -> None:
    dropped = root / "bkt" / "erp" / "2026-11-27" / "export.csv"
    dropped.parent.mkdir(parents=True)
    dropped.write_bytes(b"sku,qty\n1,2\n")

    [listed] = store.list("bkt", "erp/")
    assert (listed.key, listed.size) == ("erp/2026-11-27/export.csv", 12)
    assert listed.etag == md5(b"sku,qty\n1,2\n")
    got = store.get("bkt", "erp/2026-11-27/export.csv")
    assert got.body == b"sku,qty\n1,2\n"
    assert got.info.etag == md5(got.body)
    assert got.info.content_type == "application/octet-stream"


def test_a_file_rewritten_by_another_program_gets_a_fresh_etag(
    store: LocalFolderStore, root: Path
) -> None:
    first = store.put("bkt", "k.txt", b"ours", content_type="text/plain")
    (root / "bkt" / "k.txt").write_bytes(b"theirs, longer")  # in place: same inode
    assert store.head("bkt", "k.txt").etag == md5(b"theirs, longer") != first.etag

    replacement = root / "bkt" / "k.tmp-by-tool"
    replacement.write_bytes(b"again")
    os.replace(replacement, root / "bkt" / "k.txt")  # by rename: new inode
    assert store.get("bkt", "k.txt").info.etag == md5(b"again")


def test_compare_and_swap_works_on_a_dropped_file(store: LocalFolderStore, root: Path) -> None:
    (root / "bkt" / "state.json").write_bytes(b"{}")
    with pytest.raises(PreconditionFailed):
        store.put("bkt", "state.json", b'{"a": 1}', if_match="0" * 32)
    with pytest.raises(PreconditionFailed):
        store.put("bkt", "state.json", b'{"a": 1}', if_none_match=True)
    store.put("bkt", "state.json", b'{"a": 1}', if_match=md5(b"{}"))
    assert store.get("bkt", "state.json").body == b'{"a": 1}'


def test_touching_a_file_keeps_its_content_type(store: LocalFolderStore, root: Path) -> None:
    store.put("bkt", "k.json", b"{}", content_type="application/json", metadata={"a": "b"})
    os.utime(root / "bkt" / "k.json", ns=(1_000_000_000, 1_000_000_000))
    info = store.head("bkt", "k.json")
    assert info.etag == md5(b"{}")
    assert (info.content_type, dict(info.metadata)) == ("application/json", {"a": "b"})


def test_hidden_and_in_progress_files_of_other_tools_are_not_listed(
    store: LocalFolderStore, root: Path
) -> None:
    store.put("bkt", "d/real.csv", b"x")
    (root / "bkt" / "d" / ".real2.csv.Xy12ab").write_bytes(b"rsync in progress")
    (root / "bkt" / ".DS_Store").write_bytes(b"")
    (root / "bkt" / "d" / "bad\\name").write_bytes(b"not a valid key")
    assert [i.key for i in store.list("bkt")] == ["d/real.csv"]


def test_symlinks_are_not_followed_out_of_the_bucket(
    store: LocalFolderStore, root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    (root / "bkt" / "link.txt").symlink_to(secret)
    (root / "bkt" / "linkdir").symlink_to(tmp_path)
    assert list(store.list("bkt")) == []
    with pytest.raises(ObjectNotFound):
        store.get("bkt", "link.txt")


def test_everything_survives_a_restart(store: LocalFolderStore, root: Path) -> None:
    put = store.put("bkt", "a/b", b"durable", content_type="text/plain", metadata={"k": "v"})
    store.close()
    again = LocalFolderStore(root)
    assert again.bucket_exists("bkt")
    got = again.get("bkt", "a/b")
    assert (got.body, got.info.etag, got.info.content_type, dict(got.info.metadata)) == (
        b"durable",
        put.etag,
        "text/plain",
        {"k": "v"},
    )
    again.put("bkt", "a/b", b"next", if_match=put.etag)


def test_a_key_cannot_be_both_an_object_and_a_folder(store: LocalFolderStore) -> None:
    store.put("bkt", "a/b", b"file")
    with pytest.raises(InvalidKey):
        store.put("bkt", "a/b/c", b"under a file")
    store.put("bkt", "x/y/z", b"deep")
    with pytest.raises(InvalidKey):
        store.put("bkt", "x/y", b"over a folder")
    with pytest.raises(ObjectNotFound):
        store.get("bkt", "x/y")


def test_delete_prunes_empty_folders(store: LocalFolderStore, root: Path) -> None:
    store.put("bkt", "a/b/c", b"x")
    store.put("bkt", "a/keep", b"x")
    store.delete("bkt", "a/b/c")
    assert not (root / "bkt" / "a" / "b").exists()
    assert (root / "bkt" / "a" / "keep").exists()
    store.put("bkt", "a/b", b"now a file")  # would clash with a leftover empty folder
    assert [i.key for i in store.list("bkt")] == ["a/b", "a/keep"]


def test_a_failed_condition_leaves_no_temp_file(store: LocalFolderStore, root: Path) -> None:
    store.put("bkt", "k", b"x")
    with pytest.raises(PreconditionFailed):
        store.put("bkt", "k", b"y", if_none_match=True)
    assert list((root / ".tmp").iterdir()) == []
