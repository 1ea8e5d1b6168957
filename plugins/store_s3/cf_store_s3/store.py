"""A ``MediaStore`` on an S3-compatible bucket (AWS S3, MinIO, Ceph RGW) with Object Lock.

What the store guarantees, and how:

- ``put`` never overwrites: a HEAD first, then ``If-None-Match: *`` on PutObject and on
  CompleteMultipartUpload where the server supports it. Versioning (required) keeps an older
  version even if a server ignores the condition.
- ``put`` is all or nothing: a single PutObject is atomic on S3; a multipart upload is aborted on
  any failure, and an object whose lock could not be set after completion is deleted again. A
  retried request whose first attempt did land is recognised by a per-put token in the object's
  metadata, so a lost response does not turn into a false "exists already".
- Object Lock per object: retain-until (rounded up to whole seconds) in the configured mode, set
  at upload and, for multipart uploads, checked and set again after completion (some servers
  ignore the lock given at create). Retention is only ever extended; this store refuses to
  shorten it even where the server would allow it. Lock state is read with HEAD.
- ``delete`` removes every version and delete marker of the key, so the data is really gone; the
  server refuses locked versions and the store raises ``PermissionError``.
- At start the bucket must have versioning and Object Lock enabled, else ``StoreMisconfigured``.
  An unreachable endpoint does not stop start-up: the check runs again before the first use.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.exceptions as bex
from botocore.config import Config as BotoConfig

from hookspecs.types import ObjectInfo, StoreMisconfigured, StoreUnavailable

from .options import S3Options

log = logging.getLogger("cf_store_s3")

#: Metadata key (``x-amz-meta-cf-put-id``) carrying a random token per ``put`` call.
PUT_ID_META = "cf-put-id"

_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
               "AuthorizationHeaderMalformed", "InvalidClientTokenId"}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
#: Errors while a response body streams in; botocore does not retry these itself.
_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    bex.IncompleteReadError, bex.ReadTimeoutError, bex.ResponseStreamingError, bex.ConnectionClosedError,
)
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError, bex.ConnectionClosedError,
    bex.HTTPClientError,
)


def _code(exc: bex.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: bex.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def ceil_seconds(at: datetime) -> datetime:
    """S3 keeps retain-until at second precision; round up so a lock never ends early."""
    at = at.astimezone(UTC)
    return at if at.microsecond == 0 else at.replace(microsecond=0) + timedelta(seconds=1)


def _as_chunks(data: Iterable[bytes]) -> Iterator[bytes]:
    for piece in data:
        if piece:
            yield bytes(piece)


class S3Store:
    """One bucket (and optional key prefix) as a ``MediaStore``."""

    #: Retention locks and legal holds are real here (``cf store check`` verifies them).
    object_lock = True

    def __init__(self, name: str, options: S3Options, *, clock: Callable[[], datetime],
                 client: Any = None) -> None:
        self.name = name
        self.options = options
        self._clock = clock
        self._client = client or self._make_client(options)
        self._verified = False
        self._verify_lock = threading.Lock()
        self._conditional = options.conditional_put != "never"

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _make_client(o: S3Options) -> Any:
        # botocore logs whole requests at DEBUG, including the Authorization header with the access
        # key id: keep its loggers at INFO or above even under ``cf -vv``.
        for name in ("botocore", "boto3", "s3transfer"):
            logger = logging.getLogger(name)
            if logger.level < logging.INFO:
                logger.setLevel(logging.INFO)
        session = boto3.session.Session(
            aws_access_key_id=o.access_key, aws_secret_access_key=o.secret_key,
            aws_session_token=o.session_token, region_name=o.region)
        cfg = BotoConfig(
            connect_timeout=o.connect_timeout, read_timeout=o.read_timeout,
            retries={"total_max_attempts": o.retries + 1, "mode": "standard"},
            s3={"addressing_style": o.addressing_style}, signature_version="s3v4",
            max_pool_connections=o.max_pool_connections)
        return session.client("s3", endpoint_url=o.endpoint_url, config=cfg,
                              verify=o.ca_bundle if o.ca_bundle else None)

    def __repr__(self) -> str:
        where = self.options.endpoint_url or f"aws:{self.options.region}"
        return f"S3Store(name={self.name!r}, bucket={self.options.bucket!r}, prefix={self.options.prefix!r}, endpoint={where!r})"

    @property
    def _where(self) -> str:
        return f"S3 store '{self.name}' (bucket {self.options.bucket} at {self.options.endpoint_url or 'AWS ' + self.options.region})"

    def start(self) -> S3Store:
        """Check the bucket now; an unreachable endpoint is checked again at first use."""
        try:
            self.verify_bucket()
        except StoreUnavailable as exc:
            log.warning("%s; the bucket is checked again before first use", exc)
        return self

    def verify_bucket(self) -> None:
        """Refuse a bucket without versioning or Object Lock (``StoreMisconfigured``)."""
        bucket = self.options.bucket
        try:
            versioning = self._call("get_bucket_versioning", Bucket=bucket)
        except StoreMisconfigured:
            raise
        except bex.ClientError as exc:
            if _code(exc) == "NoSuchBucket":
                raise StoreMisconfigured(
                    f"{self._where}: the bucket does not exist; create it with Object Lock enabled "
                    f"(aws s3api create-bucket --bucket {bucket} --object-lock-enabled-for-bucket)") from None
            raise self._unavailable("checking the bucket", exc) from None
        if versioning.get("Status") != "Enabled":
            raise StoreMisconfigured(
                f"{self._where}: versioning is not enabled; CallFort needs a bucket with versioning "
                "and Object Lock (create it with --object-lock-enabled-for-bucket)")
        try:
            lock = self._call("get_object_lock_configuration", Bucket=bucket)
        except bex.ClientError as exc:
            if _code(exc) in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound",
                              "InvalidRequest", "NotImplemented"):
                raise StoreMisconfigured(
                    f"{self._where}: Object Lock is not enabled; recordings could be altered or deleted "
                    "before their time. Use a bucket created with --object-lock-enabled-for-bucket "
                    "(or enable it: aws s3api put-object-lock-configuration)") from None
            raise self._unavailable("checking the bucket", exc) from None
        if lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise StoreMisconfigured(f"{self._where}: Object Lock is not enabled on the bucket "
                                     "(aws s3api put-object-lock-configuration)")
        self._verified = True

    def _ready(self) -> None:
        if not self._verified:
            with self._verify_lock:
                if not self._verified:
                    self.verify_bucket()

    # ------------------------------------------------------------------ error mapping
    def _unavailable(self, doing: str, exc: BaseException) -> StoreUnavailable:
        if isinstance(exc, bex.ClientError):
            what = f"{_code(exc) or _status(exc)} ({_status(exc)})"
        else:
            what = type(exc).__name__
        return StoreUnavailable(f"{self._where}: {doing} failed after retries: {what}")

    def _call(self, op: str, **kwargs: Any) -> Any:
        """Call the client; network failures become ``StoreUnavailable``, credential errors
        ``StoreMisconfigured``; other ``ClientError``s are left to the caller."""
        try:
            return getattr(self._client, op)(**kwargs)
        except bex.ClientError as exc:
            if _code(exc) in _AUTH_CODES:
                raise StoreMisconfigured(f"{self._where}: the server refused the credentials ({_code(exc)}); "
                                         "check access_key/secret_key") from None
            if _status(exc) >= 500 and _code(exc) != "NotImplemented":
                raise self._unavailable(op, exc) from None
            raise
        except _NETWORK_ERRORS as exc:
            raise self._unavailable(op, exc) from None
        except bex.NoCredentialsError:
            raise StoreMisconfigured(f"{self._where}: no credentials; set access_key/secret_key "
                                     "or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment") from None

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid object key {key!r}")
        return self.options.prefix + key

    def _head(self, full: str, version: str | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"Bucket": self.options.bucket, "Key": full}
        if version:
            kwargs["VersionId"] = version
        try:
            return dict(self._call("head_object", **kwargs))
        except bex.ClientError as exc:
            if _code(exc) in _NOT_FOUND or _status(exc) == 404:
                return None
            raise self._unavailable("HEAD", exc) from None

    # ------------------------------------------------------------------ MediaStore
    def put(self, key: str, chunks: Iterable[bytes] | bytes, *, retain_until: datetime | None = None) -> int:
        self._ready()
        full = self._key(key)
        if self._head(full) is not None:
            raise FileExistsError(f"{self._where}: {key} exists already (objects are never overwritten)")
        until = ceil_seconds(retain_until) if retain_until is not None else None
        if until is not None and until <= self._clock():
            until = None  # nothing left to protect; S3 refuses a retain-until in the past
        token = secrets.token_hex(16)
        threshold, size = self.options.multipart_threshold, self.options.multipart_chunk
        if isinstance(chunks, bytes | bytearray | memoryview):
            data = bytes(chunks)
            if len(data) <= threshold:
                return self._put_single(key, full, data, until, token)
            return self._put_multipart(key, full, (data[i:i + size] for i in range(0, len(data), size)), until, token)
        stream = _as_chunks(chunks)
        head = bytearray()
        for piece in stream:
            head += piece
            if len(head) > threshold:
                return self._put_multipart(key, full, self._parts(head, stream), until, token)
        return self._put_single(key, full, bytes(head), until, token)

    def _lock_args(self, until: datetime | None) -> dict[str, Any]:
        if until is None:
            return {}
        return {"ObjectLockMode": self.options.lock_mode, "ObjectLockRetainUntilDate": until}

    def _conditional_call(self, op: str, **kwargs: Any) -> Any:
        """Send ``If-None-Match: *``; with ``conditional_put = auto`` drop it for good if the server
        says it does not implement it (HEAD before the put and versioning still protect)."""
        if self._conditional:
            try:
                return self._call(op, IfNoneMatch="*", **kwargs)
            except bex.ClientError as exc:
                if not (self.options.conditional_put == "auto" and (_code(exc) == "NotImplemented" or _status(exc) == 501)):
                    raise
                log.warning("%s does not support If-None-Match on writes; relying on HEAD and versioning", self._where)
                self._conditional = False
        return self._call(op, **kwargs)

    def _exists_after_conflict(self, key: str, full: str, token: str) -> None:
        """A 412 on a write: our own earlier attempt landed (lost response, retried) or another
        writer was first. Only the first is a success."""
        head = self._head(full)
        if head is not None and head.get("Metadata", {}).get(PUT_ID_META) == token:
            return
        raise FileExistsError(f"{self._where}: {key} exists already (objects are never overwritten)")

    def _put_single(self, key: str, full: str, data: bytes, until: datetime | None, token: str) -> int:
        try:
            self._conditional_call("put_object", Bucket=self.options.bucket, Key=full, Body=data,
                                   Metadata={PUT_ID_META: token}, **self._lock_args(until))
        except bex.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict") or _status(exc) == 412:
                self._exists_after_conflict(key, full, token)
                return len(data)
            raise self._unavailable("PUT", exc) from None
        return len(data)

    def _parts(self, head: bytearray, rest: Iterator[bytes]) -> Iterator[bytes]:
        size = self.options.multipart_chunk
        buf = head
        for piece in rest:
            buf += piece
            while len(buf) >= size:
                yield bytes(buf[:size])
                del buf[:size]
        while len(buf) > size:
            yield bytes(buf[:size])
            del buf[:size]
        if buf:
            yield bytes(buf)

    def _put_multipart(self, key: str, full: str, parts_in: Iterator[bytes],
                       until: datetime | None, token: str) -> int:
        bucket = self.options.bucket
        try:
            upload = self._call("create_multipart_upload", Bucket=bucket, Key=full, ChecksumAlgorithm="CRC32",
                                Metadata={PUT_ID_META: token}, **self._lock_args(until))
        except bex.ClientError as exc:
            raise self._unavailable("starting a multipart upload", exc) from None
        upload_id = upload["UploadId"]
        total = 0
        try:
            parts = []
            for number, body in enumerate(parts_in, start=1):
                answer = self._call("upload_part", Bucket=bucket, Key=full, UploadId=upload_id,
                                    PartNumber=number, Body=body, ChecksumAlgorithm="CRC32")
                part = {"PartNumber": number, "ETag": answer["ETag"]}
                if answer.get("ChecksumCRC32"):
                    part["ChecksumCRC32"] = answer["ChecksumCRC32"]
                parts.append(part)
                total += len(body)
            try:
                done = self._conditional_call("complete_multipart_upload", Bucket=bucket, Key=full,
                                              UploadId=upload_id, MultipartUpload={"Parts": parts})
                version = done.get("VersionId")
            except bex.ClientError as exc:
                # 412: our own completion landed and its answer was lost, or someone else was first;
                # NoSuchUpload: a retried completion of an upload that did complete.
                if (_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchUpload")
                        or _status(exc) == 412):
                    self._exists_after_conflict(key, full, token)
                    version = None
                else:
                    raise
        except BaseException as exc:
            self._abort(full, upload_id)
            if isinstance(exc, bex.ClientError):
                raise self._unavailable("multipart upload", exc) from None
            raise
        if until is not None:
            self._ensure_lock_after_complete(key, full, version, until)
        return total

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.options.bucket, Key=full, UploadId=upload_id)
        except Exception as exc:  # the parts stay invisible; a lifecycle rule removes them
            log.warning("%s: could not abort multipart upload of %s: %s (add a lifecycle rule "
                        "AbortIncompleteMultipartUpload)", self._where, full, type(exc).__name__)

    def _ensure_lock_after_complete(self, key: str, full: str, version: str | None, until: datetime) -> None:
        """Some servers ignore the lock given at CreateMultipartUpload: check it and set it. If that
        fails the unlocked object is removed again, so nothing unprotected stays behind."""
        try:
            head = self._head(full, version)
            if head is None:
                raise StoreUnavailable(f"{self._where}: {key} vanished right after its upload")
            version = version or head.get("VersionId")
            current = head.get("ObjectLockRetainUntilDate")
            if current is None or current.astimezone(UTC) < until:
                self._call("put_object_retention", Bucket=self.options.bucket, Key=full,
                           VersionId=version, Retention={"Mode": self.options.lock_mode, "RetainUntilDate": until})
        except (StoreUnavailable, StoreMisconfigured, bex.ClientError) as exc:
            log.error("%s: could not lock %s after upload; removing it again", self._where, key)
            try:
                self._call("delete_object", Bucket=self.options.bucket, Key=full, VersionId=version)
            except Exception:
                log.exception("%s: could not remove unlocked %s", self._where, key)
            if isinstance(exc, bex.ClientError):
                raise self._unavailable("setting the retention lock", exc) from None
            raise

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        self._ready()
        full = self._key(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad range [{start}, {end})")
        if end is not None and end == start:
            if not self.exists(key):
                raise KeyError(key)
            return b""
        kwargs: dict[str, Any] = {"Bucket": self.options.bucket, "Key": full}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        last: BaseException | None = None
        for _attempt in range(self.options.retries + 1):
            try:
                answer = self._call("get_object", **kwargs)
            except bex.ClientError as exc:
                if _code(exc) in _NOT_FOUND or _status(exc) == 404:
                    raise KeyError(key) from None
                if _code(exc) == "InvalidRange" or _status(exc) == 416:
                    return b""  # start at or beyond the end
                raise self._unavailable("GET", exc) from None
            try:
                data: bytes = answer["Body"].read()
            except _STREAM_ERRORS as exc:
                last = exc
                continue
            finally:
                answer["Body"].close()
            if len(data) == answer.get("ContentLength", len(data)):
                return data
            last = bex.IncompleteReadError(actual_bytes=len(data), expected_bytes=answer.get("ContentLength"))
        raise self._unavailable("GET", last or RuntimeError("no answer"))

    def _versions(self, full: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        versions: list[dict[str, Any]] = []
        markers: list[dict[str, Any]] = []
        pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self.options.bucket, Prefix=full)
        try:
            for page in pages:
                versions += [v for v in page.get("Versions", []) if v["Key"] == full]
                markers += [m for m in page.get("DeleteMarkers", []) if m["Key"] == full]
        except bex.ClientError as exc:
            if _code(exc) in _AUTH_CODES:
                raise StoreMisconfigured(f"{self._where}: the server refused the credentials") from None
            raise self._unavailable("listing versions", exc) from None
        except _NETWORK_ERRORS as exc:
            raise self._unavailable("listing versions", exc) from None
        return versions, markers

    def delete(self, key: str) -> None:
        """Delete every version of the key. Versions under a retention lock or legal hold are
        refused by the server: ``PermissionError`` (unlocked versions are gone by then)."""
        self._ready()
        full = self._key(key)
        versions, markers = self._versions(full)
        refused: list[str] = []
        for entry in versions + markers:
            try:
                self._call("delete_object", Bucket=self.options.bucket, Key=full, VersionId=entry["VersionId"])
            except bex.ClientError as exc:
                if _code(exc) == "AccessDenied" or _status(exc) == 403:
                    refused.append(entry["VersionId"])
                elif not (_code(exc) in _NOT_FOUND or _status(exc) == 404):
                    raise self._unavailable("DELETE", exc) from None
        if refused:
            raise PermissionError(f"{self._where}: the server refused to delete {key}: it is under an "
                                  "Object Lock retention or legal hold")
        if not versions:
            raise KeyError(key)

    def exists(self, key: str) -> bool:
        self._ready()
        return self._head(self._key(key)) is not None

    def stat(self, key: str) -> ObjectInfo:
        self._ready()
        head = self._head(self._key(key))
        if head is None:
            raise KeyError(key)
        return self._info(key, head)

    @staticmethod
    def _info(key: str, head: dict[str, Any]) -> ObjectInfo:
        until = head.get("ObjectLockRetainUntilDate")
        return ObjectInfo(key=key, size=int(head.get("ContentLength", 0)),
                          retain_until=until.astimezone(UTC) if until else None,
                          legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON")

    def lock_until(self, key: str, until: datetime | None = None, *, legal_hold: bool | None = None) -> None:
        """Extend the retention (``PermissionError`` if ``until`` is earlier than the current
        retain-until: a lock is never shortened) and/or set or release the legal hold."""
        self._ready()
        full = self._key(key)
        head = self._head(full)
        if head is None:
            raise KeyError(key)
        version = head.get("VersionId")
        bucket = self.options.bucket
        if until is not None:
            wanted = ceil_seconds(until)
            current = head.get("ObjectLockRetainUntilDate")
            current = current.astimezone(UTC) if current else None
            if current is not None and wanted < current:
                raise PermissionError(f"{self._where}: the retention of {key} can only be extended "
                                      f"(locked until {current.isoformat()}, asked {wanted.isoformat()})")
            if (current is None or wanted > current) and wanted > self._clock():
                # A compliance lock stays compliance even where governance is configured now.
                mode = "COMPLIANCE" if head.get("ObjectLockMode") == "COMPLIANCE" else self.options.lock_mode
                try:
                    self._call("put_object_retention", Bucket=bucket, Key=full, VersionId=version,
                               Retention={"Mode": mode, "RetainUntilDate": wanted})
                except bex.ClientError as exc:
                    if _code(exc) == "AccessDenied" or _status(exc) == 403:
                        raise PermissionError(f"{self._where}: the server refused the retention of {key}") from None
                    raise self._unavailable("setting the retention", exc) from None
        if legal_hold is not None and legal_hold != (head.get("ObjectLockLegalHoldStatus") == "ON"):
            try:
                self._call("put_object_legal_hold", Bucket=bucket, Key=full, VersionId=version,
                           LegalHold={"Status": "ON" if legal_hold else "OFF"})
            except bex.ClientError as exc:
                if _code(exc) == "AccessDenied" or _status(exc) == 403:
                    raise PermissionError(f"{self._where}: the server refused the legal hold on {key}") from None
                raise self._unavailable("setting the legal hold", exc) from None

    def keys(self, prefix: str = "") -> Iterator[str]:
        self._ready()
        strip = len(self.options.prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.options.bucket, Prefix=self.options.prefix + prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]
        except bex.ClientError as exc:
            raise self._unavailable("listing keys", exc) from None
        except _NETWORK_ERRORS as exc:
            raise self._unavailable("listing keys", exc) from None
