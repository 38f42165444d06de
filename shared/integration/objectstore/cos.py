"""The object store on IBM Cloud Object Storage, or any S3-compatible endpoint, via ``ibm-cos-sdk``.

Conditional requests: the SDK's models have no ``IfNoneMatch``/``IfMatch`` parameter on
PutObject or DeleteObject, so the adapter passes the headers as a private call parameter that an
event hook moves into the request context (``before-parameter-build``, before validation) and
then onto the HTTP request (``before-call``, before signing). The condition rides with its own
call, so it is thread-safe without thread-locals or context variables, and a hook can never
apply one call's condition to another's request.
"""

from __future__ import annotations

import contextlib
import email.utils
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

import ibm_boto3
from ibm_botocore.client import Config
from ibm_botocore.exceptions import ClientError

from shared.integration.objectstore.keys import check_bucket, check_key, check_prefix
from shared.integration.objectstore.port import (
    Body,
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
_HEADERS_PARAM = "RetailfnConditionalHeaders"
_CONTEXT_KEY = "retailfn_conditional_headers"
# Non-seekable bodies are spooled so that the SDK can sign, length and retry them; this much stays
# in memory, the rest goes to a temporary file.
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_CHUNK = 1024 * 1024


class CosStore(ObjectStore):
    """IBM COS (IAM API key or HMAC keys) or any S3-compatible server."""

    def __init__(
        self,
        endpoint: str,
        region: str = "us-south",
        *,
        ibm_api_key_id: str | None = None,
        ibm_service_instance_id: str | None = None,
        ibm_auth_endpoint: str = "https://iam.cloud.ibm.com/identity/token",
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        max_pool_connections: int = 50,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        common: dict[str, Any] = {
            "max_pool_connections": max_pool_connections,
            "connect_timeout": connect_timeout_s,
            "read_timeout": read_timeout_s,
            "retries": {"max_attempts": 5, "mode": "standard"},
        }
        if ibm_api_key_id is not None:
            credentials: dict[str, Any] = {
                "ibm_api_key_id": ibm_api_key_id,
                "ibm_service_instance_id": ibm_service_instance_id,
                "ibm_auth_endpoint": ibm_auth_endpoint,
            }
            config = Config(signature_version="oauth", **common)
        elif aws_access_key_id is not None and aws_secret_access_key is not None:
            credentials = {
                "aws_access_key_id": aws_access_key_id,
                "aws_secret_access_key": aws_secret_access_key,
            }
            config = Config(signature_version="s3v4", **common)
        else:
            raise ValueError("CosStore needs ibm_api_key_id (IAM) or both HMAC keys")
        self.endpoint = endpoint
        # An own session: the SDK's default one is shared module state and not thread-safe to build.
        session = ibm_boto3.session.Session()
        self._client = session.client(
            "s3", endpoint_url=endpoint, region_name=region, config=config, **credentials
        )
        events = self._client.meta.events
        for operation in ("PutObject", "DeleteObject"):
            events.register(f"before-parameter-build.s3.{operation}", _take_conditional_headers)
            events.register(f"before-call.s3.{operation}", _add_conditional_headers)

    # Buckets

    def create_bucket(self, bucket: str) -> bool:
        check_bucket(bucket)
        # Checked first because us-east-1 style servers answer 200 to re-creating your own bucket.
        if self.bucket_exists(bucket):
            return False
        try:
            self._client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                return False
            raise _translate(exc, bucket) from exc
        return True

    def bucket_exists(self, bucket: str) -> bool:
        check_bucket(bucket)
        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return False
            raise _translate(exc, bucket) from exc
        return True

    # Reads

    def head(self, bucket: str, key: str) -> ObjectInfo:
        check_bucket(bucket)
        check_key(key)
        try:
            response = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404 and not self.bucket_exists(bucket):
                raise NoSuchBucket(bucket) from exc  # a HEAD's 404 has no body to say which
            raise _translate(exc, bucket, key) from exc
        return _info(bucket, key, response)

    def get(self, bucket: str, key: str) -> StoredObject:
        with self.open(bucket, key) as (info, stream):
            return StoredObject(info, stream.read())

    @contextlib.contextmanager
    def open(self, bucket: str, key: str) -> Iterator[tuple[ObjectInfo, BinaryIO]]:
        check_bucket(bucket)
        check_key(key)
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            raise _translate(exc, bucket, key) from exc
        body = response["Body"]
        try:
            yield _info(bucket, key, response), body
        finally:
            body.close()

    def list_page(
        self, bucket: str, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ListPage:
        check_bucket(bucket)
        check_prefix(prefix)
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(1, limit)}
        if token:
            params["ContinuationToken"] = token
        try:
            response = self._client.list_objects_v2(**params)
        except ClientError as exc:
            raise _translate(exc, bucket) from exc
        items = [
            ObjectInfo(
                bucket=bucket,
                key=item["Key"],
                etag=_unquote(item["ETag"]),
                size=item["Size"],
                last_modified=item["LastModified"],
            )
            for item in response.get("Contents", [])
        ]
        more = response.get("IsTruncated") and response.get("NextContinuationToken")
        return ListPage(items, response["NextContinuationToken"] if more else None)

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
        check_bucket(bucket)
        check_key(key)
        headers: dict[str, str] = {}
        if if_none_match:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = f'"{_unquote(if_match)}"'
        user_metadata = {str(k).lower(): str(v) for k, v in (metadata or {}).items()}
        with _seekable(body) as (payload, size):
            params: dict[str, Any] = {
                "Bucket": bucket,
                "Key": key,
                "Body": payload,
                "ContentType": content_type,
                "Metadata": user_metadata,
            }
            if headers:
                params[_HEADERS_PARAM] = headers
            try:
                response = self._client.put_object(**params)
            except ClientError as exc:
                raise _translate(exc, bucket, key, _describe(headers)) from exc
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=_unquote(response["ETag"]),
            size=size,
            # PutObject returns no Last-Modified; the server's Date is that clock, to the second.
            last_modified=_server_date(response),
            content_type=content_type,
            metadata=user_metadata,
        )

    def delete(self, bucket: str, key: str, *, if_match: str | None = None) -> None:
        check_bucket(bucket)
        check_key(key)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if if_match is not None:
            etag = _unquote(if_match)
            # Best effort for servers that ignore If-Match on DELETE: compare first, then send the
            # header anyway so that servers that honour it (AWS S3, moto) close the race for real.
            try:
                current = self.head(bucket, key).etag
            except ObjectNotFound:
                current = None
            if current != etag:
                raise PreconditionFailed(bucket, key, f"If-Match: {etag}")
            params[_HEADERS_PARAM] = {"If-Match": f'"{etag}"'}
        try:
            self._client.delete_object(**params)
        except ClientError as exc:
            raise _translate(exc, bucket, key, _describe(params.get(_HEADERS_PARAM, {}))) from exc

    def close(self) -> None:
        self._client.close()


def _take_conditional_headers(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # Runs before the SDK validates parameters, which would reject the unknown one.
    headers = params.pop(_HEADERS_PARAM, None)
    if headers:
        context[_CONTEXT_KEY] = headers


def _add_conditional_headers(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    headers = context.get(_CONTEXT_KEY)
    if headers:
        params["headers"].update(headers)


@contextlib.contextmanager
def _seekable(body: Body) -> Iterator[tuple[Any, int]]:
    """The body as the SDK needs it (bytes, or a seekable file it can length, sign and rewind)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        yield data, len(data)
        return
    if _is_seekable(body):
        start = body.tell()
        end = body.seek(0, 2)
        body.seek(start)
        yield body, end - start
        return
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        size = 0
        while chunk := body.read(_CHUNK):
            spool.write(chunk)
            size += len(chunk)
        spool.seek(0)
        yield spool, size


def _is_seekable(body: Any) -> bool:
    try:
        return bool(body.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _info(bucket: str, key: str, response: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        key=key,
        etag=_unquote(response["ETag"]),
        size=response["ContentLength"],
        last_modified=response["LastModified"],
        content_type=response.get("ContentType") or DEFAULT_CONTENT_TYPE,
        metadata=dict(response.get("Metadata") or {}),
    )


def _server_date(response: Mapping[str, Any]) -> datetime:
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        with contextlib.suppress(TypeError, ValueError):
            return email.utils.parsedate_to_datetime(date)
    return datetime.now(UTC)


def _unquote(etag: str) -> str:
    return etag.strip().strip('"')


def _describe(headers: Mapping[str, str]) -> str:
    # The same wording as the local adapter's: "If-Match: <etag>" without the wire quotes.
    return ", ".join(f"{name}: {_unquote(value)}" for name, value in headers.items()) or "none"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    status: int | None = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status


def _translate(
    exc: ClientError, bucket: str, key: str | None = None, condition: str = "none"
) -> ObjectStoreError:
    code, status = _code(exc), _status(exc)
    if code == "NoSuchBucket":
        return NoSuchBucket(bucket)
    if key is not None:
        if code in {"PreconditionFailed", "ConditionalRequestConflict"} or status == 412:
            # 409: a concurrent conditional write to the same key was in progress; it lost too.
            return PreconditionFailed(bucket, key, condition)
        if code in {"NoSuchKey", "404", "NotFound"} or status == 404:
            if condition != "none":
                # If-Match on a key that is gone: the caller's version no longer exists.
                return PreconditionFailed(bucket, key, condition)
            return ObjectNotFound(bucket, key)
    return ObjectStoreError(f"{exc} (bucket {bucket!r}, key {key!r})")
