"""The S3 adapter of the object-store port, on the ``minio`` client.

What each server gives, and what this adapter does about it (measured against rclone 1.75 ``serve s3`` and
moto 5.2; detected, never assumed: object lock when connecting, conditional writes at the first write):

- **Create-only writes.** Where a ``PUT`` with ``If-None-Match: *`` over an existing object is refused with 412
  (moto here; AWS and MinIO document it) that is what makes a write create-only. Where the header is ignored
  (rclone overwrites), the adapter checks with a ``HEAD`` first, and so does ``put_stream``'s final server-side
  copy everywhere (no server here honours the header on a copy). The window between check and write is harmless
  for content-addressed originals (a racing writer stores the same bytes); other keys (ledger segments) have one
  writer by design.
- **Metadata.** Caller metadata travels as ``x-amz-meta-*`` headers, values percent-encoded so that any text
  (Vietnamese names) is ASCII-safe; the content SHA-256 is recorded as ``x-amz-meta-lienthong-sha256``. rclone
  keeps user metadata in memory only (lost on restart), so with ``metadata_sidecars=True`` the same facts are
  also written as a JSON sidecar under ``.lienthong/meta/<key>.json``: before the object where writes are
  checked first (an object is never visible without them), after it where the server refuses a second write (a
  refused write never replaces them).
- **Object lock.** When the bucket reports ``ObjectLockEnabled`` (moto here; MinIO, AWS), every object is
  written with COMPLIANCE retention for ``retention_days``. rclone answers the object-lock query with a bucket
  listing, so the raw answer is parsed: ``minio``'s ``get_object_lock_config`` "succeeds" on rclone too.
- **Streams.** ``put_stream`` uploads to a temporary key under ``.lienthong/incoming/`` (multipart, bounded
  memory, hashing as it reads), then copies server-side to the final key with the SHA-256 in its metadata, then
  deletes the temporary object. The final key only ever holds complete objects; a failed upload aborts its
  multipart upload and removes the temporary object if the server still answers, and ``cleanup_incoming``
  removes what a crash left behind.

minio's public ``put_object`` and ``copy_object`` cannot send ``If-None-Match`` or ``Content-MD5`` (it turns such
headers into user metadata), so those requests go through minio's request layer (``_put_object``,
``_execute``); the tests against both servers pin that use.

Every ``minio``/``urllib3`` exception is translated here, once: connection failures, timeouts and 5xx become
``StoreUnavailable``; missing keys ``ObjectNotFound``; a refused conditional write ``ObjectExists``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Final, cast
from urllib.parse import quote, unquote
from xml.etree import ElementTree as ET

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import DictType

from storage.objectstore import (
    ORIGINALS_PREFIX,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StoreUnavailable,
    original_key,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PART_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REGION",
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_RETRIES",
    "INCOMING_PREFIX",
    "RESERVED_PREFIX",
    "S3ObjectStore",
    "decode_metadata_value",
    "encode_metadata_value",
]

# Ten years: longer than any dispute over the delivery of a transmitted document is likely to need; records kept
# longer belong in the agencies' own archives, not in the hub. COMPLIANCE retention cannot be shortened later.
DEFAULT_RETENTION_DAYS: Final = 3650
# S3's minimum part is 5 MiB; 8 MiB keeps a stream's memory at a few parts while 100 MB take 13 requests.
DEFAULT_PART_SIZE: Final = 8 * 1024 * 1024
# Servers are on loopback or a LAN: one that does not accept a connection within 2 s is down.
DEFAULT_CONNECT_TIMEOUT: Final = 2.0
# A server-side copy of a large object answers only when it is done; a silent server is down after this.
DEFAULT_READ_TIMEOUT: Final = 60.0
# Retries of requests that never reached the server (and of reads); with 0.2 s backoff a stopped server is
# reported within about a second instead of hanging.
DEFAULT_RETRIES: Final = 2
# rclone and moto accept any region; fixing it saves minio's bucket-location lookup on every new client.
DEFAULT_REGION: Final = "us-east-1"

RESERVED_PREFIX: Final = ".lienthong/"
INCOMING_PREFIX: Final = f"{RESERVED_PREFIX}incoming/"
_META_PREFIX: Final = f"{RESERVED_PREFIX}meta/"
_PROBE_KEY: Final = f"{RESERVED_PREFIX}probe/conditional-write"

_META_HEADER: Final = "x-amz-meta-"
_SHA256_FIELD: Final = "lienthong-sha256"
# Keys the adapter or a server adds on its own (rclone adds ``mtime`` on copies); never caller metadata.
_SERVER_FIELDS: Final = frozenset({"mtime"})
# Lowercase because S3 lowercases header names; no ``_`` because WSGI servers (moto) turn it into ``-``.
_FIELD_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_MAX_METADATA_BYTES: Final = 2048  # S3's limit on the user metadata of one object (names and values)
_MAX_COPY_BYTES: Final = 5 * 1024**3  # S3's limit on a single server-side copy
# Readable punctuation kept as is; everything else (spaces, "%", non-ASCII) is percent-encoded as UTF-8.
_SAFE_PUNCTUATION: Final = ":/@,;="
_EMPTY_MD5: Final = base64.b64encode(hashlib.md5(b"").digest()).decode()  # noqa: S324 - S3's header, not security
_S3_NS: Final = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_UNAVAILABLE_CODES: Final = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})
_NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "NoSuchVersion"})


def encode_metadata_value(text: str) -> str:
    """``text`` made safe for an HTTP header: UTF-8, percent-encoded except letters, digits and ``-_.~:/@,;=``."""
    return quote(text, safe=_SAFE_PUNCTUATION)


def decode_metadata_value(value: str) -> str:
    """The text ``encode_metadata_value`` encoded."""
    return unquote(value, errors="strict")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class S3ObjectStore:
    """An ``ObjectStore`` on one S3 bucket.

    Build it with ``connect`` (endpoint and credentials; creates the bucket) or around an existing ``Minio`` client.
    ``retention_days`` applies where the bucket has object lock (``None``: write without retention);
    ``metadata_sidecars`` must be on for servers that forget user metadata (``rclone serve s3``); ``clock`` gives
    the time retention is counted from. Thread-safe: share one store between threads.
    """

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        part_size: int = DEFAULT_PART_SIZE,
        metadata_sidecars: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days must be at least 1, or None for no retention")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum)")
        self.client = client
        self.bucket = bucket
        self.retention_days = retention_days
        self.part_size = part_size
        self.metadata_sidecars = metadata_sidecars
        self._clock = clock
        self._object_lock: bool | None = None
        self._conditional_write: bool | None = None
        self._capabilities_lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = DEFAULT_REGION,
        create_bucket: bool = True,
        object_lock: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        max_connections: int = 16,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        part_size: int = DEFAULT_PART_SIZE,
        metadata_sidecars: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> S3ObjectStore:
        """A store on ``bucket`` at ``endpoint`` (``host:port``), creating the bucket if missing.

        ``object_lock`` asks for object lock when the bucket is created (it cannot be added later on most
        servers). The server's capabilities are probed here, so a wrong endpoint or credentials fail at once.
        """
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=max_connections,
            retries=urllib3.Retry(
                total=retries,
                connect=retries,
                read=retries,
                status=retries,
                backoff_factor=0.2,
                backoff_max=1.0,
                status_forcelist=(500, 502, 503, 504),
                # A PUT or POST whose request reached the server is not repeated: a repeat of a conditional
                # write would be refused by the first one and reported as "exists".
                allowed_methods=frozenset({"GET", "HEAD", "DELETE"}),
                raise_on_status=False,  # let minio parse the server's error so the message says what failed
                respect_retry_after_header=False,  # a server asking for minutes must not stall the hub
            ),
        )
        client = Minio(endpoint, access_key, secret_key, secure=secure, region=region, http_client=http)
        store = cls(
            client,
            bucket,
            retention_days=retention_days,
            part_size=part_size,
            metadata_sidecars=metadata_sidecars,
            clock=clock,
        )
        if create_bucket:
            store._create_bucket(object_lock=object_lock)
        # A read-only request, so that a wrong endpoint, bucket or credentials fail here, and read-only users
        # (``lienthong audit``) can connect; the conditional-write probe writes, so it waits for the first write.
        _ = store.supports_object_lock
        return store

    # --- capabilities ---------------------------------------------------------------------------------------

    @property
    def supports_object_lock(self) -> bool:
        """Whether the bucket enforces COMPLIANCE retention (asked of the server once, then remembered)."""
        with self._capabilities_lock:
            if self._object_lock is None:
                self._object_lock = self._probe_object_lock()
            return self._object_lock

    @property
    def supports_conditional_write(self) -> bool:
        """Whether the server refuses ``If-None-Match: *`` writes over an existing object (probed by writing)."""
        with self._capabilities_lock:
            if self._conditional_write is None:
                self._conditional_write = self._probe_conditional_write()
            return self._conditional_write

    def _probe_object_lock(self) -> bool:
        with _translated(self.bucket):
            try:
                response = self.client._execute("GET", self.bucket, query_params={"object-lock": ""})  # noqa: SLF001 - see below
            except (S3Error, InvalidResponseError) as exc:
                if _error_details(exc)[1] < 500:  # noqa: PLR2004
                    return False  # ObjectLockConfigurationNotFoundError, NotImplemented, ...
                raise
        # minio's get_object_lock_config cannot tell rclone's bucket listing from a lock configuration without a
        # default rule: both parse to "no mode". The raw answer can.
        try:
            root = ET.fromstring(response.data)  # noqa: S314 - our configured server's answer, a few hundred bytes
        except ET.ParseError:
            return False
        return root.tag == f"{_S3_NS}ObjectLockConfiguration" and (
            (root.findtext(f"{_S3_NS}ObjectLockEnabled") or "").strip() == "Enabled"
        )

    def _probe_conditional_write(self) -> bool:
        # The probe key is fixed so that probing leaves at most one small object behind; a first write refused
        # with 412 already proves support, otherwise a second write over the first must be refused.
        for _ in range(2):
            try:
                with _translated(_PROBE_KEY, conditional=True):
                    self._put_bytes(_PROBE_KEY, b"probe", {"If-None-Match": "*"})
            except ObjectExists:
                return True
        return False

    def _create_bucket(self, *, object_lock: bool) -> None:
        with _translated(self.bucket):
            if self.client.bucket_exists(self.bucket):
                return
            try:
                self.client.make_bucket(self.bucket, object_lock=object_lock)
            except (S3Error, InvalidResponseError) as exc:
                if _error_details(exc)[0] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise  # another process created it between our check and our request otherwise

    # --- writes ---------------------------------------------------------------------------------------------

    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store ``data`` under ``key`` if nothing is there yet; ``ObjectExists`` otherwise."""
        _check_key(key)
        return self._put(key, bytes(data), metadata or {})

    def put_original(self, data: bytes, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store an original under ``originals/<sha256>``; the same bytes again return the stored object."""
        data = bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        key = original_key(sha256)
        # Without retention, conditional writes or sidecars, a HEAD first protects nothing: the same bytes written
        # over themselves are harmless, and skipping it saves a request per document (rclone in hub mode).
        check = self.supports_conditional_write or self.supports_object_lock or self.metadata_sidecars
        try:
            return self._put(key, data, metadata or {}, sha256=sha256, refuse_existing=check)
        except ObjectExists:
            return self.stat(key)

    def _put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str],
        *,
        sha256: str | None = None,
        refuse_existing: bool = True,
    ) -> ObjectInfo:
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        headers, retain_until = self._write_headers(sha256, metadata)
        info = ObjectInfo(key, len(data), sha256, dict(metadata), retain_until)
        if self.supports_conditional_write:
            with _translated(key, conditional=True):
                self._put_bytes(key, data, {**headers, "If-None-Match": "*"})
            self._write_sidecar(info)
        else:
            if refuse_existing:
                self._refuse_existing(key)
            self._write_sidecar(info)  # before the object: the object is never visible without its facts
            with _translated(key):
                self._put_bytes(key, data, headers)
        return info

    def put_stream(
        self, key: str, stream: BinaryIO, *, size: int = -1, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        """Store what ``stream`` yields under ``key`` (create-only), uploading it in parts with bounded memory.

        ``size`` is the exact length when known (``-1``: read to the end). The content goes to a temporary key,
        hashed as it is read, and is copied server-side to ``key`` only once complete, with its SHA-256 in the
        metadata; at most 5 GiB (S3's server-side copy limit).
        """
        _check_key(key)
        metadata = dict(metadata or {})
        self._write_headers("0" * 64, metadata)  # refuse bad metadata before uploading anything
        self._refuse_existing(key)  # spare the upload when the answer is known
        temp_key = f"{INCOMING_PREFIX}{uuid.uuid4().hex}"
        reader = _HashingReader(stream)
        try:
            with _translated(key):
                result = self.client.put_object(
                    self.bucket,
                    temp_key,
                    cast("BinaryIO", reader),
                    size,
                    part_size=self.part_size,
                    num_parallel_uploads=1,  # parts in order, one at a time: memory stays at about one part
                )
        except BaseException:
            # minio has aborted the multipart upload if the server answered; a one-part upload needs no cleanup.
            self._discard(temp_key, None)
            raise
        temp_version = result.version_id
        try:
            if reader.size > _MAX_COPY_BYTES:
                raise ValueError(f"put_stream takes at most {_MAX_COPY_BYTES} bytes, got {reader.size}")
            sha256 = reader.hexdigest()
            headers, retain_until = self._write_headers(sha256, metadata)
            info = ObjectInfo(key, reader.size, sha256, metadata, retain_until)
            self._copy_into_place(temp_key, info, headers)
        finally:
            self._discard(temp_key, temp_version)
        return info

    def _copy_into_place(self, temp_key: str, info: ObjectInfo, headers: DictType) -> None:
        copy_headers: DictType = {
            **headers,
            # Object-lock buckets refuse writes without one (moto even for copies); the copy request's body is empty.
            "Content-MD5": _EMPTY_MD5,
            "x-amz-copy-source": quote(f"/{self.bucket}/{temp_key}"),
            "x-amz-metadata-directive": "REPLACE",
        }
        # Neither server honours If-None-Match on a copy (moto ignores it; servers without conditional copies may
        # refuse the request), so a copy is always checked first; the window is the one the module docstring names.
        self._refuse_existing(info.key)
        if not self.supports_conditional_write:
            self._write_sidecar(info)
        with _translated(info.key):
            response = self.client._execute("PUT", self.bucket, info.key, headers=copy_headers)  # noqa: SLF001 - minio's copy_object cannot send Content-MD5
            # S3 may answer a copy with 200 and an error in the body.
            if b"<Error>" in response.data:
                raise StoreUnavailable(f"copy into {info.key!r} failed: {response.data[:300]!r}")
        if self.supports_conditional_write:
            self._write_sidecar(info)

    def _refuse_existing(self, key: str) -> None:
        if self.exists(key):
            raise ObjectExists(key)

    def _write_headers(self, sha256: str, metadata: Mapping[str, str]) -> tuple[DictType, datetime | None]:
        headers: DictType = {"Content-Type": "application/octet-stream", f"{_META_HEADER}{_SHA256_FIELD}": sha256}
        size = len(_SHA256_FIELD) + len(sha256)
        for name, value in metadata.items():
            if not _FIELD_NAME.fullmatch(name) or name.startswith("lienthong-") or name in _SERVER_FIELDS:
                raise ValueError(
                    f"metadata name {name!r}: use lowercase letters, digits and '-' "
                    "(not 'lienthong-*' or 'mtime', which are reserved)"
                )
            encoded = encode_metadata_value(value)
            headers[f"{_META_HEADER}{name}"] = encoded
            size += len(name) + len(encoded)
        if size > _MAX_METADATA_BYTES:
            raise ValueError(f"metadata takes {size} bytes once encoded; S3 allows {_MAX_METADATA_BYTES}")
        retain_until = None
        if self.retention_days is not None and self.supports_object_lock:
            retain_until = (self._clock() + timedelta(days=self.retention_days)).astimezone(UTC)
            retain_until = retain_until.replace(microsecond=0)
            headers["x-amz-object-lock-mode"] = "COMPLIANCE"
            headers["x-amz-object-lock-retain-until-date"] = retain_until.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return headers, retain_until

    def _put_bytes(self, key: str, data: bytes, headers: DictType) -> None:
        # minio's public put_object turns every header that is not x-amz-* into user metadata, so a conditional
        # write (If-None-Match) and Content-MD5 can only go through the request it is built on. Content-MD5 is
        # required by object-lock buckets and makes the server check what it received.
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - S3's integrity header, not security
        self.client._put_object(self.bucket, key, data, {**headers, "Content-MD5": md5})  # noqa: SLF001

    def _write_sidecar(self, info: ObjectInfo) -> None:
        if not self.metadata_sidecars:
            return
        body = json.dumps(
            {"sha256": info.sha256, "size": info.size, "metadata": dict(info.metadata)}, ensure_ascii=False
        ).encode()
        with _translated(info.key):
            self._put_bytes(_sidecar_key(info.key), body, {"Content-Type": "application/json"})

    def _discard(self, key: str, version_id: str | None) -> None:
        # Best effort: after a crash the server may not answer; cleanup_incoming removes what is left.
        with suppress(MinioException, urllib3.exceptions.HTTPError, OSError):
            self.client.remove_object(self.bucket, key, version_id=version_id)

    def cleanup_incoming(self, *, older_than: timedelta = timedelta(hours=1)) -> int:
        """Remove temporary uploads of ``put_stream`` older than ``older_than``; the number of objects removed.

        Also aborts incomplete multipart uploads under the temporary prefix where the server lists them.
        ``older_than`` must exceed the longest upload still in progress.
        """
        cutoff = self._clock() - older_than
        removed = 0
        with _translated(INCOMING_PREFIX):
            versioned = self.supports_object_lock  # object lock implies versioning: remove every version
            for obj in self.client.list_objects(
                self.bucket, prefix=INCOMING_PREFIX, recursive=True, include_version=versioned
            ):
                if obj.is_dir or obj.last_modified is None or obj.last_modified >= cutoff:
                    continue
                self.client.remove_object(self.bucket, obj.object_name, version_id=obj.version_id)
                removed += 1
            # rclone does not list multipart uploads; it expires abandoned ones itself (--multipart-expiry).
            with suppress(S3Error, InvalidResponseError):
                uploads = self.client._list_multipart_uploads(self.bucket, prefix=INCOMING_PREFIX)  # noqa: SLF001 - no public call
                for upload in uploads.uploads:
                    if upload.upload_id and upload.initiated_time is not None and upload.initiated_time < cutoff:
                        self.client._abort_multipart_upload(self.bucket, upload.object_name, upload.upload_id)  # noqa: SLF001
                        removed += 1
        return removed

    # --- reads ----------------------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """The whole object; ``ObjectNotFound`` if absent."""
        with _translated(key):
            response = self.client.get_object(self.bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def open(self, key: str) -> BinaryIO:
        """A stream over the object, for large ones; close it when done. Read errors become ``StoreUnavailable``."""
        with _translated(key):
            response = self.client.get_object(self.bucket, key)
        return io.BufferedReader(_ObjectReader(key, response), buffer_size=256 * 1024)

    def stat(self, key: str) -> ObjectInfo:
        """Size, SHA-256, metadata and retention; ``ObjectNotFound`` if absent."""
        with _translated(key):
            obj = self.client.stat_object(self.bucket, key)
        headers = {str(name).lower(): str(value) for name, value in (obj.metadata or {}).items()}
        retain_until = None
        if until := headers.get("x-amz-object-lock-retain-until-date"):
            retain_until = datetime.fromisoformat(until)
        size = int(obj.size or 0)
        sha256 = headers.get(f"{_META_HEADER}{_SHA256_FIELD}")
        if sha256 is not None:
            metadata = {
                name[len(_META_HEADER) :]: decode_metadata_value(value)
                for name, value in headers.items()
                if name.startswith(_META_HEADER)
                and name[len(_META_HEADER) :] not in _SERVER_FIELDS
                and not name[len(_META_HEADER) :].startswith("lienthong-")
            }
            return ObjectInfo(key, size, sha256, metadata, retain_until)
        return self._stat_without_headers(key, size, retain_until)

    def _stat_without_headers(self, key: str, size: int, retain_until: datetime | None) -> ObjectInfo:
        # The server forgot the metadata (rclone after a restart): the sidecar has it. Without one, an original's
        # key is its recorded hash; anything else is hashed as it is now (written by something other than us).
        try:
            sidecar = json.loads(self.get(_sidecar_key(key)))
        except ObjectNotFound:
            if key.startswith(ORIGINALS_PREFIX) and re.fullmatch(r"[0-9a-f]{64}", key[len(ORIGINALS_PREFIX) :]):
                return ObjectInfo(key, size, key[len(ORIGINALS_PREFIX) :], {}, retain_until)
            digest = hashlib.sha256()
            with self.open(key) as stream:
                while chunk := stream.read(1024 * 1024):
                    digest.update(chunk)
            return ObjectInfo(key, size, digest.hexdigest(), {}, retain_until)
        return ObjectInfo(key, size, str(sidecar["sha256"]), dict(sidecar["metadata"]), retain_until)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            with _translated(key):
                self.client.stat_object(self.bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order (the adapter's own ``.lienthong/`` keys only when asked).

        rclone walks directories rather than sorting keys, so the listing is sorted here (it is held in memory).
        """
        show_reserved = prefix.startswith(RESERVED_PREFIX)
        with _translated(prefix):
            keys = [
                str(obj.object_name)
                for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if not obj.is_dir and (show_reserved or not str(obj.object_name).startswith(RESERVED_PREFIX))
            ]
        return iter(sorted(keys))

    def presigned_get(self, key: str, *, expires_seconds: int = 3600) -> str:
        """A URL that lets its holder GET the object until it expires (a claim check); made without a request."""
        with _translated(key):
            return str(self.client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_seconds)))


# --- helpers ------------------------------------------------------------------------------------------------


def _check_key(key: str) -> None:
    if not key or key.startswith(RESERVED_PREFIX):
        raise ValueError(f"key {key!r} is empty or in the adapter's reserved {RESERVED_PREFIX!r}")
    # rclone and MinIO map keys to file paths and refuse these forms; refusing them here keeps all servers alike.
    if any(segment in {"", ".", ".."} for segment in key.split("/")):
        raise ValueError(f"key {key!r} has an empty, '.' or '..' segment (or a leading or trailing '/')")


def _sidecar_key(key: str) -> str:
    return f"{_META_PREFIX}{key}.json"


@contextmanager
def _translated(key: str, *, conditional: bool = False) -> Iterator[None]:
    """Turn minio and urllib3 exceptions into the port's errors (the one place this happens)."""
    try:
        yield
    except (S3Error, InvalidResponseError) as exc:
        code, status, message = _error_details(exc)
        if code in _NOT_FOUND_CODES:
            raise ObjectNotFound(key) from exc
        if conditional and code == "PreconditionFailed":
            raise ObjectExists(key) from exc
        what = "unavailable" if code in _UNAVAILABLE_CODES or status >= 500 else "refused the request"  # noqa: PLR2004
        raise StoreUnavailable(f"object store {what} for {key!r}: {code} ({status}): {message}") from exc
    except ServerError as exc:
        raise StoreUnavailable(f"object store failed for {key!r}: {exc}") from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise StoreUnavailable(f"object store unreachable for {key!r}: {exc}") from exc


def _error_details(exc: S3Error | InvalidResponseError) -> tuple[str, int, str]:
    """An S3 error's code, HTTP status and message.

    rclone sends its XML errors as ``text/xml``, which minio does not parse (it expects ``application/xml``), so
    those arrive as ``InvalidResponseError`` with the XML as text.
    """
    if isinstance(exc, S3Error):
        return str(exc.code), int(exc.response.status) if exc.response is not None else 0, str(exc.message)
    status = int(getattr(exc, "_code", 0) or 0)
    body = str(getattr(exc, "_body", "") or "")
    code = re.search(r"<Code>([^<]*)</Code>", body)
    return (code.group(1) if code else f"HTTP{status}"), status, body[:200]


class _HashingReader(io.RawIOBase):
    """Reads through to ``source``, hashing and counting what passes."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self._digest.update(chunk)
        self.size += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _ObjectReader(io.RawIOBase):
    """An object's body as a raw stream whose failures are the port's errors."""

    def __init__(self, key: str, response: Any) -> None:
        self._key = key
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _translated(self._key):
            chunk = self._response.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()
