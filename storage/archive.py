"""The archive: original bytes, the hub's receipt for each (verification report and facts), and their ledger events.

For each received document the archive

1. stores the original bytes once, create-only, under the key the caller names (default ``originals/<sha256>``)
   with metadata (sender, DocumentId, received-at, indication);
2. makes a *receipt*: canonical JSON with the sender, DocumentId, times, the reject reason and the full
   verification report, including what an offline verifier needs and ``to_json`` leaves out: the DER of every
   chain certificate and of every CRL and OCSP response used (base64), and the verdict on each signed PDF
   attachment (``pdf_signatures``: signer, signing times, coverage, indication; ``signer.pdf``);
3. derives the ledger events ``received``, ``verified`` or ``rejected`` (naming the receipt's SHA-256, so that the
   ledger covers the report too), and ``archived`` (naming the original's key).

The receipt is not a separate object: it travels with its events (one ``lienthong.ledger`` record) and is stored
in the ledger segment that holds them, so a document costs one object write. Receipts written by earlier versions
under ``reports/<sha256>.json`` are still read (``report_key``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography import x509

from schemas.errors import HubError
from signer.pdf import PdfReport
from signer.report import VerificationReport
from storage.ledger import HUB_ACTOR, EventKind, LedgerEvent
from storage.objectstore import ObjectExists, ObjectStore, original_key
from storage.objectstore import original_key as _original_key

__all__ = [
    "DEFAULT_MAX_INLINE_RECEIPT",
    "RECEIPTS_PREFIX",
    "RECEIPT_FORMAT",
    "REPORTS_PREFIX",
    "UNKNOWN_SENDER",
    "Archive",
    "ArchiveRecord",
    "EventSink",
    "Receipt",
    "ReceiptError",
    "StoredReport",
    "receipt_events",
    "receipt_key",
    "report_key",
    "report_to_json",
]

REPORTS_PREFIX = "reports/"
RECEIPTS_PREFIX = "receipts/"
#: Receipts up to this size travel inside the ledger record (Kafka's default limit is 1 MB a record); larger ones
#: (a CA's CRL of several MB) are stored as their own object, addressed by their SHA-256.
DEFAULT_MAX_INLINE_RECEIPT = 256 * 1024
RECEIPT_FORMAT = "lienthong-receipt-v1"
#: The actor recorded when the sender of unparseable input is not known.
UNKNOWN_SENDER = "unknown"


def report_key(sha256_hex: str) -> str:
    """Where earlier versions stored the receipt of an original: ``reports/<sha256 hex>.json`` (read, never written)."""
    return f"{REPORTS_PREFIX}{sha256_hex}.json"


def receipt_key(receipt_sha256: str) -> str:
    """Where a receipt too large to travel in the ledger is stored: ``receipts/<its own SHA-256>.json``."""
    return f"{RECEIPTS_PREFIX}{receipt_sha256}.json"


class ReceiptError(HubError):
    """A stored receipt cannot be read (malformed, or not for the document it is stored under)."""


class EventSink(Protocol):
    """Where events go: the ``Ledger`` itself, or a producer to the ``lienthong.ledger`` topic."""

    def append_many(self, events: Sequence[LedgerEvent], *, receipts: Sequence[bytes] = ()) -> object:
        """Append the events in order, with the receipts they name."""
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def report_to_json(report: VerificationReport) -> dict[str, Any]:
    """``report.to_json()`` plus the DER an offline verifier needs: chain certificates, CRLs, OCSP responses.

    ``pdf_revocation`` adds those the PDF attachments' signers were judged with (``StoredReport`` reads both).
    """
    out = report.to_json()
    signer = report.signer
    if signer is not None:
        out["signer"] = {
            **out["signer"],
            "spki_sha256": signer.spki_sha256,
            "cert_sha256": signer.cert_sha256,
            "serial": format(signer.serial, "x"),
            "not_before": _time(signer.not_before),
            "not_after": _time(signer.not_after),
        }
    out["chain_der"] = [_b64(der) for der in report.chain_der]
    out["revocation"] = [
        {
            "subject": r.cert_subject,
            "source": r.source,
            "status": r.status,
            "cached": r.cached,
            "produced_at": _time(r.produced_at),
            "this_update": _time(r.this_update),
            "next_update": _time(r.next_update),
            "revoked_at": _time(r.revoked_at),
            "responder": r.responder,
            "der": _b64(r.der),
        }
        for r in report.revocation
    ]
    # The PDF signers' CRLs and OCSP answers that the XML signature's evidence does not already hold.
    held = {r.der for r in report.revocation}
    extra = {a.der: a.source for pdf in report.pdfs or () for a in pdf.evidence if a.der not in held}
    if extra:
        out["pdf_revocation"] = [{"source": source, "der": _b64(der)} for der, source in extra.items()]
    return out


@dataclass(frozen=True, slots=True)
class StoredReport:
    """What a receipt says the hub's verification found, with the evidence an auditor re-checks it with."""

    indication: str
    subindication: str | None
    errors: tuple[str, ...]
    chain_der: tuple[bytes, ...]
    crls_der: tuple[bytes, ...]
    ocsp_der: tuple[bytes, ...]
    validation_time: datetime | None
    signed_bytes_sha256: str
    #: The PDF attachments' verdicts; None when they were not checked (or the receipt predates them).
    pdfs: tuple[PdfReport, ...] | None = None

    @property
    def verdict(self) -> str:
        """``INDICATION`` or ``INDICATION/SUBINDICATION``."""
        return self.indication + (f"/{self.subindication}" if self.subindication else "")

    def chain(self) -> list[x509.Certificate]:
        """The chain certificates, parsed (ReceiptError if one is not a certificate)."""
        try:
            return [x509.load_der_x509_certificate(der) for der in self.chain_der]
        except ValueError as exc:
            raise ReceiptError(f"a chain certificate in the report cannot be parsed: {exc}") from exc

    def crls(self) -> list[x509.CertificateRevocationList]:
        """The CRLs used, parsed (ReceiptError if one is not a CRL)."""
        try:
            return [x509.load_der_x509_crl(der) for der in self.crls_der]
        except ValueError as exc:
            raise ReceiptError(f"a CRL in the report cannot be parsed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Receipt:
    """The hub's record of one original: who sent it, when, what verification said, why it was rejected."""

    sha256: str
    document_id: str
    sender: str
    received_at: datetime
    archived_at: datetime
    reason: str | None
    report: StoredReport | None

    @property
    def passed(self) -> bool:
        """Whether the hub accepted the document (a TOTAL_PASSED report and no reject reason)."""
        return self.reason is None and self.report is not None and self.report.indication == "TOTAL_PASSED"

    @property
    def verdict(self) -> str:
        """What the ``verified``/``rejected`` event records: the reason code, else the report's verdict."""
        if self.reason is not None:
            return self.reason
        return self.report.verdict if self.report is not None else "REJECTED"

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        """Parse a stored receipt; ReceiptError naming the field when it is malformed."""
        try:
            obj = json.loads(data.decode("utf-8"))
            return _receipt_from_json(obj)
        except ReceiptError:
            raise
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ReceiptError(f"not a JSON receipt: {exc}") from exc
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ReceiptError(f"malformed receipt: {type(exc).__name__}: {exc}") from exc


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ReceiptError("a time must be an ISO-8601 string")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ReceiptError(f"time {value!r} has no offset")
    return when.astimezone(UTC)


def _pdfs_from_json(value: object) -> tuple[PdfReport, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ReceiptError("pdf_signatures must be a list")
    return tuple(PdfReport.from_json(item) for item in value)


def _receipt_from_json(obj: Any) -> Receipt:
    if not isinstance(obj, dict) or obj.get("format") != RECEIPT_FORMAT:
        raise ReceiptError(f"not a {RECEIPT_FORMAT} object")
    raw = obj["report"]
    report = None
    if raw is not None:
        revocation = [*raw["revocation"], *raw.get("pdf_revocation", [])]
        validation_time = raw.get("validation_time")
        report = StoredReport(
            indication=str(raw["indication"]),
            subindication=None if raw["subindication"] is None else str(raw["subindication"]),
            errors=tuple(str(e) for e in raw["errors"]),
            chain_der=tuple(base64.b64decode(d, validate=True) for d in raw["chain_der"]),
            crls_der=tuple(base64.b64decode(r["der"], validate=True) for r in revocation if r["source"] == "crl"),
            ocsp_der=tuple(base64.b64decode(r["der"], validate=True) for r in revocation if r["source"] == "ocsp"),
            validation_time=None if validation_time is None else _parse_time(validation_time),
            signed_bytes_sha256=str(raw["signed_bytes_sha256"]),
            pdfs=_pdfs_from_json(raw.get("pdf_signatures")),
        )
    reason = obj["reason"]
    return Receipt(
        sha256=str(obj["sha256"]),
        document_id=str(obj["doc_id"]),
        sender=str(obj["sender"]),
        received_at=_parse_time(obj["received_at"]),
        archived_at=_parse_time(obj["archived_at"]),
        reason=None if reason is None else str(reason),
        report=report,
    )


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """What ``Archive.store`` made: the original's key, the receipt (bytes and SHA-256) and the events to append."""

    sha256: str
    document_id: str
    original_key: str
    receipt: bytes
    receipt_sha256: str
    events: tuple[LedgerEvent, ...]


class Archive:
    """Stores originals in ``store``, makes their receipts, and records both in ``ledger``.

    ``clock`` gives the archive time of a recording; inject a fixed one in tests.
    """

    def __init__(self, store: ObjectStore, ledger: EventSink, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._store = store
        self._ledger = ledger
        self._clock = clock

    def record(
        self,
        original: bytes,
        report: VerificationReport | None,
        *,
        sender: str,
        doc_id: str,
        received_at: datetime,
        reason: str | None = None,
    ) -> ArchiveRecord:
        """Archive one received document with the hub's verdict on it, and append its events with the receipt.

        ``report`` is None when the input never reached signature verification (e.g. not edXML); ``reason``
        is the reject reason code when the hub refused the document (status 02 text).
        """
        stored = self.store(original, report, sender=sender, doc_id=doc_id, received_at=received_at, reason=reason)
        self._ledger.append_many(stored.events, receipts=self.carried_receipts(stored))
        return stored

    def store(
        self,
        original: bytes,
        report: VerificationReport | None,
        *,
        sender: str,
        doc_id: str,
        received_at: datetime,
        reason: str | None = None,
        key: str | None = None,
    ) -> ArchiveRecord:
        """Store the original under ``key`` (default ``originals/<sha256>``) and return receipt and events.

        The write is create-only: bytes already stored under that key stay (the same content, by its address). For
        a pipeline whose ledger writer is elsewhere (the ``lienthong.ledger`` consumer): send
        ``ArchiveRecord.events`` and ``receipt`` there once the original is stored.
        """
        sha256 = hashlib.sha256(original).hexdigest()
        key = key or original_key(sha256)
        indication = report.indication.value if report is not None else (reason or "REJECTED")
        metadata = {
            "sender": sender,
            "doc-id": doc_id,
            "received-at": received_at.astimezone(UTC).isoformat(),
            "indication": indication,
        }
        with contextlib.suppress(ObjectExists):
            self._store.put(key, original, metadata=metadata)
        return self.receipt_for(
            original, report, sender=sender, doc_id=doc_id, received_at=received_at, reason=reason, key=key
        )

    def receipt_for(
        self,
        original: bytes,
        report: VerificationReport | None,
        *,
        sender: str,
        doc_id: str,
        received_at: datetime,
        reason: str | None = None,
        key: str | None = None,
        sha256: str | None = None,
    ) -> ArchiveRecord:
        """The receipt and events of an original already stored under ``key`` (no I/O).

        ``sha256``: the original's, when the caller streamed it and holds no bytes (``original`` is then ignored).
        """
        if received_at.tzinfo is None:
            raise HubError("received_at must be an aware datetime")
        sha256 = sha256 or hashlib.sha256(original).hexdigest()
        key = key or original_key(sha256)
        receipt_bytes = _canonical(
            {
                "format": RECEIPT_FORMAT,
                "sha256": sha256,
                "doc_id": doc_id,
                "sender": sender,
                "received_at": _time(received_at),
                "archived_at": _time(self._clock()),
                "reason": reason,
                "report": report_to_json(report) if report is not None else None,
            }
        )
        receipt = Receipt.from_bytes(receipt_bytes)
        receipt_sha256 = hashlib.sha256(receipt_bytes).hexdigest()
        return ArchiveRecord(
            sha256=sha256,
            document_id=receipt.document_id,
            original_key=key,
            receipt=receipt_bytes,
            receipt_sha256=receipt_sha256,
            events=receipt_events(receipt, receipt_sha256, original_key=key),
        )

    def carried_receipts(
        self, record: ArchiveRecord, *, max_inline: int = DEFAULT_MAX_INLINE_RECEIPT
    ) -> tuple[bytes, ...]:
        """The receipts to send with the events: the receipt itself, or none once a large one is stored apart."""
        if len(record.receipt) <= max_inline:
            return (record.receipt,)
        with contextlib.suppress(ObjectExists):  # content-addressed: the same bytes are already there
            self._store.put(receipt_key(record.receipt_sha256), record.receipt)
        return ()

    def delivered(self, sha256: str, doc_id: str, recipient: str, *, at: datetime | None = None) -> LedgerEvent:
        """Record that the document went to ``recipient`` (an OrganId, or the national axis) at ``at``."""
        event = LedgerEvent(
            kind=EventKind.DELIVERED,
            sha256=sha256,
            document_id=doc_id,
            actor=HUB_ACTOR,
            time=at or self._clock(),
            verdict="delivered",
            detail={"recipient": recipient},
        )
        self._ledger.append_many([event])
        return event

    def status_relayed(
        self,
        status_sha256: str,
        doc_id: str,
        *,
        reporter: str,
        recipient: str,
        status_code: str,
        at: datetime | None = None,
    ) -> LedgerEvent:
        """Record that ``reporter`` sent status ``status_code`` about document ``doc_id`` and it went to ``recipient``.

        The event names the status message's own SHA-256 and the DocumentId of the document it is about, so an
        export of that document finds it.
        """
        event = LedgerEvent(
            kind=EventKind.STATUS_RELAYED,
            sha256=status_sha256,
            document_id=doc_id,
            actor=reporter,
            time=at or self._clock(),
            verdict=status_code,
            detail={"recipient": recipient},
        )
        self._ledger.append_many([event])
        return event


def receipt_events(
    receipt: Receipt, receipt_sha256: str, *, original_key: str | None = None
) -> tuple[LedgerEvent, ...]:
    """The events a receipt stands for: received, verified or rejected (naming the receipt), archived (its key).

    ``original_key`` is where the original is stored (default ``originals/<sha256>``).
    """
    detail: Mapping[str, str] = {"receipt_sha256": receipt_sha256}
    if receipt.reason is not None:
        detail = {**detail, "reason": receipt.reason}
    judged_at = receipt.report.validation_time if receipt.report is not None else None
    return (
        LedgerEvent(
            kind=EventKind.RECEIVED,
            sha256=receipt.sha256,
            document_id=receipt.document_id,
            actor=receipt.sender or UNKNOWN_SENDER,
            time=receipt.received_at,
            verdict="received",
        ),
        LedgerEvent(
            kind=EventKind.VERIFIED if receipt.passed else EventKind.REJECTED,
            sha256=receipt.sha256,
            document_id=receipt.document_id,
            actor=HUB_ACTOR,
            time=judged_at or receipt.received_at,
            verdict=receipt.verdict,
            detail=detail,
        ),
        LedgerEvent(
            kind=EventKind.ARCHIVED,
            sha256=receipt.sha256,
            document_id=receipt.document_id,
            actor=HUB_ACTOR,
            time=receipt.archived_at,
            verdict="stored",
            detail={"key": original_key or _original_key(receipt.sha256)},
        ),
    )
