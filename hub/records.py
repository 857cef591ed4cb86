"""What travels on the topics: record shapes, header names, topic names and claim checks (DESIGN.md's contract)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schemas.errors import DocumentRejected, Problem

if TYPE_CHECKING:
    from storage.objectstore import ObjectStore

__all__ = [
    "AXIS_INBOUND",
    "AXIS_OUTBOUND",
    "CLAIM_CHECK_MAGIC",
    "DEADLETTER",
    "DIRECTORY",
    "H_ATTEMPTS",
    "H_DOC_ID",
    "H_ERROR",
    "H_HELD_SINCE",
    "H_INDICATION",
    "H_INPUT",
    "H_ORIGIN",
    "H_REASON",
    "H_RECEIVED_AT",
    "H_RETRY_AT",
    "H_SENDER",
    "H_SHA256",
    "H_SOURCE",
    "LEDGER",
    "ORIGIN_AXIS",
    "OUTBOX_PREFIX",
    "PRODUCER_BATCH_BYTES",
    "PRODUCER_LINGER_MS",
    "WORK_BULK",
    "WORK_RETRY",
    "WORK_URGENT",
    "ClaimCheck",
    "Headers",
    "InboundRecord",
    "OutboundRecord",
    "inbox_topic",
    "outbox_owner",
    "outbox_topic",
    "status_topic",
    "without_hub_headers",
]

#: ``lienthong.outbox.<OrganId>``: written by that agency only (Kafka ACLs), so the topic names the sender.
OUTBOX_PREFIX = "lienthong.outbox."
AXIS_OUTBOUND = "lienthong.axis.outbound"
#: What the axis connector pulls from the national axis (written by ``lienthong-axis`` only): the sender is the
#: document's From/OrganId, which must not be a local agency (README, "National axis").
AXIS_INBOUND = "lienthong.axis.inbound"
DEADLETTER = "lienthong.deadletter"
LEDGER = "lienthong.ledger"
DIRECTORY = "lienthong.directory"
#: Internal lanes between intake and the verify/archive/route stage: urgent documents never queue behind bulk.
WORK_URGENT = "lienthong.work.urgent"
WORK_BULK = "lienthong.work.bulk"
#: Documents held because their signature could not be validated for lack of current revocation data (TRY_LATER):
#: the hub's problem, retried with backoff until ``try_later_deadline_seconds`` (``hub.hold``). Hub-only.
WORK_RETRY = "lienthong.work.retry"

H_DOC_ID = "lienthong-doc-id"
H_SHA256 = "lienthong-sha256"
H_INDICATION = "lienthong-indication"
H_RECEIVED_AT = "lienthong-received-at"
H_REASON = "lienthong-reason"  # dead letters and rejections: the stable reason code
H_ERROR = "lienthong-error"  # dead letters: the problems in words (element paths, certificate, ...)
H_SOURCE = "lienthong-source"  # dead letters: topic/partition/offset of the record that was refused
H_INPUT = "lienthong-input"  # topic/partition/offset of the record that caused this one (exactly-once checks)
H_SENDER = "lienthong-sender"  # dead letters: the record key as received
#: Work lanes: where the intake read the record. Set by the intake only (input records lose every hub header).
H_ORIGIN = "lienthong-origin"
ORIGIN_AXIS = b"axis"
#: Held records (``lienthong.work.retry``): when the hub first received the document (ISO 8601, UTC), when it is
#: due again, and how many times it was held.
H_HELD_SINCE = "lienthong-held-since"
H_RETRY_AT = "lienthong-retry-at"
H_ATTEMPTS = "lienthong-attempts"  # read from lienthong.axis.inbound: it arrived through the national axis
#: Headers that only the hub writes: an agency's record carrying them has them removed at intake.
_HUB_PREFIX = "lienthong-"

#: Producer batch limit (bytes). Kafka clients default to 16 KB: three 5 KB documents; fewer, larger batches cost the
#: broker and the Python clients less per record.
PRODUCER_BATCH_BYTES = 256 * 1024
#: How long a producer waits to fill a batch (ms): a few ms of latency per hop for far fewer requests.
PRODUCER_LINGER_MS = 5

#: A record value that starts with this is a claim check (JSON), not a document.
CLAIM_CHECK_MAGIC = b'{"lienthong-claim-check"'

Headers = tuple[tuple[str, bytes], ...]

_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def _agency_topic(prefix: str, organ_id: str) -> str:
    topic = f"{prefix}.{organ_id}"
    if not organ_id or not _TOPIC_SAFE.fullmatch(topic):
        msg = f"OrganId {organ_id!r} cannot name a topic"
        raise ValueError(msg)
    return topic


def outbox_topic(organ_id: str) -> str:
    """``lienthong.outbox.<OrganId>``: where an agency's DMS publishes its documents and statuses."""
    return _agency_topic(OUTBOX_PREFIX.rstrip("."), organ_id)


def outbox_owner(topic: str) -> str | None:
    """The OrganId whose outbox ``topic`` is, or None for any other topic."""
    owner = topic.removeprefix(OUTBOX_PREFIX)
    return owner if owner != topic and owner else None


def without_hub_headers(headers: Headers, *, keep: frozenset[str] = frozenset()) -> Headers:
    """``headers`` without the hub's own (``lienthong-*``), except ``keep``: an agency cannot forge them."""
    return tuple((k, v) for k, v in headers if not k.startswith(_HUB_PREFIX) or k in keep)


def inbox_topic(organ_id: str) -> str:
    """``lienthong.inbox.<OrganId>``: where a local agency's DMS reads its documents."""
    return _agency_topic("lienthong.inbox", organ_id)


def status_topic(organ_id: str) -> str:
    """``lienthong.status.<OrganId>``: statuses about the documents an agency sent (hub's and recipients')."""
    return _agency_topic("lienthong.status", organ_id)


@dataclass(frozen=True)
class InboundRecord:
    """One record as consumed: key, value (document bytes or claim check), headers, position.

    On a work lane the key is the sender the hub authenticated: the owner of the outbox the record arrived on.
    """

    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    topic: str = "lienthong.work.bulk"
    partition: int = 0
    offset: int = -1
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, if any."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    @property
    def source(self) -> str:
        """``topic/partition/offset``, for dead letters and logs."""
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class OutboundRecord:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True)
class ClaimCheck:
    """A pointer to a large document in object storage: its key and SHA-256 (checked on fetch)."""

    key: str
    sha256: str
    size: int

    def to_bytes(self) -> bytes:
        """The record value senders publish instead of the document."""
        body = {"key": self.key, "sha256": self.sha256, "size": self.size}
        return json.dumps({"lienthong-claim-check": body}, separators=(",", ":")).encode()

    @classmethod
    def deposit(cls, store: ObjectStore, data: bytes, *, prefix: str, sha256: str | None = None) -> ClaimCheck:
        """Store ``data`` under ``prefix`` + its SHA-256, once (the key names the content); its claim check."""
        sha = sha256 or hashlib.sha256(data).hexdigest()
        key = f"{prefix}{sha}"
        if not store.exists(key):
            store.put(key, data)
        return cls(key, sha, len(data))

    @classmethod
    def from_bytes(cls, value: bytes) -> ClaimCheck:
        """Read a claim check; ``DocumentRejected(BAD_CLAIM_CHECK)`` names what is wrong."""
        try:
            body = json.loads(value)["lienthong-claim-check"]
            check = cls(str(body["key"]), str(body["sha256"]).lower(), int(body["size"]))
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise DocumentRejected("BAD_CLAIM_CHECK", [Problem("", f"not a claim check: {exc}")]) from exc
        if not re.fullmatch(r"[0-9a-f]{64}", check.sha256) or check.size < 0 or not check.key:
            raise DocumentRejected("BAD_CLAIM_CHECK", [Problem("", "claim check needs key, sha256 (hex) and size")])
        return check
