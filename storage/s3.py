"""The S3 adapter of the object-store port, on the ``minio`` client.

Written for SeaweedFS (the embedded store) and any S3 server that honours conditional writes (AWS, MinIO, Ceph):

- **Create-only writes.** Every write carries ``If-None-Match: *``; a 412 means "already there" (``ObjectExists``).
  No request checks first: the server decides, atomically. ``put_stream`` sends the header on its
  ``CompleteMultipartUpload``, where servers honour it (SeaweedFS 4.48 ignores it on ``CreateMultipartUpload``, as
  AWS does, so nothing is learnt before the parts are sent).
- **Metadata.** Caller metadata travels as ``x-amz-meta-*`` headers, values percent-encoded so that any text
  (Vietnamese names) is ASCII-safe; the content SHA-256 is recorded as ``x-amz-meta-lienthong-sha256``.
- **Object lock.** ``connect`` creates a bucket with object lock and a COMPLIANCE default retention of
  ``retention_days``. On a bucket with object lock (asked of the server once: an external bucket may lack it)
  every object is also written with its own COMPLIANCE retention, so that ``retention_days`` holds on a bucket
  whose default rule is different or absent, and ``stat`` reports it.
- **Streams.** ``put_stream`` hashes the content first (seeking back, or spooling an unseekable stream to a
  temporary file), so that the SHA-256 can be in the metadata from the start, then uploads it in parts straight to
  its key. Nothing is visible before ``CompleteMultipartUpload``; a failed upload is aborted, and
  ``abort_stale_uploads`` removes what a crash left behind. No temporary object, no server-side copy: under object
  lock a temporary object could not be deleted for the retention period.

minio's public ``put_object`` cannot send ``If-None-Match`` or ``Content-MD5`` (it turns such headers into user
metadata), so writes go through minio's request layer (``_put_object``, ``_execute``); the tests pin that use.

Every ``minio``/``urllib3`` exception is translated here, once: connection failures, timeouts and 5xx become
``StoreUnavailable``; missing keys ``ObjectNotFound``; a refused conditional write ``ObjectExists``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import DictType
from minio.objectlockconfig import DAYS, ObjectLockConfig

from storage.objectstore import ObjectExists, ObjectInfo, ObjectNotFound, StoreUnavailable, original_key

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PART_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REGION",
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_RETRIES",
    "S3ObjectStore",
    "decode_metadata_value",
    "encode_metadata_value",
]

# Ten years: archives of official documents are kept that long, and COMPLIANCE retention cannot be shortened later.
DEFAULT_RETENTION_DAYS: Final = 3650
# S3's minimum part is 5 MiB; 8 MiB keeps a stream's memory at a few parts while 100 MB take 13 requests.
DEFAULT_PART_SIZE: Final = 8 * 1024 * 1024
# Servers are on loopback or a LAN: one that does not accept a connection within 2 s is down.
DEFAULT_CONNECT_TIMEOUT: Final = 2.0
# Completing a large multipart upload answers only when it is done; a silent server is down after this.
DEFAULT_READ_TIMEOUT: Final = 60.0
# Retries of requests that never reached the server (and of reads); with 0.2 s backoff a stopped server is
# reported within about a second instead of hanging.
DEFAULT_RETRIES: Final = 2
# SeaweedFS accepts any region; fixing it saves minio's bucket-location lookup on every new client.
DEFAULT_REGION: Final = "us-east-1"

_MAX_PARTS: Final = 10_000  # S3's limit on the parts of one multipart upload
_META_HEADER: Final = "x-amz-meta-"
_SHA256_FIELD: Final = "lienthong-sha256"
# Lowercase because S3 lowercases header names; no ``_`` because HTTP proxies drop such headers (nginx does).
_FIELD_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_MAX_METADATA_BYTES: Final = 2048  # S3's limit on the user metadata of one object (names and values)
# Readable punctuation kept as is; everything else (spaces, "%", non-ASCII) is percent-encoded as UTF-8.
_SAFE_PUNCTUATION: Final = ":/@,;="
_UNAVAILABLE_CODES: Final = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})
_NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "NoSuchVersion"})
_NO_LOCK_CODES: Final = frozenset({"ObjectLockConfigurationNotFoundError", "NotImplemented", "InvalidRequest"})
_HASH_CHUNK: Final = 1024 * 1024


def encode_metadata_value(text: str) -> str:
    """``text`` made safe for an HTTP header: UTF-8, percent-encoded except letters, digits and ``-_.~:/@,;=``."""
    return quote(text, safe=_SAFE_PUNCTUATION)


def decode_metadata_value(value: str) -> str:
    """The text ``encode_metadata_value`` encoded."""
    return unquote(value, errors="strict")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - S3's integrity header, not security


class S3ObjectStore:
    """An ``ObjectStore`` on one S3 bucket.

    Build it with ``connect`` (endpoint and credentials; creates the bucket) or around an existing ``Minio`` client.
    ``retention_days`` applies where the bucket has object lock (``None``: write without per-object retention,
    the bucket's default rule still applies); ``clock`` gives the time retention is counted from. Thread-safe:
    share one store between threads.
    """

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        part_size: int = DEFAULT_PART_SIZE,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days must be at least 1, or None for no per-object retention")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum)")
        self.client = client
        self.bucket = bucket
        self.retention_days = retention_days
        self.part_size = part_size
        self._clock = clock
        self._object_lock: bool | None = None
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
        ca_file: Path | None = None,
        region: str = DEFAULT_REGION,
        create_bucket: bool = True,
        object_lock: bool = True,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        max_connections: int = 16,
        part_size: int = DEFAULT_PART_SIZE,
        clock: Callable[[], datetime] = _utc_now,
    ) -> S3ObjectStore:
        """A store on ``bucket`` at ``endpoint`` (``host:port``), creating the bucket if missing.

        ``secure`` speaks HTTPS, trusting only ``ca_file`` when given (else the system's CAs). A bucket created
        here gets ``object_lock`` (it cannot be added later) with a COMPLIANCE default retention of
        ``retention_days``; an existing bucket is used as it is. The bucket's object lock is asked here, so a
        wrong endpoint or credentials fail at once, with a read that read-only users (``lienthong audit``) may make.
        """
        if ca_file is not None and not secure:
            raise ValueError("ca_file is for TLS: pass secure=True with it")
        ssl_context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=max_connections,
            ssl_context=ssl_context if secure else None,
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
        store = cls(client, bucket, retention_days=retention_days, part_size=part_size, clock=clock)
        if create_bucket:
            store.create_bucket(object_lock=object_lock)
        _ = store.supports_object_lock
        return store

    # --- bucket ---------------------------------------------------------------------------------------------

    @property
    def supports_object_lock(self) -> bool:
        """Whether the bucket has object lock (asked of the server once, then remembered)."""
        with self._capabilities_lock:
            if self._object_lock is None:
                self._object_lock = self._probe_object_lock()
            return self._object_lock

    def _probe_object_lock(self) -> bool:
        try:
            with _translated(self.bucket):
                try:
                    self.client.get_object_lock_config(self.bucket)
                except S3Error as exc:
                    if exc.code in _NO_LOCK_CODES:
                        return False
                    if exc.code == "AccessDenied":
                        # An identity that may not read the configuration (``lienthong audit``'s read-only one):
                        # treated as no lock, so writes (if it may make any) rely on the bucket's own rule.
                        return False
                    raise
        except ObjectNotFound as exc:  # NoSuchBucket is not an object's absence
            raise StoreUnavailable(f"bucket {self.bucket!r} does not exist") from exc
        return True

    def create_bucket(self, *, object_lock: bool = True) -> None:
        """Create the bucket if missing, with ``object_lock`` and a COMPLIANCE default rule of ``retention_days``."""
        with _translated(self.bucket):
            if self.client.bucket_exists(self.bucket):
                return
            try:
                self.client.make_bucket(self.bucket, object_lock=object_lock)
            except S3Error as exc:
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
                return  # another process created it between our check and our request; it set the rule
            if object_lock and self.retention_days is not None:
                # The bucket's own rule: objects written by anything but this adapter are retained too.
                self.client.set_object_lock_config(self.bucket, ObjectLockConfig(COMPLIANCE, self.retention_days, DAYS))

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
        try:
            return self._put(key, data, metadata or {}, sha256=sha256)
        except ObjectExists:
            return self.stat(key)  # a duplicate: one more request, only for duplicates

    def _put(self, key: str, data: bytes, metadata: Mapping[str, str], *, sha256: str | None = None) -> ObjectInfo:
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        headers, retain_until = self._write_headers(sha256, metadata)
        # Content-MD5 makes the server check what it received; object-lock buckets require it on AWS.
        headers = {**headers, "If-None-Match": "*", "Content-MD5": _md5(data)}
        with _translated(key, conditional=True):
            # minio's public put_object would turn If-None-Match and Content-MD5 into user metadata.
            self.client._put_object(self.bucket, key, data, headers)  # noqa: SLF001
        return ObjectInfo(key, len(data), sha256, dict(metadata), retain_until)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int = -1,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
    ) -> ObjectInfo:
        """Store what ``stream`` yields under ``key`` (create-only), in parts with bounded memory.

        ``size`` is the exact length when known (``-1``: read to the end). The content is hashed first (an
        unseekable stream is spooled to a temporary file for that), then uploaded in parts straight to ``key``,
        which shows nothing until the upload completes. A stream that changes between the two reads is refused.
        With ``sha256`` declared (an upload whose key names its content) the stream is read once, straight into
        the parts, and the upload completes only if the content hashes to it (``ValueError`` otherwise).
        """
        _check_key(key)
        metadata = dict(metadata or {})
        self._write_headers("0" * 64, metadata)  # refuse bad metadata before reading anything
        if sha256 is not None:
            return self._put_declared(key, stream, sha256, metadata)
        with _rereadable(stream, size) as (source, length, digest):
            if length > _MAX_PARTS * self.part_size:
                raise ValueError(f"put_stream takes at most {_MAX_PARTS * self.part_size} bytes, got {length}")
            if length <= self.part_size:
                return self._put(key, _read_exactly(source, length), metadata, sha256=digest)
            headers, retain_until = self._write_headers(digest, metadata)
            self._upload_parts(key, source, length, digest, headers)
        return ObjectInfo(key, length, digest, metadata, retain_until)

    def _put_declared(self, key: str, stream: BinaryIO, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        """``put_stream`` of content whose SHA-256 the caller declared: one read, the hash checked at the end."""
        first = stream.read(self.part_size + 1)
        if len(first) <= self.part_size:  # one request, Content-MD5 and all
            if hashlib.sha256(first).hexdigest() != sha256:
                raise ValueError(f"the content for {key!r} does not have the SHA-256 {sha256}")
            return self._put(key, first, metadata, sha256=sha256)
        headers, retain_until = self._write_headers(sha256, metadata)
        source = io.BufferedReader(_Chained(first, stream), buffer_size=self.part_size)
        length = self._upload_parts(key, source, -1, sha256, headers)
        return ObjectInfo(key, length, sha256, dict(metadata), retain_until)

    def _upload_parts(self, key: str, source: BinaryIO, length: int, sha256: str, headers: DictType) -> int:
        """Upload ``length`` bytes of ``source`` (``-1``: to its end) in parts; complete only if they hash right."""
        with _translated(key):
            upload_id = self.client._create_multipart_upload(self.bucket, key, dict(headers))  # noqa: SLF001
        completed = False
        try:
            digest = hashlib.sha256()
            etags: list[str] = []
            remaining = length
            total = 0
            while remaining:
                if length < 0:
                    part = source.read(self.part_size)
                    if not part:
                        break
                    if len(etags) >= _MAX_PARTS:
                        raise ValueError(f"put_stream takes at most {_MAX_PARTS * self.part_size} bytes")
                else:
                    part = _read_exactly(source, min(self.part_size, remaining))
                    remaining -= len(part)
                digest.update(part)
                total += len(part)
                with _translated(key):
                    etags.append(
                        self.client._upload_part(  # noqa: SLF001 - the public call cannot send Content-MD5
                            self.bucket, key, part, {"Content-MD5": _md5(part)}, upload_id, len(etags) + 1
                        )
                    )
            if digest.hexdigest() != sha256:
                raise ValueError(f"the content for {key!r} does not have the SHA-256 {sha256} (changed or misnamed)")
            body = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
                for n, etag in enumerate(etags, start=1)
            )
            xml = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
            complete: DictType = {"Content-Type": "application/xml", "Content-MD5": _md5(xml), "If-None-Match": "*"}
            with _translated(key, conditional=True):
                response = self.client._execute(  # noqa: SLF001 - minio's call cannot send If-None-Match
                    "POST", self.bucket, key, body=xml, headers=complete, query_params={"uploadId": upload_id}
                )
                # S3 may answer a completion with 200 and an error in the body.
                if b"<Error>" in response.data:
                    raise StoreUnavailable(f"completing {key!r} failed: {response.data[:300]!r}")
            completed = True
            return total
        finally:
            if not completed:
                # Best effort: after a crash the server may not answer; abort_stale_uploads finishes the job.
                with suppress(MinioException, urllib3.exceptions.HTTPError, OSError):
                    self.client._abort_multipart_upload(self.bucket, key, upload_id)  # noqa: SLF001

    def _write_headers(self, sha256: str, metadata: Mapping[str, str]) -> tuple[DictType, datetime | None]:
        headers: DictType = {"Content-Type": "application/octet-stream", f"{_META_HEADER}{_SHA256_FIELD}": sha256}
        size = len(_SHA256_FIELD) + len(sha256)
        for name, value in metadata.items():
            if not _FIELD_NAME.fullmatch(name) or name.startswith("lienthong-"):
                raise ValueError(
                    f"metadata name {name!r}: use lowercase letters, digits and '-' (not 'lienthong-*', reserved)"
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

    def abort_stale_uploads(self, *, older_than: timedelta = timedelta(hours=1)) -> int:
        """Abort multipart uploads begun more than ``older_than`` ago (left by a crash); how many were aborted.

        ``older_than`` must exceed the longest upload still in progress.
        """
        cutoff = self._clock() - older_than
        aborted = 0
        with _translated(self.bucket):
            uploads = self.client._list_multipart_uploads(self.bucket)  # noqa: SLF001 - no public call
            for upload in uploads.uploads:
                if upload.upload_id and upload.initiated_time is not None and upload.initiated_time < cutoff:
                    self.client._abort_multipart_upload(self.bucket, upload.object_name, upload.upload_id)  # noqa: SLF001
                    aborted += 1
        return aborted

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

    def open(self, key: str, *, length: int | None = None) -> BinaryIO:
        """A stream over the object (a ranged GET of its first ``length`` bytes, when given); close it when done.

        Read errors become ``StoreUnavailable``.
        """
        with _translated(key):
            response = self.client.get_object(self.bucket, key, length=length or 0)
        return io.BufferedReader(_ObjectReader(key, response), buffer_size=256 * 1024)

    def copy(self, source: str, key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Copy ``source`` to ``key`` on the server (CopyObject), create-only (``If-None-Match: *``).

        The bytes never pass through this process; the copy gets ``metadata`` (replacing the source's), the
        source's recorded SHA-256 and, under object lock, its own COMPLIANCE retention.
        """
        _check_key(key)
        info = self.stat(source)
        metadata = dict(metadata or {})
        headers, retain_until = self._write_headers(info.sha256, metadata)
        headers = {
            **headers,
            "x-amz-copy-source": quote(f"/{self.bucket}/{source}"),
            "x-amz-metadata-directive": "REPLACE",
            "If-None-Match": "*",
        }
        with _translated(key, conditional=True):
            response = self.client._execute("PUT", self.bucket, key, headers=headers)  # noqa: SLF001
            if b"<Error>" in response.data:  # S3 may answer a copy with 200 and an error in the body
                raise StoreUnavailable(f"copying {source!r} to {key!r} failed: {response.data[:300]!r}")
        return ObjectInfo(key, info.size, info.sha256, metadata, retain_until)

    def stat(self, key: str) -> ObjectInfo:
        """Size, SHA-256, metadata and retention; ``ObjectNotFound`` if absent."""
        with _translated(key):
            obj = self.client.stat_object(self.bucket, key)
        headers = {str(name).lower(): str(value) for name, value in (obj.metadata or {}).items()}
        retain_until = None
        if until := headers.get("x-amz-object-lock-retain-until-date"):
            retain_until = datetime.fromisoformat(until)
        size = int(obj.size or 0)
        metadata = {
            name[len(_META_HEADER) :]: decode_metadata_value(value)
            for name, value in headers.items()
            if name.startswith(_META_HEADER) and not name[len(_META_HEADER) :].startswith("lienthong-")
        }
        sha256 = headers.get(f"{_META_HEADER}{_SHA256_FIELD}")
        if sha256 is None:  # written by something other than this adapter: hash it as it is now
            digest = hashlib.sha256()
            with self.open(key) as stream:
                while chunk := stream.read(_HASH_CHUNK):
                    digest.update(chunk)
            sha256 = digest.hexdigest()
        return ObjectInfo(key, size, sha256, metadata, retain_until)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            with _translated(key):
                self.client.stat_object(self.bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str, *, start_after: str = "") -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order (only those after ``start_after``, if given)."""
        with _translated(prefix):
            after = start_after or None
            listed = self.client.list_objects(self.bucket, prefix=prefix, recursive=True, start_after=after)
            keys = [str(obj.object_name) for obj in listed if not obj.is_dir]
        # SeaweedFS lists a folder's entries before the keys that sort between them ("a/b" before "a-c"), as a
        # file system walk would; S3 promises byte order. (The filter: a server may take start_after as a hint.)
        return iter(sorted(k for k in keys if k > start_after))

    def presigned_get(self, key: str, *, expires_seconds: int = 3600) -> str:
        """A URL that lets its holder GET the object until it expires (a claim check); made without a request."""
        with _translated(key):
            return str(self.client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_seconds)))


# --- helpers ------------------------------------------------------------------------------------------------


def _check_key(key: str) -> None:
    # SeaweedFS and MinIO map keys to file paths and refuse these forms; refusing them here keeps servers alike.
    if not key or any(segment in {"", ".", ".."} for segment in key.split("/")):
        raise ValueError(f"key {key!r} is empty or has an empty, '.' or '..' segment (or a leading or trailing '/')")


def _read_exactly(source: BinaryIO, length: int) -> bytes:
    data = source.read(length)
    if len(data) != length:
        raise ValueError(f"the stream ended {length - len(data)} bytes early")
    return data


@contextmanager
def _rereadable(stream: BinaryIO, size: int) -> Iterator[tuple[BinaryIO, int, str]]:
    """``stream`` positioned where it was, its length (``size`` if given) and the SHA-256 of that content.

    A seekable stream is read once and rewound; any other is copied to a temporary file on the way.
    """
    seekable = False
    with suppress(OSError, AttributeError, ValueError):
        seekable = stream.seekable()
    spool = None if seekable else tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    try:
        start = stream.tell() if seekable else 0
        digest = hashlib.sha256()
        length = 0
        while size < 0 or length < size:
            chunk = stream.read(_HASH_CHUNK if size < 0 else min(_HASH_CHUNK, size - length))
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
            if spool is not None:
                spool.write(chunk)
        if 0 <= size != length:
            raise ValueError(f"size={size} but the stream holds {length} bytes")
        source: BinaryIO = stream if spool is None else spool
        source.seek(start)
        yield source, length, digest.hexdigest()
    finally:
        if spool is not None:
            spool.close()


@contextmanager
def _translated(key: str, *, conditional: bool = False) -> Iterator[None]:
    """Turn minio and urllib3 exceptions into the port's errors (the one place this happens)."""
    try:
        yield
    except S3Error as exc:
        status = int(exc.response.status) if exc.response is not None else 0
        if exc.code in _NOT_FOUND_CODES:
            raise ObjectNotFound(key) from exc
        if conditional and exc.code == "PreconditionFailed":
            raise ObjectExists(key) from exc
        what = "unavailable" if exc.code in _UNAVAILABLE_CODES or status >= 500 else "refused the request"  # noqa: PLR2004
        raise StoreUnavailable(f"object store {what} for {key!r}: {exc.code} ({status}): {exc.message}") from exc
    except InvalidResponseError as exc:
        # Not an S3 answer at all (a proxy's error page, say).
        raise StoreUnavailable(f"object store gave no S3 answer for {key!r}: {exc}") from exc
    except ServerError as exc:
        raise StoreUnavailable(f"object store failed for {key!r}: {exc}") from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise StoreUnavailable(f"object store unreachable for {key!r}: {exc}") from exc


class _Chained(io.RawIOBase):
    """``head`` (bytes already read) followed by the rest of ``stream``, as one raw stream."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        chunk = self._stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


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
