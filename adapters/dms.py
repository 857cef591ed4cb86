"""A minimal DMS client for the hub: send documents, receive documents and statuses, send statuses.

The topic contract of DESIGN.md is the interface; this SDK is one client of it (any Kafka client works):

>>> client = HubClient(KafkaConnection("127.0.0.1:9092", user, password), organ_id="000.01.00.H41")
>>> receipt = client.send(signed_bytes)                       # to lienthong.outbox.<our OrganId>
>>> for item in client.receive(timeout=5): print(item.kind, item.document_id)
>>> client.send_status(item.data, "03", key=my_key)            # build, sign and send status 03

Documents above the claim-check size go to object storage first and travel as a pointer (needs ``store``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from kafka import KafkaConsumer, KafkaProducer

from adapters.kafka import KafkaConnection
from hub.records import (
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

__all__ = ["HubClient", "Received", "SendReceipt"]

_CLAIMS_PREFIX = "claims/"
_SEND_TIMEOUT = 30.0  # seconds to wait for the broker's acknowledgement of one document


class ClientError(HubError):
    """The SDK could not do what was asked (broker unreachable, document too large without a store, ...)."""


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


class HubClient:
    """One agency's connection to the hub."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        organ_id: str,
        store: ObjectStore | None = None,
        claim_check_bytes: int = DEFAULT_CLAIM_CHECK_BYTES,
    ) -> None:
        self.connection = connection
        self.organ_id = organ_id
        self._store = store
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

    def send_many(self, documents: Sequence[bytes]) -> list[SendReceipt]:
        """Publish several documents, then wait for every acknowledgement."""
        producer = self._producer_ready()
        pending = []
        for data in documents:
            sha = hashlib.sha256(data).hexdigest()
            value, claimed = data, False
            if len(data) > self._claim_check_bytes:
                value, claimed = self._claim_check(data, sha), True
            pending.append((sha, claimed, producer.send(self.outbox, key=self.organ_id.encode(), value=value)))
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
        if self._store is None:
            msg = f"{len(data)} bytes is above the claim-check size ({self._claim_check_bytes}); give an object store"
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
