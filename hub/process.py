"""What the hub does with one inbound record: intake, dedup, verify, archive, route. No Kafka here.

``DocumentProcessor.process`` takes an ``InboundRecord`` and returns an ``Outcome``: the records to produce (the
original bytes to each recipient's inbox or the axis, the hub's transport status to the sender, a dead letter) and
the ledger record (the events with the receipt they name). The caller (the faust agent in ``hub.app``) produces
them all, each once per input record, so that a crash at any point leads to a retry, never to a loss.

Dedup costs no read: an accepted document's original is written create-only (``If-None-Match: *``) under
``documents/<SHA-256 of its DocumentId>/<SHA-256>.xml`` (``document_key``), and that write is the check. "Already
there" is a duplicate, unless the object's ``source`` metadata is this very input record (a replay after a crash,
which goes on with the first attempt's received-at time). Two copies at once, on any workers, cannot both create it.
Documents are verified before that write, so a refused document never blocks a corrected resend; a refusal checks
(one HEAD, off the happy path) whether the same document was already delivered, and then answers DUPLICATE as before.

Every refusal is a ``DocumentRejected`` with a stable reason code (the dead-letter header and the text of the
status 02 the sender receives) and problems naming the element path or certificate at fault. Besides the signature
and the directory's pin: a certificate that names an OrganId must name From/OrganId (CERT_ORGAN_MISMATCH), and a
status is relayed only from whom may send it about its document (STATUS_NOT_ALLOWED, ``_status_targets``).

A claim check above ``claim_check_bytes`` (a large document, deposited under ``claims/`` through the VXP facade) is
never held whole: the object streams from S3 in 1 MiB reads once, through ``scan`` with the signature's reference
digest as its sink, its size and SHA-256 checked on the way (missing, truncated or altered: BAD_CLAIM_CHECK, a 02 to
the sender); the skeleton is then parsed (``parse_scanned``) and verified (``verify_scanned``) without another read,
unless the Signature follows more text than the digest sink holds. A PDF attachment is checked by reading the
document whole once more, up to ``PDF_CHECK_MAX_DOCUMENT_BYTES``. The original is archived by a server-side copy
(create-only, as any original) and delivered as a claim check to that copy. Deposits are create-only and
content-addressed, so the bytes verified are those hashed. The lane of such a document is read from the Priority in
its first 64 KB. Smaller claim checks take the whole-bytes path as before.

A signature that cannot be validated for lack of current revocation data (INDETERMINATE / TRY_LATER) is not refused:
the document is held on ``lienthong.work.retry`` and tried again, and refused (REVOCATION_UNAVAILABLE) only after the
deadline (``hub.hold``). Each verified chain is shown to the revocation service (``observe``), which fetches the CRLs
of CAs it has not seen yet.

Documents from the national axis (``lienthong-origin: axis``, set by the intake for ``lienthong.axis.inbound``) have
no outbox owner: their sender is From/OrganId, which must not be a local agency (SENDER_MISMATCH). A sender the
directory does not know needs no pin (its certificate must still chain to the anchors and pass revocation); one it
knows keeps its pins. They are delivered to local recipients only (the axis itself serves the others), are answered
by the axis's own receipt rather than a hub 01, and a refused document's 02 goes back through the axis.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.directory import Directory, Route
from hub.hold import REVOCATION_UNAVAILABLE, Hold, is_try_later, unavailable_certificate
from hub.ledger_mac import ledger_output
from hub.records import (
    AXIS_OUTBOUND,
    CLAIM_CHECK_MAGIC,
    DEADLETTER,
    H_DOC_ID,
    H_ERROR,
    H_INDICATION,
    H_ORIGIN,
    H_REASON,
    H_RECEIVED_AT,
    H_SENDER,
    H_SHA256,
    H_SOURCE,
    ORIGIN_AXIS,
    WORK_BULK,
    WORK_URGENT,
    ClaimCheck,
    Headers,
    InboundRecord,
    OutboundRecord,
    inbox_topic,
    status_topic,
)
from hub.settings import HubSettings
from schemas import build_status, document_id_for, parse, priority_of
from schemas._checks import VIETNAM_TZ
from schemas._parse import parse_scanned
from schemas._stream import Scan, scan
from schemas.errors import DocumentRejected, Problem
from schemas.model import Attachment, Edoc, Organization, ParsedDocument, ResponseFor, StatusMessage
from signer._stream_c14n import ReferenceDigest
from signer.keys import SigningKey
from signer.pdf import (
    PDF_SIGNATURE_TRY_LATER,
    PDF_SIGNATURE_UNCHECKED,
    PdfPolicy,
    is_pdf_attachment,
    pdf_policy_problem,
)
from signer.report import VerificationReport
from signer.sign import sign_document
from signer.verify import Verifier
from storage.archive import Archive
from storage.ledger import EventKind, LedgerEvent
from storage.objectstore import ObjectExists, ObjectNotFound, ObjectStore, original_key

__all__ = [
    "DEFAULT_URGENT_PRIORITY",
    "DOCUMENTS_PREFIX",
    "DocumentProcessor",
    "Outcome",
    "document_index_key",
    "document_key",
    "from_axis",
    "hub_status",
    "transport_status",
]

#: Priority 3 (hỏa tốc) and 4 (hỏa tốc hẹn giờ) take the urgent lane.
DEFAULT_URGENT_PRIORITY = 3
_REJECTED_STATUS = "02"
_RECEIVED_STATUS = "01"
_RECALL_REQUESTED = "13"
_HEADER_PATH = "/edXML/edXMLEnvelope/edXMLHeader"
_FROM_PATH = f"{_HEADER_PATH}/MessageHeader/From/OrganId"
_RESPONSE_FOR_PATH = f"{_HEADER_PATH}/MessageHeader/ResponseFor/DocumentId"
_STATUS_CODE_PATH = f"{_HEADER_PATH}/MessageHeader/StatusCode"
_SIGNATURE_PATH = f"{_HEADER_PATH}/Signature"
_ATTACHMENT_PATH = "AttachmentEncoded/Attachment"  # where it sits depends on the dialect; its place is what counts
_MAX_ERROR_HEADER = 2000  # characters of problems in the dead-letter header; the full list is in the ledger


DOCUMENTS_PREFIX = "documents/"
#: Recipients are kept in the original's metadata up to this many characters (S3 allows 2 KB of metadata in all);
#: beyond it a revocation reads them from the original itself.
_MAX_RECIPIENTS_METADATA = 1024
#: Where senders deposit claim-checked documents (``claims/<OrganId>/<sha256>``, written through the VXP facade):
#: the only objects a claim check may point at.
CLAIMS_PREFIX = "claims/"
#: A claim-checked document's lane is read from this much of its head (the Priority is in the header).
_PRIORITY_HEAD = 64 * 1024
_PRIORITY = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Priority>\s*([0-4])\s*</")
_CHUNK = 1024 * 1024  # bytes per read of a streamed claim-checked object
#: Documents up to this size have their PDF attachments' signatures checked even when streamed (read whole once
#: for that step); larger ones are reported unchecked, and refused under ``pdf_signatures: require``.
PDF_CHECK_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


def _document_prefix(document_id: str) -> str:
    return f"{DOCUMENTS_PREFIX}{hashlib.sha256(document_id.encode()).hexdigest()}/"


def document_key(document_id: str, sha256: str) -> str:
    """Where the hub keeps an original it accepted: by DocumentId (hashed: it contains '/'), then content.

    Its create-only write is the dedup check; listing by DocumentId finds the recipients of a revoked document.
    """
    return f"{_document_prefix(document_id)}{sha256}.xml"


def from_axis(record: InboundRecord) -> bool:
    """Whether ``record`` arrived through the national axis (the intake's ``lienthong-origin`` header says so)."""
    return record.header(H_ORIGIN) == ORIGIN_AXIS


def hub_status(  # noqa: PLR0917 - the fields of a status message, in their order
    seal: SigningKey, hub_organ_id: str, response_for: ResponseFor, code: str, description: str, at: datetime
) -> bytes:
    """A status from the hub itself (01 received/forwarded, 02 refused), signed with the hub's seal key."""
    status = StatusMessage(
        sender=Organization(organ_id=hub_organ_id, organ_name="Nền tảng tích hợp lienthong"),
        response_for=response_for,
        status_code=code,
        timestamp=at.astimezone(VIETNAM_TZ),
        description=description,
    )
    return sign_document(build_status(status, check=False), seal)


def transport_status(  # noqa: PLR0917 - as hub_status, with the document answered
    seal: SigningKey, hub_organ_id: str, edoc: Edoc, code: str, description: str, at: datetime
) -> bytes:
    """The hub's status ``code`` about ``edoc``, to its sender (``hub_status`` naming that document)."""
    response_for = ResponseFor.answering(edoc)
    return hub_status(seal, hub_organ_id, response_for, code, description, at)


def document_index_key(document_id: str, sha256: str) -> str:
    """Where earlier versions wrote an index entry of a delivered document (read for revocations, never written)."""
    return f"{_document_prefix(document_id)}{sha256}.json"


@dataclass(frozen=True)
class Outcome:
    """The result of processing one record, for the caller to carry out in order."""

    outcome: str  # delivered | rejected | duplicate | relayed | held (hub.hold)
    sha256: str
    document_id: str = ""
    sender: str = ""
    reason: str = ""
    records: tuple[OutboundRecord, ...] = ()
    events: tuple[LedgerEvent, ...] = ()
    receipts: tuple[bytes, ...] = ()  # the receipts the events name, stored with them in the ledger
    recipients: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = field(default=())
    warnings: tuple[Problem, ...] = ()  # field quirks of an accepted document (README, "Field quirks")
    status_code: str = ""  # a relayed status's StatusCode (per-agency metrics)

    def ledger_record(self, mac_key: bytes) -> OutboundRecord | None:
        """The ``lienthong.ledger`` record of the events and receipts, produced like any other output (or None).

        It carries the workers' MAC (``hub.ledger_mac``): the ledger writer appends no record without it.
        """
        if not self.events:
            return None
        return ledger_output(mac_key, self.events, self.receipts)


class _NoSink:
    """The archive's events travel through ``lienthong.ledger``; the processor never appends directly."""

    def append_many(self, events: Sequence[LedgerEvent], *, receipts: Sequence[bytes] = ()) -> object:
        """Refuse: a programming error if reached."""
        raise AssertionError(events, receipts)


_NO_SINK = _NoSink()


@dataclass(frozen=True)
class _Accepted:
    data: bytes  # empty for a streamed claim check: its bytes stay in the store
    sha256: str
    parsed: ParsedDocument
    claim: ClaimCheck | None = None  # a large claim-checked document, streamed from the store, never held whole
    #: The claim's one streamed read: its skeleton and the signature's reference digest, taken while it was parsed.
    scanned: tuple[Scan, ReferenceDigest] | None = None


class DocumentProcessor:
    """The hub's stages for one record, with the verifier, directory, store and seal key it needs."""

    def __init__(
        self,
        *,
        settings: HubSettings,
        store: ObjectStore,
        verifier: Verifier,
        directory: Callable[[], Directory],
        seal: SigningKey,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Callable[[Sequence[bytes]], None] | None = None,
    ) -> None:
        self._settings = settings
        self._observe = observe  # each verified chain (DER, leaf first): the revocation service learns its CAs
        self._store = store
        self._verifier = verifier
        # Senders reached through the axis and absent from the directory have no pins; everything else still applies.
        self._unpinned_verifier = Verifier(dataclasses.replace(verifier.policy, pins=None))
        self._directory = directory
        self._seal = seal
        self._clock = clock
        self._archive = Archive(store, _NO_SINK, clock=clock)

    # --- intake ----------------------------------------------------------------------------------------------

    def read_value(self, record: InboundRecord) -> bytes:
        """The document bytes: the record value, or the object a claim check points at (SHA-256 checked)."""
        value = record.value or b""
        if not value:
            raise DocumentRejected("EMPTY", [Problem("", "the record has no value (0 bytes)")])
        if value.startswith(CLAIM_CHECK_MAGIC):
            check = self._claim_check(value)
            try:
                value = self._store.get(check.key)
            except ObjectNotFound as exc:
                raise DocumentRejected("BAD_CLAIM_CHECK", [Problem("", f"no object {check.key!r}")]) from exc
            if hashlib.sha256(value).hexdigest() != check.sha256:
                problem = Problem("", f"object {check.key!r} does not have the SHA-256 the claim check names")
                raise DocumentRejected("BAD_CLAIM_CHECK", [problem])
        if len(value) > self._settings.max_document_bytes:
            raise _too_large(len(value), self._settings.max_document_bytes)
        return value

    def _claim_check(self, value: bytes) -> ClaimCheck:
        """The claim check in ``value``, refused when it points outside ``claims/`` or announces too many bytes."""
        check = ClaimCheck.from_bytes(value)
        if not check.key.startswith(CLAIMS_PREFIX):
            problem = Problem("", f"key {check.key!r} is not under {CLAIMS_PREFIX!r}, where senders deposit documents")
            raise DocumentRejected("BAD_CLAIM_CHECK", [problem])
        if check.size > self._settings.max_document_bytes:
            raise _too_large(check.size, self._settings.max_document_bytes)
        return check

    def _streamed_claim(self, record: InboundRecord) -> ClaimCheck | None:
        """The claim check of ``record`` when it is large enough to stream (None: today's whole-bytes path)."""
        value = record.value or b""
        if not value.startswith(CLAIM_CHECK_MAGIC):
            return None
        check = self._claim_check(value)
        return check if check.size > self._settings.claim_check_bytes else None

    def _object_chunks(self, key: str) -> Iterator[bytes]:
        """The object under ``key`` in chunks of ``_CHUNK`` bytes (a streamed GET: never whole in memory)."""
        with self._store.open(key) as stream:
            while chunk := stream.read(_CHUNK):
                yield chunk

    def _parse_claim(self, check: ClaimCheck) -> tuple[ParsedDocument, Scan, ReferenceDigest]:
        """Parse a claim-checked object as it streams from the store, its size and SHA-256 checked on the way.

        The same read digests what the signature's reference covers (``ReferenceDigest``), so that verification
        needs no second read. A missing, truncated (size differs) or altered (SHA-256 differs) object is
        BAD_CLAIM_CHECK, whatever the parser would have said of its bytes: the claim check, not the document, is at
        fault.
        """
        try:
            size = self._store.stat(check.key).size
        except ObjectNotFound as exc:
            raise DocumentRejected("BAD_CLAIM_CHECK", [Problem("", f"no object {check.key!r}")]) from exc
        if size != check.size:
            problem = Problem("", f"object {check.key!r} has {size} bytes, the claim check names {check.size}")
            raise DocumentRejected("BAD_CLAIM_CHECK", [problem])
        digest = hashlib.sha256()
        seen = 0

        def hashed() -> Iterator[bytes]:
            nonlocal seen
            for chunk in self._object_chunks(check.key):
                digest.update(chunk)
                seen += len(chunk)
                yield chunk

        chunks = hashed()
        refusal: DocumentRejected | None = None
        parsed = None
        sink = ReferenceDigest()
        try:
            skeleton = scan(chunks, max_bytes=self._settings.max_document_bytes, size=size, sink=sink)
            parsed = parse_scanned(skeleton, strict=self._settings.strict_edxml)
        except DocumentRejected as exc:
            refusal = exc
        for _ in chunks:  # the parser may stop early (a refusal): the rest is hashed all the same
            pass
        if seen != check.size or digest.hexdigest() != check.sha256:
            problem = Problem("", f"object {check.key!r} does not have the SHA-256 the claim check names")
            raise DocumentRejected("BAD_CLAIM_CHECK", [problem])
        if refusal is not None:
            raise refusal
        assert parsed is not None
        return parsed, skeleton, sink

    def _intake(self, record: InboundRecord) -> _Accepted:
        claim = self._streamed_claim(record)
        scanned: tuple[Scan, ReferenceDigest] | None = None
        if claim is not None:
            data = b""
            parsed, skeleton, sink = self._parse_claim(claim)
            scanned = (skeleton, sink)
            sha256 = claim.sha256
        else:
            data = self.read_value(record)
            parsed = parse(data, max_bytes=self._settings.max_document_bytes, strict=self._settings.strict_edxml)
            sha256 = hashlib.sha256(data).hexdigest()
        sender = parsed.message.sender.organ_id
        if from_axis(record):
            agency = self._directory().get(sender)
            if agency is not None and agency.route is Route.LOCAL:
                problem = Problem(_FROM_PATH, f"is {sender}, a local agency, but the document came through the axis")
                raise DocumentRejected("SENDER_MISMATCH", [problem])
            return _Accepted(data, sha256, parsed, claim, scanned)
        key = self._claimed_sender(record)
        if key and key != sender:
            problem = Problem(_FROM_PATH, f"is {sender}, but the document arrived on the outbox of {key}")
            raise DocumentRejected("SENDER_MISMATCH", [problem])
        return _Accepted(data, sha256, parsed, claim, scanned)

    @staticmethod
    def _claimed_sender(record: InboundRecord) -> str:
        """Who sent ``record``: its key, on a work lane the owner of the outbox it arrived on (set by the intake).

        Only that agency may write its outbox (ACLs), so this is the sender Kafka authenticated; From/OrganId must
        equal it. A record from the axis has no such owner (empty).
        """
        if from_axis(record):
            return ""
        return (record.key or b"").decode("utf-8", "replace")

    def lane(self, record: InboundRecord) -> str:
        """The work topic: urgent (Priority ≥ 3) or bulk; anything unreadable goes bulk (and fails there)."""
        try:
            if (claim := self._streamed_claim(record)) is not None:
                priority = self._claim_priority(claim)
            else:
                priority = priority_of(self.read_value(record), max_bytes=self._settings.max_document_bytes)
        except (DocumentRejected, ObjectNotFound):
            return WORK_BULK
        return WORK_URGENT if priority >= DEFAULT_URGENT_PRIORITY else WORK_BULK

    def _claim_priority(self, check: ClaimCheck) -> int:
        """A large claim-checked document's Priority, from its first bytes only (0 when not found there).

        Only the lane depends on it, and any sender may claim any Priority: the full parse judges it later.
        """
        with self._store.open(check.key, length=_PRIORITY_HEAD) as stream:
            head = stream.read(_PRIORITY_HEAD)
        found = _PRIORITY.search(head)
        return int(found.group(1)) if found else 0

    # --- the whole path --------------------------------------------------------------------------------------

    def process(self, record: InboundRecord) -> Outcome:
        """Run every stage on ``record``; a refusal becomes a rejection outcome, never an exception."""
        hold = Hold.of(record)
        received_at = hold.since if hold is not None else self._clock()  # a held document keeps its receipt time
        try:
            accepted = self._intake(record)
        except DocumentRejected as exc:
            return self._reject(record, exc, received_at, sha256=_sha_of(record.value), parsed=None)
        sender = accepted.parsed.message.sender.organ_id
        unpinned = from_axis(record) and self._directory().get(sender) is None
        verifier = self._unpinned_verifier if unpinned else self._verifier
        if accepted.claim is not None and accepted.scanned is not None:
            claim = accepted.claim
            skeleton, sink = accepted.scanned
            reopen = lambda: self._object_chunks(claim.key)  # noqa: E731 - read again only for a late Signature
            report = verifier.verify_scanned(skeleton, sink, reopen, at=received_at, size=claim.size)
        else:
            report = verifier.verify(accepted.data, at=received_at)
        if self._observe is not None:
            self._observe(report.chain_der)  # a new signer's CRL is fetched (TRY_LATER reports carry the chain too)
        if is_try_later(report):
            return self._hold(record, accepted, report, hold or Hold(received_at, 0, received_at))
        if not report.passed:
            reason = (report.subindication or report.indication).value
            problems = [Problem(_SIGNATURE_PATH, e) for e in report.errors]
            refusal = DocumentRejected(reason, problems or [Problem("", reason)])
            return self._refuse(record, accepted, refusal, received_at, report)
        report, stopped = self._check_pdfs(record, accepted, verifier, report, hold, received_at)
        if stopped is not None:
            return stopped
        try:
            _check_certificate_organ(accepted.parsed.message, report)
            return self._route(record, accepted, report, received_at)
        except DocumentRejected as exc:
            return self._refuse(record, accepted, exc, received_at, report)

    def _check_pdfs(  # noqa: PLR0917 - the state of one record's processing, passed on as it is
        self,
        record: InboundRecord,
        accepted: _Accepted,
        verifier: Verifier,
        report: VerificationReport,
        hold: Hold | None,
        received_at: datetime,
    ) -> tuple[VerificationReport, Outcome | None]:
        """The report with the PDF attachments' verdicts, and the hold or refusal they call for (``pdf_signatures``).

        Run once the XML signature passed: a forged document's PDFs are not worth the work.
        """
        attachments = accepted.parsed.message.attachments if isinstance(accepted.parsed.message, Edoc) else ()
        if accepted.claim is not None and any(is_pdf_attachment(a) for a in attachments):
            decoded = self._decoded_attachments(accepted.claim)  # a streamed document's attachments were not kept
            if decoded is None:
                return self._pdfs_unchecked(record, accepted, report, received_at)
            attachments = decoded
        report = verifier.with_pdfs(report, attachments, at=received_at)
        problem = _pdf_problem(attachments, report, self._settings.pdf_signatures)
        if problem is None:
            return report, None
        if problem.reason == PDF_SIGNATURE_TRY_LATER:  # the hub's problem, as for the XML signature's revocation data
            pdf = (_pdf_unavailable_certificate(report), problem)
            return report, self._hold(record, accepted, report, hold or Hold(received_at, 0, received_at), pdf=pdf)
        return report, self._refuse(record, accepted, problem, received_at, report)

    def _decoded_attachments(self, claim: ClaimCheck) -> tuple[Attachment, ...] | None:
        """A streamed document's attachments, decoded, for its PDF check: read whole up to a bound, else None.

        pyHanko checks a PDF in memory, so a document carrying one is read whole once more for this step, but only
        up to ``PDF_CHECK_MAX_DOCUMENT_BYTES``: the worker's memory stays bounded by that, not by the document.
        """
        if claim.size > PDF_CHECK_MAX_DOCUMENT_BYTES:
            return None
        data = self._store.get(claim.key)
        if hashlib.sha256(data).hexdigest() != claim.sha256:  # the object changed since it streamed: not ours to judge
            raise DocumentRejected("BAD_CLAIM_CHECK", [Problem("", f"object {claim.key!r} changed while checked")])
        message = parse(data, max_bytes=self._settings.max_document_bytes, strict=self._settings.strict_edxml).message
        return message.attachments if isinstance(message, Edoc) else ()

    def _pdfs_unchecked(
        self, record: InboundRecord, accepted: _Accepted, report: VerificationReport, received_at: datetime
    ) -> tuple[VerificationReport, Outcome | None]:
        """A document too large for its PDFs to be checked: said in the report, and refused under ``require``."""
        why = (
            f"PDF attachments not checked: the document has {accepted.claim.size if accepted.claim else 0} bytes, "
            f"PDF signatures are checked in documents up to {PDF_CHECK_MAX_DOCUMENT_BYTES}"
        )
        if self._settings.pdf_signatures is not PdfPolicy.REQUIRE:
            return dataclasses.replace(report, warnings=(*report.warnings, why)), None
        refusal = DocumentRejected(PDF_SIGNATURE_UNCHECKED, [Problem(_ATTACHMENT_PATH, why)])
        outcome = self._refuse(record, accepted, refusal, received_at, report)
        return report, outcome

    def internal_error(self, record: InboundRecord, exc: Exception) -> Outcome:
        """A dead letter for a record the hub failed on by its own fault (no status: the sender did nothing wrong)."""
        problem = Problem("", f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_HEADER])
        dead_headers: Headers = (
            *record.headers,
            (H_REASON, b"INTERNAL_ERROR"),
            (H_ERROR, str(problem).encode()),
            (H_SOURCE, record.source.encode()),
            (H_SENDER, record.key or b""),
        )
        return Outcome(
            "rejected",
            _sha_of(record.value),
            reason="INTERNAL_ERROR",
            records=(OutboundRecord(DEADLETTER, record.key, record.value or b"", dead_headers),),
            problems=(problem,),
        )

    # --- routing ---------------------------------------------------------------------------------------------

    def _route(
        self, record: InboundRecord, accepted: _Accepted, report: VerificationReport, received_at: datetime
    ) -> Outcome:
        message = accepted.parsed.message
        sender = message.sender.organ_id
        doc_id = _document_id(message)
        directory = self._directory()
        axis_origin = from_axis(record)
        if directory.get(sender) is None and not axis_origin:
            raise DocumentRejected("UNKNOWN_SENDER", [Problem(_FROM_PATH, f"{sender} is not in the hub's directory")])
        if isinstance(message, StatusMessage):
            targets = self._status_targets(message)
            kind = EventKind.STATUS_RELAYED
        else:
            targets = self._recipients(message)
            kind = EventKind.DELIVERED
        if axis_origin:  # the axis serves every recipient outside this province; sending them back would loop
            known = [t for t in targets if (a := directory.get(t)) is not None and a.route is Route.LOCAL]
            unknown = [] if known else targets
        else:
            known = [t for t in targets if directory.get(t) is not None]
            unknown = [t for t in targets if directory.get(t) is None]
        if not known:
            path = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/" + (
                "ResponseFor/OrganId" if isinstance(message, StatusMessage) else "To/OrganId"
            )
            raise DocumentRejected(
                "UNKNOWN_RECIPIENT", [Problem(path, f"{t} is not in the hub's directory") for t in unknown]
            )
        stored_key = document_key(doc_id, accepted.sha256)
        first_received = self._claim(stored_key, record, accepted, report, received_at, sender=sender, recipients=known)
        if first_received is None:
            return _duplicate(accepted.sha256, doc_id, sender)
        received_at = first_received  # on a replay, the first attempt's: headers, receipt and events agree
        headers: Headers = (
            (H_DOC_ID, doc_id.encode()),
            (H_SHA256, accepted.sha256.encode()),
            (H_INDICATION, report.indication.value.encode()),
            (H_RECEIVED_AT, received_at.isoformat().encode()),
        )
        records = [self._delivery(accepted, stored_key, target, headers) for target in known]
        archived = self._archive.receipt_for(
            accepted.data,
            report,
            sender=sender,
            doc_id=_subject_id(message),
            received_at=received_at,
            key=stored_key,
            sha256=accepted.sha256,
        )
        events = [
            *_noted(archived.events, _input_facts(record, accepted.parsed)),
            *(
                self._event(
                    kind,
                    accepted.sha256,
                    _subject_id(message),
                    "hub",
                    received_at,
                    "sent",
                    recipient=t,
                    route=_route_name(directory, t),
                )
                for t in known
            ),
        ]
        if isinstance(message, Edoc) and not axis_origin:  # the axis's own receipt answers its senders
            note = self._received_note(known, unknown)
            status = self._transport_status(
                _RECEIVED_STATUS if not unknown else _REJECTED_STATUS, message, note, received_at
            )
            records.append(OutboundRecord(status_topic(sender), sender.encode(), status, headers))
        outcome = "relayed" if isinstance(message, StatusMessage) else "delivered"
        return Outcome(
            outcome,
            accepted.sha256,
            doc_id,
            sender,
            records=tuple(records),
            events=tuple(events),
            receipts=self._archive.carried_receipts(archived),
            recipients=tuple(known),
            reason="UNKNOWN_RECIPIENT" if unknown else "",
            warnings=accepted.parsed.warnings,
            status_code=message.status_code if isinstance(message, StatusMessage) else "",
        )

    def _received_note(self, known: Sequence[str], unknown: Sequence[str]) -> str:
        """The text of the 01 at routing time: delivered locally, or queued for the national axis.

        For axis recipients the connector sends a second 01, "forwarded", once the axis has accepted the document.
        """
        directory = self._directory()
        local = [t for t in known if (a := directory.get(t)) is not None and a.route is Route.LOCAL]
        axis = [t for t in known if t not in local]
        note = "Hub lienthong đã nhận và chuyển tới: " + ", ".join(local) if local else "Hub lienthong đã nhận"
        if axis:
            note += "; đang chờ gửi lên Trục liên thông văn bản quốc gia tới: " + ", ".join(axis)
        if unknown:
            note += "; không có trong danh bạ (UNKNOWN_RECIPIENT): " + ", ".join(unknown)
        return note

    def _status_targets(self, status: StatusMessage) -> list[str]:
        """Who gets ``status`` about document D, or STATUS_NOT_ALLOWED when its sender may not say it.

        Progress (01–06) and recall answers (15/16), every code the parser knows but 13, come from an agency D was
        delivered to and go to D's sender; a recall request (13) comes from D's sender and goes to every agency D
        was delivered to. D's sender and recipients are those of the originals this hub stored: a status about a
        document it never handled is refused (documents from the axis are stored like any other, so statuses about
        them pass the same way).
        """
        about = status.response_for
        by = status.sender.organ_id
        recipients = self.original_recipients(about.document_id, sender=about.organ_id)
        if status.status_code == _RECALL_REQUESTED:
            if by != about.organ_id:
                problem = f"only the sender of {about.document_id} ({about.organ_id}) may request its recall"
                raise DocumentRejected("STATUS_NOT_ALLOWED", [Problem(_STATUS_CODE_PATH, problem)])
            if not recipients:
                problem = f"{about.document_id} from {about.organ_id} was never delivered by this hub"
                raise DocumentRejected("STATUS_NOT_ALLOWED", [Problem(_RESPONSE_FOR_PATH, problem)])
            return [r for r in dict.fromkeys(recipients) if r != by]
        if by not in recipients:
            problem = f"{by} did not receive {about.document_id} from {about.organ_id} through this hub"
            raise DocumentRejected("STATUS_NOT_ALLOWED", [Problem(_FROM_PATH, problem)])
        return [about.organ_id]

    def _delivery(self, accepted: _Accepted, stored_key: str, target: str, headers: Headers) -> OutboundRecord:
        """The record that takes the document to ``target``: its inbox, or the axis (a claim check when large)."""
        message = accepted.parsed.message
        agency = self._directory().get(target)
        assert agency is not None  # routing only delivers to agencies in the directory
        if isinstance(message, StatusMessage):
            topic = status_topic(target) if agency.route is Route.LOCAL else AXIS_OUTBOUND
        else:
            topic = inbox_topic(target) if agency.route is Route.LOCAL else AXIS_OUTBOUND
        key = target.encode() if topic == AXIS_OUTBOUND else message.sender.organ_id.encode()
        value = accepted.data
        if accepted.claim is not None:  # to the archived copy: the sender's deposit is not the hub's to keep
            value = ClaimCheck(stored_key, accepted.sha256, accepted.claim.size).to_bytes()
        elif len(value) > self._settings.claim_check_bytes:
            value = ClaimCheck(stored_key, accepted.sha256, len(value)).to_bytes()
        return OutboundRecord(topic, key, value, headers)

    def _recipients(self, edoc: Edoc) -> list[str]:
        """To, plus for revocation/update/replacement (BussinessDocType 1–3) the original document's recipients."""
        targets = [o.organ_id for o in edoc.recipients]
        business = edoc.business
        if business is not None and business.bussiness_doc_type in {1, 2, 3}:
            targets += self.original_recipients(business.document_id or edoc.document_id, sender=edoc.sender.organ_id)
            targets += [r.organ_id for r in business.receivers if r.receiver_type == 1]
            for info in business.replacements:
                targets += info.organ_ids
        seen: dict[str, None] = {}
        for target in targets:
            if target and target != edoc.sender.organ_id:
                seen.setdefault(target)
        return list(seen)

    def _claim(
        self,
        key: str,
        record: InboundRecord,
        accepted: _Accepted,
        report: VerificationReport,
        received_at: datetime,
        *,
        sender: str,
        recipients: Sequence[str],
    ) -> datetime | None:
        """Store the accepted original create-only: the received-at time to use, or None for a duplicate."""
        metadata = {
            "sender": sender,
            "doc-id": _subject_id(accepted.parsed.message),
            "received-at": received_at.isoformat(),
            "indication": report.indication.value,
            "source": record.source,
        }
        if len(listed := ",".join(recipients)) <= _MAX_RECIPIENTS_METADATA:
            metadata["recipients"] = listed
        try:
            if accepted.claim is not None:  # a server-side copy: the bytes never pass through the worker
                self._store.copy(accepted.claim.key, key, metadata=metadata)
            else:
                self._store.put(key, accepted.data, metadata=metadata)
        except ObjectExists:
            stored = self._store.stat(key).metadata  # off the happy path: a duplicate or a replay
            if stored.get("source") != record.source:
                return None
            with contextlib.suppress(KeyError, ValueError):
                return datetime.fromisoformat(stored["received-at"])
        return received_at

    def original_recipients(self, document_id: str, *, sender: str | None = None) -> list[str]:
        """Who received ``document_id`` through this hub (from the stored originals, or older index entries)."""
        found: list[str] = []
        for key in self._store.list(_document_prefix(document_id)):
            try:
                if key.endswith(".json"):  # an index entry of an earlier version
                    entry = json.loads(self._store.get(key))
                    if sender is None or entry.get("sender") == sender:
                        found += entry.get("recipients", [])
                    continue
                metadata = self._store.stat(key).metadata
                if sender is not None and metadata.get("sender") != sender:
                    continue
                if "recipients" in metadata:
                    found += [r for r in metadata["recipients"].split(",") if r]
                else:
                    message = parse(self._store.get(key), max_bytes=self._settings.max_document_bytes).message
                    if isinstance(message, Edoc):
                        found += [o.organ_id for o in message.recipients]
            except (ObjectNotFound, ValueError, DocumentRejected):
                continue
        return found

    # --- holding (hub.hold) ----------------------------------------------------------------------------------

    def _hold(
        self,
        record: InboundRecord,
        accepted: _Accepted,
        report: VerificationReport,
        hold: Hold,
        *,
        pdf: tuple[str, DocumentRejected] | None = None,
    ) -> Outcome:
        """Hold a document without current revocation data on the retry topic; refuse it after the deadline.

        The first hold tells the sender (a hub 01: delayed, until when) and the ledger; later ones only requeue.
        ``pdf``: the data is missing for a PDF attachment's signer (that certificate, and the problem naming the
        attachment), the XML signature having passed.
        """
        settings = self._settings
        now = self._clock()
        deadline = hold.deadline(settings.try_later_deadline_seconds)
        certificate = unavailable_certificate(report) if pdf is None else pdf[0]
        problems = tuple(Problem(_SIGNATURE_PATH, e) for e in report.errors) if pdf is None else tuple(pdf[1].problems)
        errors = "; ".join(report.errors) if pdf is None else "; ".join(p.message for p in problems)
        if now >= deadline:
            problem = Problem(
                _SIGNATURE_PATH if pdf is None else problems[0].path,
                f"no current revocation data for {certificate} since {hold.since.isoformat()} "
                f"(held until {deadline.isoformat()}): {errors}",
            )
            refusal = DocumentRejected(REVOCATION_UNAVAILABLE, [problem])
            return self._refuse(record, accepted, refusal, hold.since, report)
        message = accepted.parsed.message
        sender = message.sender.organ_id
        doc_id = _document_id(message)
        first = hold.attempts == 0
        if first and self._store.exists(document_key(doc_id, accepted.sha256)):  # a resend of a delivered document
            return _duplicate(accepted.sha256, doc_id, sender)
        held = hold.again(
            now, retry_seconds=settings.try_later_retry_seconds, deadline_seconds=settings.try_later_deadline_seconds
        )
        records = [held.record(record)]
        events: tuple[LedgerEvent, ...] = ()
        if first:
            until = deadline.astimezone(VIETNAM_TZ).strftime("%Y/%m/%d %H:%M:%S")
            note = (
                "Hub lienthong đã nhận, tạm giữ chờ dữ liệu thu hồi chứng thư số "
                f"(held: revocation data for {certificate} unavailable, retrying until {until})"
            )
            if isinstance(message, Edoc) and not from_axis(record) and self._directory().get(sender) is not None:
                status = self._transport_status(_RECEIVED_STATUS, message, note, hold.since)
                headers: Headers = ((H_DOC_ID, doc_id.encode()), (H_SHA256, accepted.sha256.encode()))
                records.append(OutboundRecord(status_topic(sender), sender.encode(), status, headers))
            subject = _subject_id(message)
            held_event = self._event(
                EventKind.RECEIVED,
                accepted.sha256,
                subject,
                sender,
                hold.since,
                "held",
                reason=REVOCATION_UNAVAILABLE,
                certificate=certificate,
                until=deadline.isoformat(),
                error=errors[:_MAX_ERROR_HEADER],
            )
            events = (held_event,)
        return Outcome(
            "held",
            accepted.sha256,
            doc_id,
            sender,
            reason=REVOCATION_UNAVAILABLE,
            records=tuple(records),
            events=events,
            problems=problems,
        )

    # --- rejection -------------------------------------------------------------------------------------------

    def _refuse(
        self,
        record: InboundRecord,
        accepted: _Accepted,
        exc: DocumentRejected,
        received_at: datetime,
        report: VerificationReport | None,
    ) -> Outcome:
        """``_reject`` of a document that was read and parsed (its original, claim check and report are known)."""
        return self._reject(
            record,
            exc,
            received_at,
            sha256=accepted.sha256,
            parsed=accepted.parsed,
            report=report,
            claim=accepted.claim,
        )

    def _reject(
        self,
        record: InboundRecord,
        exc: DocumentRejected,
        received_at: datetime,
        *,
        sha256: str,
        parsed: ParsedDocument | None,
        report: VerificationReport | None = None,
        claim: ClaimCheck | None = None,
    ) -> Outcome:
        key_text = self._claimed_sender(record)
        axis_origin = from_axis(record)
        # The status goes to who sent the record (the outbox's owner), not to whom its From claims (SENDER_MISMATCH).
        sender = key_text or (parsed.message.sender.organ_id if parsed is not None else "")
        doc_id = _document_id(parsed.message) if parsed is not None else ""
        error_text = "; ".join(str(p) for p in exc.problems)[:_MAX_ERROR_HEADER]
        dead_headers: Headers = (
            *record.headers,
            (H_REASON, exc.reason.encode()),
            (H_ERROR, error_text.encode()),
            (H_SOURCE, record.source.encode()),
            (H_SENDER, key_text.encode()),
            (H_SHA256, sha256.encode()),
            (H_RECEIVED_AT, received_at.isoformat().encode()),
        )
        records = [OutboundRecord(DEADLETTER, record.key, record.value or b"", dead_headers)]
        known_sender = bool(sender) and self._directory().get(sender) is not None
        if axis_origin:
            # Back through the axis, for a document only: a 02 about a status (or about a claimed local sender) would
            # be routed by the axis to someone else, or back here, and answered again.
            answer = self._axis_rejection(exc, parsed, sender, sha256, error_text, received_at)
            records += [answer] if answer is not None else []
        elif known_sender:
            description = f"Từ chối tiếp nhận ({exc.reason}): {error_text}"
            status = self._rejection_status(parsed, sender, sha256, description, received_at)
            status_headers: Headers = ((H_REASON, exc.reason.encode()), (H_SHA256, sha256.encode()))
            if doc_id:
                status_headers = ((H_DOC_ID, doc_id.encode()), *status_headers)
            records.append(OutboundRecord(status_topic(sender), sender.encode(), status, status_headers))
        events: tuple[LedgerEvent, ...]
        receipts: tuple[bytes, ...] = ()
        if report is not None and parsed is not None:
            if self._store.exists(document_key(doc_id, sha256)):  # delivered before: a resend, whatever it is now
                return _duplicate(sha256, doc_id, sender)
            # The refused original and the report that refused it are evidence too.
            if claim is not None:  # a streamed original: archived by a server-side copy, by its content address
                with contextlib.suppress(ObjectExists):
                    metadata = {
                        "sender": sender,
                        "doc-id": _subject_id(parsed.message),
                        "received-at": received_at.astimezone(UTC).isoformat(),
                        "indication": report.indication.value,
                    }  # what Archive.store writes with an original
                    self._store.copy(claim.key, original_key(sha256), metadata=metadata)
                archived = self._archive.receipt_for(
                    b"",
                    report,
                    sender=sender,
                    doc_id=_subject_id(parsed.message),
                    received_at=received_at,
                    reason=exc.reason,
                    key=original_key(sha256),
                    sha256=sha256,
                )
            else:
                archived = self._archive.store(
                    parsed.original,
                    report,
                    sender=sender,
                    doc_id=_subject_id(parsed.message),
                    received_at=received_at,
                    reason=exc.reason,
                )
            events = _noted(archived.events, _input_facts(record, parsed))
            receipts = self._archive.carried_receipts(archived)
        else:
            facts = _input_facts(record, parsed)
            events = (
                self._event(EventKind.RECEIVED, sha256, doc_id, sender or "unknown", received_at, "received", **facts),
                self._event(EventKind.REJECTED, sha256, doc_id, "hub", received_at, exc.reason, error=error_text),
            )
        return Outcome(
            "rejected",
            sha256,
            doc_id,
            sender,
            reason=exc.reason,
            records=tuple(records),
            events=events,
            receipts=receipts,
            problems=exc.problems,
        )

    def _axis_rejection(  # noqa: PLR0917 - what the refusal's status says and about what
        self,
        exc: DocumentRejected,
        parsed: ParsedDocument | None,
        sender: str,
        sha256: str,
        error_text: str,
        at: datetime,
    ) -> OutboundRecord | None:
        """The 02 for a document refused from the axis, on ``lienthong.axis.outbound`` (None: nobody to answer)."""
        message = parsed.message if parsed is not None else None
        if not isinstance(message, Edoc) or exc.reason == "SENDER_MISMATCH":
            return None
        description = f"Từ chối tiếp nhận ({exc.reason}): {error_text}"
        status = self._transport_status(_REJECTED_STATUS, message, description, at)
        headers: Headers = (
            (H_DOC_ID, message.document_id.encode()),
            (H_REASON, exc.reason.encode()),
            (H_SHA256, sha256.encode()),
        )
        return OutboundRecord(AXIS_OUTBOUND, sender.encode(), status, headers)

    # --- statuses --------------------------------------------------------------------------------------------

    def _transport_status(self, code: str, edoc: Edoc, description: str, at: datetime) -> bytes:
        return transport_status(self._seal, self._settings.hub_organ_id, edoc, code, description, at)

    def _rejection_status(
        self, parsed: ParsedDocument | None, sender: str, sha256: str, description: str, at: datetime
    ) -> bytes:
        message = parsed.message if parsed is not None else None
        if isinstance(message, Edoc):
            return self._transport_status(_REJECTED_STATUS, message, description, at)
        if isinstance(message, StatusMessage):
            response_for = message.response_for
        else:
            # Unreadable bytes have no DocumentId: name them by their SHA-256 so the sender can match them.
            day = at.astimezone(VIETNAM_TZ).date()
            notation = f"SHA256-{sha256[:16].upper()}"
            response_for = ResponseFor(sender, f"0/{notation}", day, document_id_for(sender, day, "0", notation))
        return self._signed_status(response_for, _REJECTED_STATUS, description, at)

    def _signed_status(self, response_for: ResponseFor, code: str, description: str, at: datetime) -> bytes:
        return hub_status(self._seal, self._settings.hub_organ_id, response_for, code, description, at)

    # --- ledger ----------------------------------------------------------------------------------------------

    @staticmethod
    def _event(  # noqa: PLR0917 - the six fields of an event, in their order
        kind: EventKind, sha256: str, doc_id: str, actor: str, at: datetime, verdict: str, **detail: str
    ) -> LedgerEvent:
        return LedgerEvent(
            kind=kind, sha256=sha256, document_id=doc_id, actor=actor, time=at, verdict=verdict, detail=detail
        )


def _check_certificate_organ(message: Edoc | StatusMessage, report: VerificationReport) -> None:
    """CERT_ORGAN_MISMATCH when the signing certificate names an OrganId other than From/OrganId.

    The directory's pin says which keys may sign for an agency; a certificate that names an agency itself must
    name this one too, so that a key pinned by mistake (or by an attacker) for another agency cannot speak for it.
    """
    signer = report.signer
    if signer is None or signer.cert_organ_id is None:
        return
    claimed = message.sender.organ_id
    if signer.cert_organ_id != claimed:
        problem = Problem(
            _SIGNATURE_PATH,
            f"the signing certificate {signer.subject} names OrganId {signer.cert_organ_id}, From/OrganId is {claimed}",
        )
        raise DocumentRejected("CERT_ORGAN_MISMATCH", [problem])


# signer.path's wording for a certificate without a current answer (as hub.hold reads the XML signature's errors).
_MISSING_REVOCATION = re.compile(r"^no current revocation information for (.+?): ")


def _pdf_problem(
    attachments: Sequence[Attachment], report: VerificationReport, policy: PdfPolicy
) -> DocumentRejected | None:
    """The refusal (or, PDF_SIGNATURE_TRY_LATER, the hold) the PDF attachments' verdicts call for under ``policy``.

    Its problem's path names the attachment (its place among the document's attachments, from 1).
    """
    reports = report.pdfs or ()
    found = pdf_policy_problem(reports, policy)
    if found is None:
        return None
    reason, message = found
    places = [n for n, attachment in enumerate(attachments, 1) if is_pdf_attachment(attachment)]
    place = next((n for n, r in zip(places, reports, strict=True) if pdf_policy_problem([r], policy) == found), 0)
    return DocumentRejected(reason, [Problem(f"{_ATTACHMENT_PATH}[{place}]" if place else "", message)])


def _pdf_unavailable_certificate(report: VerificationReport) -> str:
    """The PDF signer (or chain) certificate whose revocation data is missing, as ``hub.hold`` names the XML one's."""
    for pdf in report.pdfs or ():
        for signature in pdf.signatures:
            for error in signature.errors:
                if found := _MISSING_REVOCATION.match(error):
                    return found.group(1)
    return "a PDF attachment's signer"


def _input_facts(record: InboundRecord, parsed: ParsedDocument | None) -> dict[str, str]:
    """What the province's figures count about an input (``hub.figures``), kept on its ``received`` event.

    ``message`` (edoc|status), ``algorithm`` (the SignatureMethod's short name, ``none`` when unsigned),
    ``status_code`` or ``due_date`` (ISO date), ``origin`` (``axis`` for what came through the national axis).
    An unreadable input has only its origin; events written before these facts have none (counted as unknown).
    """
    facts = {"origin": "axis"} if from_axis(record) else {}
    if parsed is None:
        return facts
    message = parsed.message
    facts["message"] = message.kind
    signature = parsed.signature
    facts["algorithm"] = (signature.signature_method.rpartition("#")[2] or "unknown") if signature else "none"
    if isinstance(message, StatusMessage):
        facts["status_code"] = message.status_code
    elif message.due_date is not None:
        facts["due_date"] = message.due_date.isoformat()
    return facts


def _noted(events: Sequence[LedgerEvent], facts: dict[str, str]) -> tuple[LedgerEvent, ...]:
    """``events`` with ``facts`` added to the detail of the ``received`` one (the others as they are)."""
    return tuple(
        dataclasses.replace(e, detail={**e.detail, **facts}) if e.kind is EventKind.RECEIVED and facts else e
        for e in events
    )


def _route_name(directory: Directory, organ_id: str) -> str:
    """``local`` or ``axis``: how a delivery to ``organ_id`` leaves the hub (kept on its ledger event)."""
    agency = directory.get(organ_id)
    return agency.route.value if agency is not None else "unknown"


def _subject_id(message: Edoc | StatusMessage) -> str:
    """The DocumentId the ledger files an event under: a status is filed under the document it is about."""
    return message.response_for.document_id if isinstance(message, StatusMessage) else message.document_id


def _document_id(message: Edoc | StatusMessage) -> str:
    if isinstance(message, StatusMessage):
        return f"{message.response_for.document_id}#status-{message.status_code}-{message.sender.organ_id}"
    return message.document_id


def _duplicate(sha256: str, doc_id: str, sender: str) -> Outcome:
    return Outcome("duplicate", sha256, doc_id, sender, reason="DUPLICATE")


def _sha_of(value: bytes | None) -> str:
    return hashlib.sha256(value or b"").hexdigest()


def _too_large(size: int, limit: int) -> DocumentRejected:
    return DocumentRejected("TOO_LARGE", [Problem("", f"{size} bytes is over the hub's limit of {limit} bytes")])


def records_for(outcomes: Iterable[Outcome]) -> list[OutboundRecord]:
    """Every record to produce for a batch of outcomes, in order."""
    return [r for o in outcomes for r in o.records]
