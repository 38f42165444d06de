"""The embedded object store: a folder of plain files, safe to share between processes.

Layout under ``root``::

    <bucket>/<key>                  the object's bytes, a plain file (operators may drop files here)
    .meta/<bucket>/<hh>/<hash>.json sidecar: etag, content type, user metadata, and the size,
                                    mtime and inode of the file it describes
    .locks/<bucket>/<hh>/<hash>.lock per-key lock around every check-and-rename
    .tmp/                           bodies being written, renamed into place when complete
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

from filelock import FileLock, Timeout

from shared.integration.objectstore.keys import check_bucket, check_key, check_prefix
from shared.integration.objectstore.port import (
    Body,
    InvalidKey,
    ListPage,
    NoSuchBucket,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    PreconditionFailed,
    StoredObject,
)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PAGE = 1000  # S3 never returns more per page; matching it keeps callers honest locally
_CHUNK = 1024 * 1024
_LOCK_TIMEOUT_S = 60.0
_STALE_TEMP_S = 24 * 3600.0


class LocalFolderStore(ObjectStore):
    """Buckets are folders under ``root`` and objects are files at their key's path.

    Conditional writes are atomic across threads and processes sharing ``root`` (a per-key file
    lock around check-and-rename). Files written by other programs are objects too: their ETag is
    the MD5 of their content, computed on first use and remembered in the sidecar.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._meta = self.root / ".meta"
        self._locks = self.root / ".locks"
        self._tmp = self.root / ".tmp"
        for folder in (self.root, self._meta, self._locks, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self._sweep_stale_temp_files()

    # Buckets

    def create_bucket(self, bucket: str) -> bool:
        path = self.root / check_bucket(bucket)
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise ObjectStoreError(f"{path} exists and is not a folder") from None
            return False
        _fsync_dir(self.root)
        return True

    def bucket_exists(self, bucket: str) -> bool:
        return (self.root / check_bucket(bucket)).is_dir()

    # Reads

    def head(self, bucket: str, key: str) -> ObjectInfo:
        info, stream = self._open_current(bucket, key)
        stream.close()
        return info

    def get(self, bucket: str, key: str) -> StoredObject:
        with self.open(bucket, key) as (info, stream):
            return StoredObject(info, stream.read())

    @contextlib.contextmanager
    def open(self, bucket: str, key: str) -> Iterator[tuple[ObjectInfo, BinaryIO]]:
        info, stream = self._open_current(bucket, key)
        with stream:
            yield info, stream

    def list_page(
        self, bucket: str, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ListPage:
        check_prefix(prefix)
        bucket_dir = self._bucket_dir(bucket)
        limit = max(1, min(limit, MAX_PAGE))
        base, _, _ = prefix.rpartition("/")
        start = bucket_dir / base if base else bucket_dir
        items: list[ObjectInfo] = []
        for key, entry in _walk(start, f"{base}/" if base else "", prefix, token or ""):
            if len(items) == limit:
                # The token is the last key returned: keys are unique, so "strictly after it"
                # resumes exactly, even if objects come and go between pages (as S3's StartAfter).
                return ListPage(items, items[-1].key)
            info = self._list_info(bucket, key, entry)
            if info is not None:
                items.append(info)
        return ListPage(items, None)

    # Writes

    def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        check_key(key)
        bucket_dir = self._bucket_dir(bucket)
        # S3 lower-cases user metadata names (they travel as x-amz-meta-* headers); do the same.
        user_metadata = {str(k).lower(): str(v) for k, v in (metadata or {}).items()}
        # The body goes to disk before the lock is taken, so a slow writer never blocks others.
        temp, etag = self._spool(body)
        try:
            with self._lock(bucket, key):
                if if_none_match or if_match is not None:
                    current = self._current_etag_locked(bucket, key)
                    if if_none_match and current is not None:
                        raise PreconditionFailed(bucket, key, "If-None-Match: *")
                    if if_match is not None and current != _unquote(if_match):
                        raise PreconditionFailed(bucket, key, f"If-Match: {_unquote(if_match)}")
                st = os.stat(temp)
                record = _record(key, etag, st, content_type, user_metadata)
                sidecar_temp = self._spool_json(record)
                try:
                    self._install(bucket_dir, key, temp)
                    sidecar = self._sidecar(bucket, key)
                    sidecar.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(sidecar_temp, sidecar)
                finally:
                    _remove_quietly(sidecar_temp)
                _fsync_dir((bucket_dir / key).parent)
                _fsync_dir(sidecar.parent)
        finally:
            _remove_quietly(temp)
        return _info(bucket, key, st, record)

    def delete(self, bucket: str, key: str, *, if_match: str | None = None) -> None:
        check_key(key)
        bucket_dir = self._bucket_dir(bucket)
        path = bucket_dir / key
        with self._lock(bucket, key):
            # An absent object cannot match: the caller's version is gone, so this lost a race.
            if if_match is not None and (
                self._current_etag_locked(bucket, key) != _unquote(if_match)
            ):
                raise PreconditionFailed(bucket, key, f"If-Match: {_unquote(if_match)}")
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass  # absent (or only a prefix of other keys): not an error, as in S3
            else:
                _fsync_dir(path.parent)
            _remove_quietly(self._sidecar(bucket, key))
        _prune_empty_dirs(path.parent, bucket_dir)

    # Internals

    def _bucket_dir(self, bucket: str) -> Path:
        path = self.root / check_bucket(bucket)
        if not path.is_dir():
            raise NoSuchBucket(bucket)
        return path

    def _hashed(self, folder: Path, bucket: str, key: str, suffix: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return folder / bucket / digest[:2] / f"{digest}{suffix}"

    def _sidecar(self, bucket: str, key: str) -> Path:
        # Hashed, not mirrored paths: key "a/b" and key "a/b.json/c" must not collide.
        return self._hashed(self._meta, bucket, key, ".json")

    @contextlib.contextmanager
    def _lock(self, bucket: str, key: str) -> Iterator[None]:
        path = self._hashed(self._locks, bucket, key, ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(path), timeout=_LOCK_TIMEOUT_S):
                yield
        except Timeout as exc:
            raise ObjectStoreError(f"timed out locking {key!r} in bucket {bucket!r}") from exc

    def _open_data(self, bucket: str, key: str) -> BinaryIO:
        check_key(key)
        path = self._bucket_dir(bucket) / key
        try:
            # O_NOFOLLOW: a symlink dropped into the bucket must not expose files outside it.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(bucket, key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ObjectNotFound(bucket, key) from None
            raise
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except BaseException:
            os.close(fd)
            raise
        if not regular:  # a folder: only a prefix of other keys
            os.close(fd)
            raise ObjectNotFound(bucket, key)
        return os.fdopen(fd, "rb")

    def _open_current(self, bucket: str, key: str) -> tuple[ObjectInfo, BinaryIO]:
        """The object's file, opened, with the info that describes exactly those bytes."""
        stream = self._open_data(bucket, key)
        st = os.fstat(stream.fileno())
        record = _read_json(self._sidecar(bucket, key))
        if _describes(record, key, st):
            return _info(bucket, key, st, record), stream
        stream.close()
        # No matching sidecar: a file dropped in by another program, or a put between its two
        # renames. Under the lock no put is in flight, so what is on disk now is consistent.
        with self._lock(bucket, key):
            return self._open_current_locked(bucket, key)

    def _current_etag_locked(self, bucket: str, key: str) -> str | None:
        try:
            info, stream = self._open_current_locked(bucket, key)
        except ObjectNotFound:
            return None
        stream.close()
        return info.etag

    def _open_current_locked(self, bucket: str, key: str) -> tuple[ObjectInfo, BinaryIO]:
        stream = self._open_data(bucket, key)
        try:
            st = os.fstat(stream.fileno())
            record = _read_json(self._sidecar(bucket, key))
            if not _describes(record, key, st):
                record = self._adopt_locked(bucket, key, stream, st, record)
        except BaseException:
            stream.close()
            raise
        return _info(bucket, key, st, record), stream

    def _adopt_locked(
        self,
        bucket: str,
        key: str,
        stream: BinaryIO,
        st: os.stat_result,
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Hash a file written by someone else and remember the result in its sidecar."""
        digest = hashlib.md5(usedforsecurity=False)
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
        stream.seek(0)
        etag = digest.hexdigest()
        if old is not None and old.get("key") == key and old.get("etag") == etag:
            # Same bytes, new inode or mtime (touch, copy, restore): keep what the writer said.
            record = _record(key, etag, st, old["content_type"], old["metadata"])
        else:
            record = _record(key, etag, st, DEFAULT_CONTENT_TYPE, {})
        after = os.fstat(stream.fileno())
        if (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            # Only remember a hash of a file that did not change while we read it.
            sidecar = self._sidecar(bucket, key)
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            temp = self._spool_json(record)
            try:
                os.replace(temp, sidecar)
            finally:
                _remove_quietly(temp)
        return record

    def _list_info(self, bucket: str, key: str, entry: os.DirEntry[str]) -> ObjectInfo | None:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        record = _read_json(self._sidecar(bucket, key))
        if not _describes(record, key, st):
            try:
                full = self.head(bucket, key)
            except ObjectNotFound:
                return None  # deleted since the folder was read
            return ObjectInfo(bucket, key, full.etag, full.size, full.last_modified)
        # Like S3's listings: no content type or user metadata (use head for those).
        return ObjectInfo(bucket, key, record["etag"], st.st_size, _mtime(st))

    def _spool(self, body: Body) -> tuple[str, str]:
        digest = hashlib.md5(usedforsecurity=False)
        fd, temp = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(body, (bytes, bytearray, memoryview)):
                    digest.update(body)
                    out.write(body)
                else:
                    while chunk := body.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                out.flush()
                # Readable by operators and other tools, like a file they would have copied in.
                os.fchmod(out.fileno(), 0o644)
                os.fsync(out.fileno())
        except BaseException:
            _remove_quietly(temp)
            raise
        return temp, digest.hexdigest()

    def _spool_json(self, record: dict[str, Any]) -> str:
        fd, temp = tempfile.mkstemp(dir=self._tmp, prefix="meta-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(record, out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            _remove_quietly(temp)
            raise
        return temp

    def _install(self, bucket_dir: Path, key: str, temp: str) -> None:
        target = bucket_dir / key
        for _ in range(10):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp, target)
                return
            except FileNotFoundError:
                continue  # a delete of a sibling pruned the empty folder between mkdir and rename
            except (FileExistsError, NotADirectoryError):
                raise InvalidKey(key, "a prefix of this key is an object (a file)") from None
            except IsADirectoryError:
                raise InvalidKey(key, "other objects are stored under this key + '/'") from None
        raise ObjectStoreError(f"could not create the folder for {key!r}")

    def _sweep_stale_temp_files(self) -> None:
        # Left behind by a crash mid-write; young ones may belong to a live writer elsewhere.
        cutoff = time.time() - _STALE_TEMP_S
        for entry in os.scandir(self._tmp):
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)


def _walk(
    directory: Path, rel: str, prefix: str, after: str
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    # (key, entry) of the files under directory in key order that match prefix and sort after after.
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    named: list[tuple[str, os.DirEntry[str], bool]] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue  # other tools' temp files (rsync, editors); no key segment starts with "."
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_file = entry.is_file(follow_symlinks=False)
            check_key(entry.name)
        except (OSError, InvalidKey):
            continue
        if is_dir:
            # Sort folders as "name/" so that "a-b" (0x2d) comes before "a/x" (0x2f), as in S3.
            named.append((f"{rel}{entry.name}/", entry, True))
        elif is_file:
            named.append((rel + entry.name, entry, False))
    named.sort(key=lambda item: item[0])
    for name, entry, is_dir in named:
        if is_dir:
            if not (name.startswith(prefix) or prefix.startswith(name)):
                continue
            if name < after and not after.startswith(name):
                continue  # every key under this folder sorts before the token
            yield from _walk(Path(entry.path), name, prefix, after)
        elif name > after and name.startswith(prefix):
            yield name, entry


def _record(
    key: str, etag: str, st: os.stat_result, content_type: str, metadata: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "key": key,
        "etag": etag,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ino": st.st_ino,
        "content_type": content_type,
        "metadata": dict(metadata),
    }


def _describes(
    record: dict[str, Any] | None, key: str, st: os.stat_result
) -> TypeGuard[dict[str, Any]]:
    # Inode, size and mtime: any rewrite by another program (in place or by rename) changes one.
    return (
        record is not None
        and record.get("key") == key
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
        and record.get("ino") == st.st_ino
    )


def _info(bucket: str, key: str, st: os.stat_result, record: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        key=key,
        etag=record["etag"],
        size=st.st_size,
        last_modified=_mtime(st),
        content_type=record["content_type"],
        metadata=dict(record["metadata"]),
    )


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _unquote(etag: str) -> str:
    return etag.strip().strip('"')


def _remove_quietly(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once its folder is; without this a crash can undo a completed put.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def _prune_empty_dirs(folder: Path, stop: Path) -> None:
    # An empty folder left behind would block a later key at its path ("a/b" after "a/b/c").
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
