"""Ledger events (the Merkle leaves), the errors of the ledger, and the record format of ``lienthong.ledger``."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from schemas.errors import HubError
from storage import merkle

#: The actor of events the hub itself performs.
HUB_ACTOR = "hub"

_EVENT_VERSION = 1
_RECORD_FORMAT = "lienthong-ledger-record-v2"
_HEX64_CHARS = frozenset("0123456789abcdef")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def is_hex64(text: object) -> bool:
    """Whether ``text`` is 64 lowercase hex digits (a SHA-256)."""
    return isinstance(text, str) and len(text) == 64 and set(text) <= _HEX64_CHARS  # noqa: PLR2004 - SHA-256 hex


class LedgerError(HubError):
    """The ledger cannot do what was asked (bad event, bad argument, another writer)."""


class LedgerCorrupt(LedgerError):
    """The stored log is not what the hub wrote; ``where`` names the object, head or leaf."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class SealError(HubError):
    """A seal (tree head or bundle manifest signature, or its time-stamp) does not verify; the message says why."""


# --- events -------------------------------------------------------------------------------------------------


class EventKind(enum.StrEnum):
    """What happened to a document at the hub (or, for ``DIRECTORY_CHANGED``, to the directory)."""

    RECEIVED = "received"
    VERIFIED = "verified"
    REJECTED = "rejected"
    ARCHIVED = "archived"
    DELIVERED = "delivered"
    STATUS_RELAYED = "status_relayed"
    DIRECTORY_CHANGED = "directory_changed"  # sha256: the signed directory record's; detail: what changed


def _format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: object, what: str) -> datetime:
    if not isinstance(text, str):
        raise LedgerError(f"{what}: a time must be a string")
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise LedgerError(f"{what}: {text!r} is not a UTC time like 2026-06-01T00:00:00.000000Z") from exc


def _canonical_json(obj: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: one byte string per value, so that hashes are reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One hub event about one document; its canonical bytes (``to_bytes``) are a Merkle leaf.

    ``sha256`` is the hex SHA-256 of the document's original bytes; ``document_id`` its DocumentId (empty when
    the input could not be parsed); ``actor`` the OrganId that acted (sender, reporter) or ``"hub"``; ``time``
    an aware instant (stored in UTC to the microsecond); ``verdict`` the outcome (an indication, reason code or
    status code); ``detail`` extra string facts (recipient, report hash...).
    """

    kind: EventKind
    sha256: str
    document_id: str
    actor: str
    time: datetime
    verdict: str
    detail: Mapping[str, str] = field(default_factory=dict)
    # The canonical bytes, computed once: the ledger hashes, indexes and stores the same bytes.
    _canonical: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            kind = EventKind(self.kind)
        except ValueError as exc:
            raise LedgerError(f"unknown event kind {self.kind!r}") from exc
        if not isinstance(self.sha256, str) or not is_hex64(self.sha256):
            raise LedgerError(f"sha256 must be 64 lowercase hex digits, not {self.sha256!r}")
        for name in ("document_id", "actor", "verdict"):
            if not isinstance(getattr(self, name), str):
                raise LedgerError(f"{name} must be a string")
        if not self.actor:
            raise LedgerError("an event needs an actor (an OrganId or 'hub')")
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise LedgerError("an event time must be an aware datetime")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.detail.items()):
            raise LedgerError("event detail maps strings to strings")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "detail", MappingProxyType(dict(sorted(self.detail.items()))))

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (what ``to_bytes`` serialises)."""
        return {
            "v": _EVENT_VERSION,
            "kind": self.kind.value,
            "sha256": self.sha256,
            "doc_id": self.document_id,
            "actor": self.actor,
            "time": _format_time(self.time),
            "verdict": self.verdict,
            "detail": dict(self.detail),
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes: the Merkle leaf."""
        if self._canonical is None:
            object.__setattr__(self, "_canonical", _canonical_json(self.to_json()))
        assert self._canonical is not None  # set just above
        return self._canonical

    def leaf_hash(self) -> bytes:
        """The RFC 9162 leaf hash of ``to_bytes()``."""
        return merkle.leaf_hash(self.to_bytes())

    @classmethod
    def from_json(cls, obj: object) -> LedgerEvent:
        """Rebuild an event from its JSON object; ``LedgerError`` if any field is missing, extra or wrong."""
        if not isinstance(obj, dict):
            raise LedgerError("an event must be a JSON object")
        expected = {"v", "kind", "sha256", "doc_id", "actor", "time", "verdict", "detail"}
        if set(obj) != expected:
            raise LedgerError(f"event fields must be exactly {sorted(expected)}, got {sorted(obj)}")
        if obj["v"] != _EVENT_VERSION:
            raise LedgerError(f"unsupported event version {obj['v']!r}")
        detail = obj["detail"]
        if not isinstance(detail, dict):
            raise LedgerError("event detail must be an object")
        return cls(
            kind=obj["kind"],
            sha256=obj["sha256"],
            document_id=obj["doc_id"],
            actor=obj["actor"],
            time=_parse_time(obj["time"], "event time"),
            verdict=obj["verdict"],
            detail=detail,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LedgerEvent:
        """Parse canonical event bytes; non-canonical bytes are refused (a leaf has exactly one encoding)."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise LedgerError(f"not a JSON event: {exc}") from exc
        event = cls.from_json(obj)
        if event.to_bytes() != data:
            raise LedgerError("the event is not in canonical form (sorted keys, no spaces, UTF-8)")
        return event


def format_time(when: datetime) -> str:
    """An instant as the ledger writes it: UTC to the microsecond, ``Z``."""
    return _format_time(when)


def parse_time(text: object, what: str) -> datetime:
    """The instant ``format_time`` wrote; ``LedgerError`` naming ``what`` otherwise."""
    return _parse_time(text, what)


def canonical_json(obj: object) -> bytes:
    """Sorted keys, no spaces, UTF-8."""
    return _canonical_json(obj)


# --- records of the lienthong.ledger topic ------------------------------------------------------------------


def encode_ledger_record(events: Sequence[LedgerEvent], receipts: Sequence[bytes] = ()) -> bytes:
    """One ``lienthong.ledger`` record: a document's events and the receipts they name (canonical JSON texts)."""
    return _canonical_json(
        {
            "format": _RECORD_FORMAT,
            "events": [e.to_bytes().decode() for e in events],
            "receipts": [r.decode() for r in receipts],
        }
    )


def decode_ledger_record(value: bytes) -> tuple[list[LedgerEvent], list[bytes]]:
    """The events and receipts of a ``lienthong.ledger`` record (also the older list of events alone).

    ``LedgerError`` when the record is not one the hub writes.
    """
    try:
        obj: Any = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise LedgerError(f"not a ledger record: {exc}") from exc
    lines: object
    receipts: object
    if isinstance(obj, list):  # written before receipts travelled with their events
        lines, receipts = obj, []
    elif isinstance(obj, dict) and obj.get("format") == _RECORD_FORMAT:
        lines, receipts = obj.get("events"), obj.get("receipts")
    else:
        raise LedgerError("not a ledger record (a list of events, or an object with events and receipts)")
    if not isinstance(lines, list) or not isinstance(receipts, list):
        raise LedgerError("a ledger record holds lists of events and receipts")
    if not all(isinstance(x, str) for x in (*lines, *receipts)):
        raise LedgerError("events and receipts travel as JSON texts")
    receipt_bytes = [r.encode() for r in receipts]
    if any(b"\n" in r for r in receipt_bytes):
        raise LedgerError("a receipt is one line of canonical JSON")
    return [LedgerEvent.from_bytes(line.encode()) for line in lines], receipt_bytes
