"""A minimal DMS client for the hub: send documents, receive documents and statuses, send statuses.

The topic contract of DESIGN.md is the interface; this SDK is one client of it (any Kafka client works):

>>> client = HubClient(KafkaConnection("127.0.0.1:9092", user, password), organ_id="000.01.00.H41")
>>> receipt = client.send(signed_bytes)                       # to lienthong.outbox.<our OrganId>
>>> for item in client.receive(timeout=5): print(item.kind, item.document_id)
>>> client.send_status(item.data, "03", key=my_key)            # build, sign and send status 03

Documents above the claim-check size go to object storage first and travel as a claim check (a pointer). Agencies
have no S3 credentials: with ``vxp`` (the ``vxp`` block of ``lienthong agency credentials``) the SDK uploads them
through the hub's VXP facade (``PUT /vxp/claims``, streamed; the hub stores them under ``claims/<OrganId>/<sha256>``)
and downloads what it receives as a claim check (``GET /vxp/claims``), checking size and SHA-256 while streaming:

>>> client = HubClient(connection, organ_id=me, vxp=VxpEndpoint.from_credentials(credentials))
>>> client.send_file(Path("large.xml"))                      # streamed, never read whole
>>> client.save(item, Path("inbox/doc.xml"))                 # a claim check resolved (BAD_CLAIM_CHECK if altered)
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from cryptography import x509
from kafka import KafkaConsumer, KafkaProducer

from adapters.kafka import KafkaConnection
from adapters.vxp import sign_request
from hub.records import (
    CLAIM_CHECK_MAGIC,
    H_DOC_ID,
    H_REASON,
    H_SHA256,
    PRODUCER_BATCH_BYTES,
    PRODUCER_LINGER_MS,
    ClaimCheck,
    inbox_topic,
    outbox_topic,
    status_topic,
)
from hub.settings import DEFAULT_CLAIM_CHECK_BYTES
from schemas import build_status, parse
from schemas._checks import VIETNAM_TZ
from schemas.errors import HubError
from schemas.model import Edoc, Organization, ResponseFor, StatusMessage
from signer.keys import SigningKey
from signer.sign import sign_document
from storage.objectstore import ObjectStore

__all__ = ["BAD_CLAIM_CHECK", "ClientError", "HubClient", "Received", "SendReceipt", "VxpEndpoint"]

BAD_CLAIM_CHECK = "BAD_CLAIM_CHECK"
_CLAIMS_PREFIX = "claims/"
_SEND_TIMEOUT = 30.0  # seconds to wait for the broker's acknowledgement of one document
_HTTP_TIMEOUT = 120.0  # seconds of silence on a claim upload or download (a 150 MB body on a slow link)
_CHUNK = 1024 * 1024  # bytes per read of a file or a download


class ClientError(HubError):
    """The SDK could not do what was asked (broker unreachable, document too large without a store, ...)."""


@dataclass(frozen=True)
class VxpEndpoint:
    """The hub's VXP facade and this agency's systemId and secret there (for claim-check uploads and downloads)."""

    endpoint: str
    system_id: str
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"VxpEndpoint({self.endpoint!r}, system_id={self.system_id!r})"

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> VxpEndpoint | None:
        """The ``vxp`` block of ``lienthong agency credentials --json`` (None when absent)."""
        vxp = credentials.get("vxp")
        if not isinstance(vxp, Mapping) or not vxp.get("endpoint") or not vxp.get("secret"):
            return None
        return cls(
            str(vxp["endpoint"]), str(vxp.get("system_id") or credentials.get("organ_id") or ""), str(vxp["secret"])
        )

    def _request(
        self, method: str, parameters: Sequence[tuple[str, str]], *, body: BinaryIO | None = None, size: int = 0
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """One signed request to ``<endpoint>/claims`` (the body streamed from ``body``); the open response."""
        parsed = urllib.parse.urlsplit(self.endpoint.rstrip("/"))
        kind = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
        connection = kind(parsed.hostname or "127.0.0.1", parsed.port, timeout=_HTTP_TIMEOUT, blocksize=_CHUNK)
        headers = sign_request(self.system_id, self.secret, parameters, content_type="application/octet-stream")
        if body is not None:
            headers["Content-Length"] = str(size)
        try:
            connection.request(method, f"{parsed.path}/claims", body=body, headers=headers)
            return connection, connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ClientError(f"the hub's VXP facade at {self.endpoint} did not answer: {exc}") from exc

    def upload(self, stream: BinaryIO, size: int, sha256: str) -> ClaimCheck:
        """Stream ``size`` bytes whose SHA-256 is ``sha256`` to the hub; the claim check it answers."""
        connection, response = self._request("PUT", [("sha256", sha256)], body=stream, size=size)
        try:
            reply = _envelope(response.read())
        finally:
            connection.close()
        if reply.get("status") != "OK":
            raise ClientError(f"the hub refused the upload: {reply.get('ErrorCode')}: {reply.get('ErrorDesc')}")
        claim = reply["claim"]
        return ClaimCheck(str(claim["key"]), str(claim["sha256"]), int(claim["size"]))

    def download(self, check: ClaimCheck, target: Path) -> Path:
        """Stream the object ``check`` names to ``target``, its size and SHA-256 checked on the way.

        Written to a temporary name beside ``target`` and renamed once verified: a mismatch leaves nothing behind
        and raises ``ClientError`` starting with BAD_CLAIM_CHECK.
        """
        connection, response = self._request("GET", [("key", check.key)])
        try:
            if response.status != 200:  # noqa: PLR2004
                reply = _envelope(response.read())
                desc = reply.get("ErrorDesc") or f"HTTP {response.status}"
                raise ClientError(f"{BAD_CLAIM_CHECK}: cannot fetch {check.key}: {reply.get('ErrorCode')}: {desc}")
            return _write_verified(response, check, target)
        finally:
            connection.close()


def _envelope(data: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(data)
    except ValueError as exc:
        raise ClientError(f"the hub's VXP facade answered something else than JSON: {data[:200]!r}") from exc
    if not isinstance(reply, dict):
        raise ClientError(f"the hub's VXP facade answered something else than an envelope: {data[:200]!r}")
    return reply


def _write_verified(source: Any, check: ClaimCheck, target: Path) -> Path:
    """Copy ``source`` (``read(n)``) to ``target`` if it has the claim check's size and SHA-256; else nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(handle, "wb") as out:
            while size <= check.size and (chunk := source.read(_CHUNK)):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size != check.size or digest.hexdigest() != check.sha256:
            what = f"{size} bytes" if size != check.size else "another SHA-256"
            msg = (
                f"{BAD_CLAIM_CHECK}: {check.key} has {what}, the claim check names {check.size} bytes of {check.sha256}"
            )
            raise ClientError(msg)  # noqa: TRY301 - the temporary file goes in every failure alike
        Path(temporary).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
    return target


@dataclass(frozen=True)
class SendReceipt:
    """Where a sent document landed."""

    sha256: str
    topic: str
    partition: int
    offset: int
    claim_check: bool = False


@dataclass(frozen=True)
class Received:
    """A document or status read from our inbox or status topic."""

    kind: str  # "document" or "status"
    topic: str
    offset: int
    data: bytes
    document_id: str
    sha256: str
    reason: str  # for hub rejections (status 02): the reason code
    headers: dict[str, bytes]

    @property
    def claim(self) -> ClaimCheck | None:
        """The claim check this record is (a large document: fetch it with ``HubClient.save``), else None."""
        if not self.data.startswith(CLAIM_CHECK_MAGIC):
            return None
        return ClaimCheck.from_bytes(self.data)


class HubClient:
    """One agency's connection to the hub."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        organ_id: str,
        store: ObjectStore | None = None,
        vxp: VxpEndpoint | None = None,
        claim_check_bytes: int = DEFAULT_CLAIM_CHECK_BYTES,
    ) -> None:
        self.connection = connection
        self.organ_id = organ_id
        self._store = store
        self._vxp = vxp
        self._claim_check_bytes = claim_check_bytes
        self._producer: KafkaProducer | None = None

    @property
    def outbox(self) -> str:
        """Our outbox, the one topic we may write: ``lienthong.outbox.<OrganId>``."""
        return outbox_topic(self.organ_id)

    def _producer_ready(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=PRODUCER_LINGER_MS,
                    batch_size=PRODUCER_BATCH_BYTES,
                    max_request_size=2 * 1024 * 1024,
                    **self.connection.options(),
                )
            except Exception as exc:  # kafka-python raises its own tree; translate once, here
                raise ClientError(f"cannot reach the hub's broker at {self.connection.bootstrap}: {exc}") from exc
        return self._producer

    def send(self, data: bytes) -> SendReceipt:
        """Publish one signed document (or status) to our outbox and wait for the broker's ack."""
        return self.send_many([data])[0]

    def send_file(self, path: Path) -> SendReceipt:
        """Publish the document in ``path``; a large one is streamed to the hub and sent as its claim check."""
        size = path.stat().st_size
        if size <= self._claim_check_bytes:
            return self.send(path.read_bytes())
        if self._vxp is None:
            return self.send(path.read_bytes())  # a store, or the error that says what is missing
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
            stream.seek(0)
            check = self._vxp.upload(stream, size, digest.hexdigest())
        return self._publish([(check.sha256, True, check.to_bytes())])[0]

    def save(self, item: Received, target: Path) -> Path:
        """Write ``item``'s document to ``target``: its bytes, or the object its claim check names (verified)."""
        claim = item.claim
        if claim is None:
            target.write_bytes(item.data)
            return target
        if self._vxp is None:
            raise ClientError(
                f"{item.document_id or 'a record'} is a claim check: give the vxp credentials to fetch it"
            )
        return self._vxp.download(claim, target)

    def send_many(self, documents: Sequence[bytes]) -> list[SendReceipt]:
        """Publish several documents, then wait for every acknowledgement."""
        values = []
        for data in documents:
            sha = hashlib.sha256(data).hexdigest()
            if len(data) > self._claim_check_bytes:
                values.append((sha, True, self._claim_check(data, sha)))
            else:
                values.append((sha, False, data))
        return self._publish(values)

    def _publish(self, values: Sequence[tuple[str, bool, bytes]]) -> list[SendReceipt]:
        """Produce each (sha256, claimed, value) to our outbox and wait for every acknowledgement."""
        producer = self._producer_ready()
        pending = [
            (sha, claimed, producer.send(self.outbox, key=self.organ_id.encode(), value=value))
            for sha, claimed, value in values
        ]
        producer.flush()
        receipts = []
        for sha, claimed, future in pending:
            try:
                meta = future.get(timeout=_SEND_TIMEOUT)
            except Exception as exc:
                raise ClientError(f"the broker did not accept document {sha[:12]}: {exc}") from exc
            receipts.append(SendReceipt(sha, meta.topic, meta.partition, meta.offset, claimed))
        return receipts

    def _claim_check(self, data: bytes, sha: str) -> bytes:
        if self._vxp is not None:
            return self._vxp.upload(io.BytesIO(data), len(data), sha).to_bytes()
        if self._store is None:
            msg = (
                f"{len(data)} bytes is above the claim-check size ({self._claim_check_bytes}); "
                "give the hub's VXP credentials (or an object store) to send it as a claim check"
            )
            raise ClientError(msg)
        return ClaimCheck.deposit(self._store, data, prefix=_CLAIMS_PREFIX, sha256=sha).to_bytes()

    def receive(
        self, *, timeout: float | None = None, from_beginning: bool = False, group: str | None = None
    ) -> Iterator[Received]:
        """Documents from our inbox and statuses about what we sent, as they arrive.

        With ``group`` (default ``dms.<OrganId>.default``; an agency may use groups ``dms.<OrganId>.*`` only) the
        position is remembered between runs; ``timeout`` ends the iteration after that many seconds without a record.
        """
        consumer = KafkaConsumer(
            inbox_topic(self.organ_id),
            status_topic(self.organ_id),
            group_id=group or f"dms.{self.organ_id}.default",
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=True,
            consumer_timeout_ms=int(timeout * 1000) if timeout is not None else float("inf"),
            **self.connection.options(),
        )
        try:
            for message in consumer:
                headers = {k: bytes(v or b"") for k, v in message.headers or ()}
                kind = "status" if message.topic.startswith("lienthong.status.") else "document"
                yield Received(
                    kind,
                    message.topic,
                    message.offset,
                    message.value or b"",
                    headers.get(H_DOC_ID, b"").decode(),
                    headers.get(H_SHA256, b"").decode(),
                    headers.get(H_REASON, b"").decode(),
                    headers,
                )
        finally:
            consumer.close()

    def send_status(
        self,
        document: bytes,
        code: str,
        *,
        key: SigningKey,
        chain: Sequence[x509.Certificate] = (),
        description: str = "",
        organization: Organization | None = None,
    ) -> SendReceipt:
        """Build status ``code`` (01–06, 13, 15, 16) about a received ``document``, sign it and send it."""
        message = parse(document).message
        if not isinstance(message, Edoc):
            raise ClientError("a status answers a document, and this is itself a status")
        status = StatusMessage(
            sender=organization or Organization(organ_id=self.organ_id),
            response_for=ResponseFor.answering(message),
            status_code=code,
            timestamp=datetime.now(UTC).astimezone(VIETNAM_TZ),
            description=description,
        )
        return self.send(sign_document(build_status(status), key, chain=chain))

    def close(self) -> None:
        """Flush and close the producer."""
        if self._producer is not None:
            self._producer.close()
            self._producer = None
