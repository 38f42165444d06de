"""Which bucket names, keys and prefixes the port accepts; both adapters apply the same rules.

S3 accepts almost any key, but the local folder adapter maps keys onto file paths, so the port is
stricter than S3: code that works on one adapter must work on the other.
"""

from __future__ import annotations

import re

from shared.integration.objectstore.port import InvalidKey

MAX_KEY_BYTES = 1024  # S3's limit
MAX_SEGMENT_BYTES = 255  # NAME_MAX of common filesystems

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def check_bucket(bucket: str) -> str:
    """S3's naming rules, which also keep bucket folders apart from the adapter's dot folders."""
    if not isinstance(bucket, str) or not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidKey(str(bucket), "bucket names are 3-63 of a-z, 0-9, '.', '-'")
    return bucket


def check_key(key: str) -> str:
    """A relative, ``/``-separated path of non-empty segments.

    Rejected: empty keys, a leading ``/``, empty segments (``a//b``, ``a/``), ``.`` and ``..``,
    backslashes and control characters, segments starting with ``.`` (reserved for temporary and
    sidecar files, ours and other tools' such as rsync's), and over-long keys or segments.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(str(key), "empty key")
    if _utf8_len(key) > MAX_KEY_BYTES:
        raise InvalidKey(key, f"longer than {MAX_KEY_BYTES} bytes")
    _check_segments(key, key.split("/"))
    return key


def check_prefix(prefix: str) -> str:
    """Like a key, except that it may be empty and its last segment may be partial or empty."""
    if not isinstance(prefix, str):
        raise InvalidKey(str(prefix), "prefix must be a string")
    if prefix:
        if _utf8_len(prefix) > MAX_KEY_BYTES:
            raise InvalidKey(prefix, f"longer than {MAX_KEY_BYTES} bytes")
        _check_segments(prefix, prefix.split("/")[:-1])
        if _CONTROL.search(prefix):
            raise InvalidKey(prefix, "backslash or control character")
    return prefix


def _check_segments(name: str, segments: list[str]) -> None:
    for segment in segments:
        if not segment:
            raise InvalidKey(name, "absolute path or empty segment")
        if segment.startswith("."):
            raise InvalidKey(name, "segments must not start with '.' ('.', '..' and dot files)")
        if _CONTROL.search(segment):
            raise InvalidKey(name, "backslash or control character")
        if _utf8_len(segment) > MAX_SEGMENT_BYTES:
            raise InvalidKey(name, f"segment longer than {MAX_SEGMENT_BYTES} bytes")


def _utf8_len(name: str) -> int:
    try:
        return len(name.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates, e.g. an undecodable file name
        raise InvalidKey(name, "not valid UTF-8") from None
