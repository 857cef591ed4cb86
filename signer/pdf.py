"""Signed PDFs inside documents: verify every embedded PDF signature as the XML signature is verified.

The legally binding artefact of an official document is often the signed PDF attached to the edXML. This module
reads each PDF signature (PAdES ``ETSI.CAdES.detached``, ``adbe.pkcs7.detached``, and ``ETSI.RFC3161`` document
time-stamps) with pyHanko, and judges the signer's certificate with the project's own
``signer.path.PathValidator``, under the same ``TrustPolicy`` (anchors, intermediates, CRLs, OCSP fetcher,
revocation rule) as the XML signature, so that both verdicts agree. pyHanko never gets a validation context: it
parses and hashes, it never fetches (no AIA, CRL or OCSP look-ups) and never consults an OS trust store.

Per signature (the worst finding decides: TOTAL_FAILED over INDETERMINATE over TOTAL_PASSED; all are reported):

=========================================================================  =============================================
unreadable signature dictionary or CMS, unknown SubFilter, a ByteRange     TOTAL_FAILED / FORMAT_FAILURE
that leaves a gap or stops short of its revision (``coverage=partial``)
the ByteRange digest differs from the signed messageDigest                  TOTAL_FAILED / HASH_FAILURE
the signature value does not verify with the signer's key                   TOTAL_FAILED / SIG_CRYPTO_FAILURE
SHA-1/MD5 digests or signatures                                             INDETERMINATE / CRYPTO_CONSTRAINTS_FAILURE
no signer certificate in the CMS                                            INDETERMINATE / NO_SIGNING_CERTIFICATE_FOUND
later incremental updates beyond what the signer allowed (page content      INDETERMINATE / SIG_CONSTRAINTS_FAILURE
changed, DocMDP exceeded); form filling, annotations and further
signatures are allowed and reported as ``modifications``
the certificate path                                                        ``PathValidator``'s verdict (REVOKED,
                                                                            NO_CERTIFICATE_CHAIN_FOUND, TRY_LATER...)
=========================================================================  =============================================

A signature time-stamp (unsigned attribute) is checked with ``signer.timestamp.verify_token`` against the same
anchors; its genTime is reported as ``timestamp_time``, and a token that does not verify is a warning. The path
is judged at ``at`` (now for live traffic, the receipt time for an auditor), as the XML signature is.

PDFs are hostile input: size and signature count are capped before and during parsing, every pyHanko failure
becomes a FORMAT_FAILURE result (never an exception), and nothing here does I/O except through the policy's
injected OCSP fetcher (an auditor's offline re-check passes a policy without one). Results are plain data
(``PdfReport.to_json``/``from_json``): re-running ``verify_pdf_signatures`` with the same bytes, policy and ``at``
gives the same report.

Building a ``PdfVerifier`` replaces pyHanko's hex-string reader, process-wide, by an equivalent one that does
not loop per character (see ``_read_hex_string``): it was two thirds of the cost of a one-page PDF.
"""

from __future__ import annotations

import enum
import hashlib
import io
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESStatus
from pyhanko.sign.diff_analysis import DiffResult, ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from signer.organ import certificate_organ_id
from signer.path import PathValidator
from signer.report import Indication, RevocationEvidence, SignerInfo, SubIndication
from signer.timestamp import TimestampError, verify_token

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from schemas.model import Attachment
    from signer.policy import TrustPolicy

__all__ = [
    "DEFAULT_MAX_PDF_BYTES",
    "DEFAULT_MAX_PDF_SIGNATURES",
    "PDF_SIGNATURE_INVALID",
    "PDF_SIGNATURE_MISSING",
    "PDF_SIGNATURE_TRY_LATER",
    "PDF_SIGNATURE_UNCHECKED",
    "Coverage",
    "PdfPolicy",
    "PdfReport",
    "PdfSignature",
    "PdfVerifier",
    "is_pdf_attachment",
    "pdf_policy_problem",
    "verify_pdf_signatures",
]

#: Scanned official letters run to tens of MB; the cap bounds parsing and hashing work on hostile input.
DEFAULT_MAX_PDF_BYTES = 100 * 1024 * 1024
#: Real documents carry a handful (author, approvers, a document time-stamp); each one costs a diff analysis.
DEFAULT_MAX_PDF_SIGNATURES = 32

#: Reason codes (status 02 text, dead-letter header) under ``PdfPolicy.REQUIRE``.
PDF_SIGNATURE_MISSING = "PDF_SIGNATURE_MISSING"
PDF_SIGNATURE_INVALID = "PDF_SIGNATURE_INVALID"
#: Revocation data is missing (INDETERMINATE / TRY_LATER): the hub's problem to retry, as for the XML signature.
PDF_SIGNATURE_TRY_LATER = "PDF_SIGNATURE_TRY_LATER"
#: The document is too large for the hub to check its PDFs (``hub.process.PDF_CHECK_MAX_DOCUMENT_BYTES``).
PDF_SIGNATURE_UNCHECKED = "PDF_SIGNATURE_UNCHECKED"

_ALLOWED_DIGESTS = frozenset({"sha256", "sha384", "sha512"})
_SIGNATURE_SUBFILTERS = frozenset({"/adbe.pkcs7.detached", "/ETSI.CAdES.detached"})
_TIMESTAMP_SUBFILTER = "/ETSI.RFC3161"
_LEGACY_SUBFILTERS = frozenset({"/adbe.pkcs7.sha1", "/adbe.x509.rsa_sha1"})
_SEVERITY = {Indication.TOTAL_PASSED: 0, Indication.INDETERMINATE: 1, Indication.TOTAL_FAILED: 2}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PdfPolicy(enum.StrEnum):
    """What the hub does with PDF signature results (setting ``pdf_signatures``)."""

    #: Record the results; never refuse a document for them (the default).
    REPORT = "report"
    #: Refuse a document whose PDF attachment is unsigned or carries a signature that is not TOTAL_PASSED.
    REQUIRE = "require"


class Coverage(enum.StrEnum):
    """How much of the file a signature's ByteRange covers."""

    #: Every byte of the file except the signature value itself.
    ENTIRE_FILE = "entire_file"
    #: Its whole revision; incremental updates were appended later (see ``PdfSignature.modifications``).
    ENTIRE_REVISION = "entire_revision"
    #: A gap, or less than its revision: bytes the signer did not sign are part of what a reader shows.
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class PdfSignature:
    """The verdict on one signature field of a PDF.

    ``kind`` is ``signature`` or ``document_timestamp``. ``claimed_signing_time`` is what the signer says
    (signingTime or /M); ``timestamp_time`` the genTime of a signature time-stamp token that verified (for a
    document time-stamp, its own genTime). ``modifications`` says what later incremental updates did, from
    ``none`` through ``lta_updates``, ``form_filling``, ``annotations`` to ``other`` (None when not evaluated).
    """

    field_name: str
    kind: str
    indication: Indication
    subindication: SubIndication | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    signer: SignerInfo | None
    claimed_signing_time: datetime | None
    timestamp_time: datetime | None
    timestamp_authority: str | None
    coverage: Coverage | None
    modifications: str | None
    byte_range: tuple[int, ...]
    revision: int | None
    digest_algorithm: str
    signature_algorithm: str
    chain: tuple[str, ...]  # subjects, leaf first, anchor last
    revocation: tuple[RevocationEvidence, ...]
    #: The same answers with their DER (CRL, OCSP response), for a receipt an auditor re-checks offline. Not part of
    #: the verdict: left out of ``to_json`` and of equality, since a re-check may hold them cached or not at all.
    evidence: tuple[RevocationEvidence, ...] = field(default=(), compare=False, repr=False)

    @property
    def passed(self) -> bool:
        """True only for TOTAL_PASSED."""
        return self.indication is Indication.TOTAL_PASSED

    def to_json(self) -> dict[str, Any]:
        """A JSON object (the shape stored in receipts and bundles)."""
        return {
            "field": self.field_name,
            "kind": self.kind,
            "indication": self.indication.value,
            "subindication": self.subindication.value if self.subindication else None,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "signer": _signer_to_json(self.signer),
            "claimed_signing_time": _time_to_json(self.claimed_signing_time),
            "timestamp_time": _time_to_json(self.timestamp_time),
            "timestamp_authority": self.timestamp_authority,
            "coverage": self.coverage.value if self.coverage else None,
            "modifications": self.modifications,
            "byte_range": list(self.byte_range),
            "revision": self.revision,
            "digest_algorithm": self.digest_algorithm,
            "signature_algorithm": self.signature_algorithm,
            "chain": list(self.chain),
            "revocation": [_revocation_to_json(r) for r in self.revocation],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PdfSignature:
        """Read back what ``to_json`` wrote."""
        return cls(
            field_name=data["field"],
            kind=data["kind"],
            indication=Indication(data["indication"]),
            subindication=SubIndication(data["subindication"]) if data["subindication"] else None,
            errors=tuple(data["errors"]),
            warnings=tuple(data["warnings"]),
            signer=_signer_from_json(data["signer"]),
            claimed_signing_time=_time_from_json(data["claimed_signing_time"]),
            timestamp_time=_time_from_json(data["timestamp_time"]),
            timestamp_authority=data["timestamp_authority"],
            coverage=Coverage(data["coverage"]) if data["coverage"] else None,
            modifications=data["modifications"],
            byte_range=tuple(data["byte_range"]),
            revision=data["revision"],
            digest_algorithm=data["digest_algorithm"],
            signature_algorithm=data["signature_algorithm"],
            chain=tuple(data["chain"]),
            revocation=tuple(_revocation_from_json(r) for r in data["revocation"]),
        )


@dataclass(frozen=True, slots=True)
class PdfReport:
    """The verdict on one PDF (one attachment): each signature, and the file's own problems.

    ``indication`` is the worst over the signatures, TOTAL_FAILED / FORMAT_FAILURE for a file that cannot be
    read, INDETERMINATE / FORMAT_FAILURE for one not checked (too large, encrypted), and None for a readable PDF
    with no signature (``signed`` is False).
    """

    name: str
    sha256: str
    size: int
    indication: Indication | None
    subindication: SubIndication | None
    errors: tuple[str, ...]
    signatures: tuple[PdfSignature, ...]
    validation_time: datetime

    @property
    def signed(self) -> bool:
        """Whether the PDF carries at least one signature (not only document time-stamps)."""
        return any(s.kind == "signature" for s in self.signatures)

    @property
    def passed(self) -> bool:
        """True when the PDF is signed and every signature and time-stamp in it is TOTAL_PASSED."""
        return self.signed and self.indication is Indication.TOTAL_PASSED

    @property
    def evidence(self) -> tuple[RevocationEvidence, ...]:
        """The revocation answers (with their DER) the signatures' paths were judged with, each once."""
        seen: dict[bytes, RevocationEvidence] = {}
        for signature in self.signatures:
            for answer in signature.evidence:
                seen.setdefault(answer.der, answer)
        return tuple(seen.values())

    @property
    def verdict(self) -> str:
        """``INDICATION``, ``INDICATION/SUBINDICATION``, or ``not signed``."""
        if self.indication is None:
            return "not signed"
        return self.indication.value + (f"/{self.subindication.value}" if self.subindication else "")

    def describe(self) -> list[str]:
        """For people: one line per signature (who, when claimed and time-stamped, coverage, indication)."""
        if not self.signatures:
            return [self.verdict + (f": {self.errors[0]}" if self.errors else "")]
        lines = []
        for sig in self.signatures:
            verdict = sig.indication.value + (f"/{sig.subindication.value}" if sig.subindication else "")
            who = sig.signer.subject if sig.signer is not None else "?"
            claimed = sig.claimed_signing_time.isoformat() if sig.claimed_signing_time else "none"
            stamped = sig.timestamp_time.isoformat() if sig.timestamp_time else "none"
            coverage = sig.coverage.value if sig.coverage else "unknown"
            why = f": {sig.errors[0]}" if sig.errors else ""
            lines.append(
                f"{sig.field_name} ({sig.kind}): {verdict}, signer {who}, signing time {claimed}, "
                f"time-stamped {stamped}, coverage {coverage}{why}"
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON object for the verification report, the archive receipt and the evidence bundle."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "indication": self.indication.value if self.indication else None,
            "subindication": self.subindication.value if self.subindication else None,
            "errors": list(self.errors),
            "validation_time": self.validation_time.isoformat(),
            "signatures": [s.to_json() for s in self.signatures],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PdfReport:
        """Read back what ``to_json`` wrote (raises KeyError/ValueError on anything else)."""
        return cls(
            name=data["name"],
            sha256=data["sha256"],
            size=data["size"],
            indication=Indication(data["indication"]) if data["indication"] else None,
            subindication=SubIndication(data["subindication"]) if data["subindication"] else None,
            errors=tuple(data["errors"]),
            validation_time=datetime.fromisoformat(data["validation_time"]),
            signatures=tuple(PdfSignature.from_json(s) for s in data["signatures"]),
        )


class PdfVerifier:
    """Verify PDF signatures under one ``TrustPolicy``; reuse one instance (its path validator caches).

    Pass ``paths`` to share the XML verifier's ``PathValidator`` (same caches, same verdicts); ``clock`` gives
    "now" when ``verify`` is called without ``at``.
    """

    def __init__(
        self,
        policy: TrustPolicy,
        *,
        paths: PathValidator | None = None,
        clock: Callable[[], datetime] = _utc_now,
        max_bytes: int = DEFAULT_MAX_PDF_BYTES,
        max_signatures: int = DEFAULT_MAX_PDF_SIGNATURES,
    ) -> None:
        self._policy = policy
        self._paths = paths if paths is not None else PathValidator(policy, clock=clock)
        self._clock = clock
        self._max_bytes = max_bytes
        self._max_signatures = max_signatures
        _install_fast_hex_strings()

    def verify(self, data: bytes, *, name: str = "", at: datetime | None = None) -> PdfReport:
        """Verify every signature in the PDF ``data`` (attachment ``name``) at instant ``at``; never raises."""
        when = at if at is not None else self._clock()
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        base = PdfReport(
            name=name,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            indication=None,
            subindication=None,
            errors=(),
            signatures=(),
            validation_time=when,
        )
        if len(data) > self._max_bytes:
            problem = f"{len(data)} bytes is over the limit of {self._max_bytes} bytes: its signatures were not checked"
            return replace(
                base, indication=Indication.INDETERMINATE, subindication=SubIndication.FORMAT_FAILURE, errors=(problem,)
            )
        try:
            return self._verify(data, base, when)
        except Exception as exc:  # noqa: BLE001 - hostile input: any failure of the PDF parser is a verdict
            problem = f"not a readable PDF: {_describe_exception(exc)}"
            return replace(
                base,
                indication=Indication.TOTAL_FAILED,
                subindication=SubIndication.FORMAT_FAILURE,
                errors=(problem,),
                signatures=(),
            )

    def verify_attachments(
        self, attachments: Iterable[Attachment], *, at: datetime | None = None
    ) -> tuple[PdfReport, ...]:
        """A report for each attachment that is a PDF (see ``is_pdf_attachment``), all judged at one instant."""
        when = at if at is not None else self._clock()
        return tuple(
            self.verify(a.content, name=a.attachment_name or a.content_id, at=when)
            for a in attachments
            if is_pdf_attachment(a)
        )

    # --- the file ------------------------------------------------------------------------------------------

    def _verify(self, data: bytes, base: PdfReport, when: datetime) -> PdfReport:
        if b"%PDF-" not in data[:1024]:  # where PDF readers look for the header
            raise ValueError("no %PDF- header in the first 1024 bytes")
        # strict: refuse hybrid-reference files and other ambiguities that let two readers show different pages.
        reader = PdfFileReader(io.BytesIO(data), strict=True)
        if reader.encrypted:
            problem = "the PDF is encrypted: its signatures were not checked"
            return replace(
                base, indication=Indication.INDETERMINATE, subindication=SubIndication.FORMAT_FAILURE, errors=(problem,)
            )
        fields: list[tuple[str, Any]] = []
        for fq_name, _sig_obj, sig_field in enumerate_sig_fields(reader, filled_status=True):
            if len(fields) >= self._max_signatures:
                problem = f"more than {self._max_signatures} signature fields: the PDF was not checked"
                return replace(
                    base,
                    indication=Indication.TOTAL_FAILED,
                    subindication=SubIndication.FORMAT_FAILURE,
                    errors=(problem,),
                )
            fields.append((str(fq_name), sig_field))
        signatures = tuple(self._signature(reader, fq_name, sig_field, when) for fq_name, sig_field in fields)
        if not signatures:
            return base
        worst = max(signatures, key=lambda s: _SEVERITY[s.indication])  # the first of the worst
        return replace(base, indication=worst.indication, subindication=worst.subindication, signatures=signatures)

    # --- one signature -------------------------------------------------------------------------------------

    def _signature(self, reader: PdfFileReader, fq_name: str, sig_field: Any, when: datetime) -> PdfSignature:
        check = _Check(fq_name)
        try:
            self._check(reader, fq_name, sig_field, when, check)
        except SignatureValidationError as exc:
            indication, sub = _from_ades(exc)
            check.add(indication, sub, exc.failure_message)
        except Exception as exc:  # noqa: BLE001 - hostile input: a broken signature is a verdict, not a crash
            check.add(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"unreadable: {_describe_exception(exc)}")
        return check.result()

    def _check(self, reader: PdfFileReader, fq_name: str, sig_field: Any, when: datetime, check: _Check) -> None:
        embedded = EmbeddedPdfSignature(reader, sig_field, fq_name)
        check.byte_range = tuple(int(n) for n in embedded.byte_range)
        check.revision = int(embedded.signed_revision)
        check.digest_algorithm = str(embedded.md_algorithm)
        sig_type = str(embedded.sig_object_type)
        subfilter = str(embedded.sig_object.get("/SubFilter", ""))
        if sig_type == "/DocTimeStamp" or subfilter == _TIMESTAMP_SUBFILTER:
            check.kind = "document_timestamp"
        if subfilter in _LEGACY_SUBFILTERS:
            check.add(
                Indication.INDETERMINATE,
                SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                f"SubFilter {subfilter} signs a SHA-1 digest, which is too weak",
            )
            return
        expected = {_TIMESTAMP_SUBFILTER} if check.kind == "document_timestamp" else _SIGNATURE_SUBFILTERS
        if subfilter not in expected:
            check.add(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                f"SubFilter {subfilter or '(none)'} is not one of {', '.join(sorted(expected))}",
            )
            return

        self._coverage(embedded, check)
        if check.kind == "document_timestamp":
            self._document_timestamp(embedded, when, check)
            return

        signer_info = embedded.signer_info
        check.claimed_signing_time = embedded.self_reported_timestamp
        check.signature_algorithm = _signature_algorithm_name(signer_info)
        certs = generic_cms.extract_certs_for_validation(embedded.signed_data)  # checks signing-certificate(-v2)
        leaf = _to_cryptography(certs.signer_cert)
        check.signer = _signer_info(leaf)

        digest = embedded.compute_digest()
        intact, valid = generic_cms.validate_sig_integrity(signer_info, certs.signer_cert, "data", digest)
        if not intact:
            check.add(
                Indication.TOTAL_FAILED,
                SubIndication.HASH_FAILURE,
                "the ByteRange digest does not match the signed messageDigest (the file was changed after signing)",
            )
        if not valid:
            check.add(
                Indication.TOTAL_FAILED,
                SubIndication.SIG_CRYPTO_FAILURE,
                "the signature value does not verify with the signer certificate's key",
            )
        self._algorithms(check)
        self._signature_timestamp(signer_info, when, check)
        extra = [_to_cryptography(c) for c in certs.other_certs]
        self._path(leaf, extra, when, check)

    def _coverage(self, embedded: EmbeddedPdfSignature, check: _Check) -> None:
        embedded.compute_integrity_info()  # type: ignore[no-untyped-call] # digest, coverage, diff of later updates
        level: Any = embedded.coverage  # pyHanko declares it None until the call above sets it
        if level == SignatureCoverageLevel.ENTIRE_FILE:
            check.coverage = Coverage.ENTIRE_FILE
        elif level == SignatureCoverageLevel.ENTIRE_REVISION:
            check.coverage = Coverage.ENTIRE_REVISION
        else:
            check.coverage = Coverage.PARTIAL
            problem = f"the ByteRange {list(check.byte_range)} leaves bytes of its revision unsigned (a gap, or short)"
            check.add(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, problem)
            return
        diff: Any = embedded.diff_result  # declared None too; set by compute_integrity_info
        if isinstance(diff, DiffResult):
            level_name = diff.modification_level.name.lower()
            check.modifications = level_name
            docmdp = embedded.docmdp_level
            too_much = diff.modification_level == ModificationLevel.OTHER or (
                docmdp is not None and diff.modification_level.value > docmdp.value
            )
            if too_much:
                allowed = f" (the signer allowed {docmdp.name.lower()})" if docmdp is not None else ""
                check.add(
                    Indication.INDETERMINATE,
                    SubIndication.SIG_CONSTRAINTS_FAILURE,
                    f"the PDF was changed after signing: later updates are {level_name}{allowed}",
                )
            elif diff.modification_level != ModificationLevel.NONE:
                check.warnings.append(f"later incremental updates after signing: {level_name} (allowed)")
        elif diff is not None:  # SuspiciousModification: pyHanko could not explain a later update
            check.modifications = "other"
            problem = f"the PDF was changed after signing in a way that cannot be explained: {_first_line(diff)}"
            check.add(Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE, problem)

    def _algorithms(self, check: _Check) -> None:
        weak = [
            a for a in (check.digest_algorithm, _hash_of(check.signature_algorithm)) if a and a not in _ALLOWED_DIGESTS
        ]
        if weak:
            problem = f"the signature uses {weak[0].upper()}, which is too weak (SHA-256 or stronger required)"
            check.add(Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, problem)

    def _signature_timestamp(self, signer_info: cms.SignerInfo, when: datetime, check: _Check) -> None:
        unsigned = signer_info["unsigned_attrs"]
        if isinstance(unsigned, core.Void):  # (not .native: that decodes every certificate in the token)
            return
        tokens = [a["values"][0] for a in unsigned if a["type"].native == "signature_time_stamp_token"]
        if not tokens:
            return
        token = tokens[0]
        try:
            algorithm = _imprint_algorithm(token)
            digest = hashlib.new(algorithm, signer_info["signature"].native).digest()
            verified = verify_token(
                token.dump(),
                digest=digest,
                anchors=self._policy.anchors,
                hash=algorithm,
                certs=self._policy.intermediates,
                at=when,
            )
        except Exception as exc:  # noqa: BLE001 - a token that cannot be read or verified is only a warning
            check.warnings.append(f"the signature time-stamp was not accepted: {_describe_exception(exc)}")
            return
        check.timestamp_time = verified.gen_time
        check.timestamp_authority = verified.tsa_subject

    def _document_timestamp(self, embedded: EmbeddedPdfSignature, when: datetime, check: _Check) -> None:
        algorithm = str(embedded.external_md_algorithm)
        check.digest_algorithm = algorithm
        # /Contents is zero-padded after the DER: re-encode exactly the ContentInfo that pyHanko read.
        token_der = cms.ContentInfo.load(embedded.pkcs7_content).dump()
        try:
            verified = verify_token(
                token_der,
                digest=embedded.compute_digest(),
                anchors=self._policy.anchors,
                hash=algorithm,
                certs=self._policy.intermediates,
                at=when,
            )
        except TimestampError as exc:
            message = str(exc)
            if "imprint does not match" in message:
                check.add(Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, f"document time-stamp: {message}")
            elif "not trusted" in message:
                check.add(
                    Indication.INDETERMINATE,
                    SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                    f"document time-stamp: {message}",
                )
            else:
                check.add(Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE, f"document time-stamp: {message}")
            return
        check.timestamp_time = verified.gen_time
        check.timestamp_authority = verified.tsa_subject
        check.signer = _signer_info(verified.tsa_cert)

    def _path(self, leaf: x509.Certificate, extra: list[x509.Certificate], when: datetime, check: _Check) -> None:
        try:
            result = self._paths.validate(leaf, extra, at=when)
        except Exception as exc:  # noqa: BLE001 - untrusted certificates must never escape as an exception
            check.add(
                Indication.INDETERMINATE,
                SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                f"certificate path validation failed: {_describe_exception(exc)}",
            )
            return
        check.chain = tuple(c.subject.rfc4514_string() for c in result.chain)
        # The DER and the cache flag belong to this run, not to the verdict: a re-check gives the same report.
        check.revocation = tuple(replace(r, der=b"", cached=False) for r in result.revocation)
        check.evidence = tuple(r for r in result.revocation if r.der)
        check.warnings.extend(result.warnings)
        if not result.passed:
            check.add(
                Indication(result.indication),
                result.subindication,
                *(result.errors or ("the certificate path is not valid",)),
            )


def verify_pdf_signatures(
    data: bytes,
    *,
    policy: TrustPolicy,
    name: str = "",
    at: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_PDF_BYTES,
    paths: PathValidator | None = None,
) -> PdfReport:
    """Verify every signature of one PDF under ``policy`` at ``at`` (builds a ``PdfVerifier``: reuse one)."""
    return PdfVerifier(policy, paths=paths, max_bytes=max_bytes).verify(data, name=name, at=at)


def is_pdf_attachment(attachment: Attachment) -> bool:
    """Whether an attachment is a PDF: declared so (content type or ``.pdf`` name), or its bytes start like one.

    The bytes count too, so that a PDF labelled ``application/octet-stream`` cannot slip past ``require``.
    """
    declared = attachment.content_type.lower().startswith("application/pdf")
    named = attachment.attachment_name.lower().endswith(".pdf")
    return declared or named or b"%PDF-" in attachment.content[:1024]


def pdf_policy_problem(reports: Iterable[PdfReport], policy: PdfPolicy | str) -> tuple[str, str] | None:
    """The reason code and message that refuse a document under ``policy``, or None to accept it.

    Under ``report`` nothing refuses. Under ``require`` every PDF attachment (each report) must be signed and
    every signature in it TOTAL_PASSED; a document with no PDF attachment passes. A PDF whose revocation data is
    missing gives ``PDF_SIGNATURE_TRY_LATER``: the caller holds the document and retries, as for the XML signature.
    """
    if PdfPolicy(policy) is PdfPolicy.REPORT:
        return None
    try_later: tuple[str, str] | None = None
    for report in reports:
        label = report.name or f"PDF {report.sha256[:12]}"
        if report.indication is None or (report.indication is Indication.TOTAL_PASSED and not report.signed):
            return PDF_SIGNATURE_MISSING, f"attachment {label} carries no PDF signature"
        if report.indication is Indication.TOTAL_PASSED:
            continue
        why = _first_problem(report)
        if report.subindication is SubIndication.TRY_LATER:
            try_later = try_later or (PDF_SIGNATURE_TRY_LATER, f"attachment {label}: {why}")
            continue
        return PDF_SIGNATURE_INVALID, f"attachment {label}: {why}"
    return try_later


# --- private helpers ---------------------------------------------------------------------------------------


# --- a faster reader for PDF hex strings ---------------------------------------------------------------------
#
# pyHanko reads a hex string one character at a time (about 1.7 µs each), and a signature's /Contents is a
# hex string of 16-64 KB reserved space: that alone was two thirds of the cost of verifying a one-page PDF.
# This reader accepts exactly the same input: on anything but whitespace and hex digits up to the first ">"
# (a comment, a stray byte, no ">" at all) it rewinds and hands the string to pyHanko's own reader.

_pyhanko_read_hex_string = generic.read_hex_string_from_stream


def _read_hex_string(stream: Any) -> Any:
    start = stream.tell()
    stream.read(1)  # the "<" that made the caller come here
    parts: list[bytes] = []
    size = 1024
    while True:
        chunk = stream.read(size)
        if not chunk:
            break
        end = chunk.find(b">")
        if end >= 0:
            parts.append(chunk[:end])
            body = b"".join(parts)
            digits = body.translate(None, misc.PDF_WHITESPACE)
            if digits.translate(None, generic.HEX_DIGITS):
                break  # not only hex digits: pyHanko's reader skips comments or raises its own error
            stream.seek(start + len(body) + 2)
            if len(digits) % 2:
                digits += b"0"
            return generic.pdf_string(bytes.fromhex(digits.decode("ascii")))
        parts.append(chunk)
        size = min(size * 4, 1 << 20)
    stream.seek(start)
    return _pyhanko_read_hex_string(stream)


def _install_fast_hex_strings() -> None:
    """Make pyHanko's object reader use ``_read_hex_string`` (process-wide; idempotent)."""
    generic.read_hex_string_from_stream = _read_hex_string


class _Check:
    """What the checks of one signature have found so far; turns into a ``PdfSignature``."""

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name
        self.kind = "signature"
        self.findings: list[tuple[Indication, SubIndication | None]] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.signer: SignerInfo | None = None
        self.claimed_signing_time: datetime | None = None
        self.timestamp_time: datetime | None = None
        self.timestamp_authority: str | None = None
        self.coverage: Coverage | None = None
        self.modifications: str | None = None
        self.byte_range: tuple[int, ...] = ()
        self.revision: int | None = None
        self.digest_algorithm = ""
        self.signature_algorithm = ""
        self.chain: tuple[str, ...] = ()
        self.revocation: tuple[RevocationEvidence, ...] = ()
        self.evidence: tuple[RevocationEvidence, ...] = ()

    def add(self, indication: Indication, sub: SubIndication | None, *errors: str) -> None:
        self.findings.append((indication, sub))
        self.errors.extend(errors)

    def result(self) -> PdfSignature:
        indication, sub = Indication.TOTAL_PASSED, None
        if self.findings:
            indication, sub = max(self.findings, key=lambda f: _SEVERITY[f[0]])  # the first of the worst
        return PdfSignature(
            field_name=self.field_name,
            kind=self.kind,
            indication=indication,
            subindication=sub,
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            signer=self.signer,
            claimed_signing_time=self.claimed_signing_time,
            timestamp_time=self.timestamp_time,
            timestamp_authority=self.timestamp_authority,
            coverage=self.coverage,
            modifications=self.modifications,
            byte_range=self.byte_range,
            revision=self.revision,
            digest_algorithm=self.digest_algorithm,
            signature_algorithm=self.signature_algorithm,
            chain=self.chain,
            revocation=self.revocation,
            evidence=self.evidence,
        )


def _first_problem(report: PdfReport) -> str:
    sub = report.subindication.value if report.subindication else ""
    verdict = f"{report.indication.value if report.indication else 'unsigned'}{'/' + sub if sub else ''}"
    for signature in report.signatures:
        if signature.indication is report.indication and signature.subindication is report.subindication:
            detail = signature.errors[0] if signature.errors else ""
            return f"signature {signature.field_name} is {verdict}: {detail}".rstrip(": ")
    return f"{verdict}: {report.errors[0]}" if report.errors else verdict


def _from_ades(exc: SignatureValidationError) -> tuple[Indication, SubIndication]:
    """Map pyHanko's AdES sub-indication onto ours; anything we have no name for is a format failure."""
    sub = exc.ades_subindication
    name = getattr(sub, "name", "")
    if name in SubIndication.__members__:
        failed = getattr(sub, "status", None) is AdESStatus.FAILED
        return (Indication.TOTAL_FAILED if failed else Indication.INDETERMINATE), SubIndication[name]
    return Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE


def _to_cryptography(cert: Any) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def _signer_info(cert: x509.Certificate) -> SignerInfo:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SignerInfo(
        subject=cert.subject.rfc4514_string(),
        organ_id=None,  # a PDF claims no sender; the certificate's own OrganId is cert_organ_id
        cert_organ_id=certificate_organ_id(cert),
        spki_sha256=hashlib.sha256(spki).hexdigest(),
        cert_sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def _signature_algorithm_name(signer_info: cms.SignerInfo) -> str:
    return str(signer_info["signature_algorithm"]["algorithm"].native)


def _hash_of(signature_algorithm: str) -> str:
    """The hash an algorithm name such as ``sha256_rsa`` carries ("" for ``rsassa_pkcs1v15``, ``ecdsa``...)."""
    head, _, _ = signature_algorithm.partition("_")
    return head if head.startswith(("sha", "md")) and "_" in signature_algorithm else ""


def _imprint_algorithm(token: cms.ContentInfo) -> str:
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    return str(tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native)


def _first_line(value: object) -> str:
    """A one-line, bounded rendering: messages from hostile files go into reports and status texts."""
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else ""


def _describe_exception(exc: BaseException) -> str:
    text = _first_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _time_to_json(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time_from_json(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _signer_to_json(signer: SignerInfo | None) -> dict[str, Any] | None:
    if signer is None:
        return None
    return {
        "subject": signer.subject,
        "cert_organ_id": signer.cert_organ_id,
        "spki_sha256": signer.spki_sha256,
        "cert_sha256": signer.cert_sha256,
        "serial": format(signer.serial, "x"),  # hex: JSON readers lose integers above 2**53
        "not_before": signer.not_before.isoformat(),
        "not_after": signer.not_after.isoformat(),
    }


def _signer_from_json(data: dict[str, Any] | None) -> SignerInfo | None:
    if data is None:
        return None
    return SignerInfo(
        subject=data["subject"],
        organ_id=None,
        cert_organ_id=data["cert_organ_id"],
        spki_sha256=data["spki_sha256"],
        cert_sha256=data["cert_sha256"],
        serial=int(data["serial"], 16),
        not_before=datetime.fromisoformat(data["not_before"]),
        not_after=datetime.fromisoformat(data["not_after"]),
    )


def _revocation_to_json(evidence: RevocationEvidence) -> dict[str, Any]:
    return {
        "subject": evidence.cert_subject,
        "source": evidence.source,
        "status": evidence.status,
        "produced_at": _time_to_json(evidence.produced_at),
        "this_update": _time_to_json(evidence.this_update),
        "next_update": _time_to_json(evidence.next_update),
        "revoked_at": _time_to_json(evidence.revoked_at),
        "responder": evidence.responder,
    }


def _revocation_from_json(data: dict[str, Any]) -> RevocationEvidence:
    return RevocationEvidence(
        cert_subject=data["subject"],
        source=data["source"],
        status=data["status"],
        produced_at=_time_from_json(data["produced_at"]),
        this_update=_time_from_json(data["this_update"]),
        next_update=_time_from_json(data["next_update"]),
        revoked_at=_time_from_json(data["revoked_at"]),
        responder=data["responder"],
    )
