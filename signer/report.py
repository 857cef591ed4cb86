"""What verification says: ETSI EN 319 102-1 indications and the ``VerificationReport``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signer.pdf import PdfReport  # signer.pdf builds on this module's types

__all__ = ["Indication", "RevocationEvidence", "SignerInfo", "SubIndication", "VerificationReport"]


class Indication(enum.StrEnum):
    """Top-level verdict (ETSI EN 319 102-1, 5.1.3)."""

    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class SubIndication(enum.StrEnum):
    """Why a verdict is not TOTAL_PASSED (ETSI EN 319 102-1, table 5).

    A signer whose certificate is not pinned for the document's From/OrganId is INDETERMINATE /
    SIG_CONSTRAINTS_FAILURE: the signature is sound, the policy does not let that key speak for that agency.
    """

    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    TRY_LATER = "TRY_LATER"
    REVOCATION_OUT_OF_BOUNDS_NO_POE = "REVOCATION_OUT_OF_BOUNDS_NO_POE"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """Who signed: the leaf certificate's subject, its SPKI pin and the OrganId the document claims.

    ``cert_organ_id`` is the OrganId the certificate names itself (``signer.organ.certificate_organ_id``), or None.
    """

    subject: str
    organ_id: str | None
    cert_organ_id: str | None
    spki_sha256: str
    cert_sha256: str
    serial: int
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class RevocationEvidence:
    """One revocation answer used for one certificate: source ``crl`` or ``ocsp``, and what it said."""

    cert_subject: str
    source: str
    status: str  # "good" | "revoked" | "unknown"
    produced_at: datetime | None
    this_update: datetime | None
    next_update: datetime | None
    revoked_at: datetime | None = None
    responder: str = ""
    cached: bool = False
    # DER of the OCSP response or CRL, so that an auditor can re-check it offline (may be empty when cached).
    der: bytes = b""


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The whole verdict on one document.

    ``signed_bytes_sha256`` is the digest of the exact bytes verified; act only on a document whose bytes hash
    to it and whose indication is TOTAL_PASSED.

    ``pdfs`` holds one ``PdfReport`` per PDF attachment (``signer.pdf``), judged at the same instant under the same
    policy; None when they were not checked (not asked for, or the document was read as a stream).
    """

    indication: Indication
    subindication: SubIndication | None
    errors: tuple[str, ...]
    signer: SignerInfo | None
    chain: tuple[str, ...]  # subjects, leaf first, anchor last
    chain_der: tuple[bytes, ...]
    revocation: tuple[RevocationEvidence, ...]
    algorithms: dict[str, str] = field(default_factory=dict)  # signature, digest, c14n
    signed_bytes_sha256: str = ""
    validation_time: datetime | None = None
    warnings: tuple[str, ...] = ()
    pdfs: tuple[PdfReport, ...] | None = None

    @property
    def passed(self) -> bool:
        """True only for TOTAL_PASSED."""
        return self.indication is Indication.TOTAL_PASSED

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``lienthong verify --json`` (minus ``file``)."""
        return {
            "indication": self.indication.value,
            "subindication": self.subindication.value if self.subindication else None,
            "signer": {
                "subject": self.signer.subject if self.signer else None,
                "organ_id": self.signer.organ_id if self.signer else None,
            },
            "algorithms": dict(self.algorithms),
            "errors": list(self.errors),
            "chain": list(self.chain),
            "revocation": [
                {"subject": r.cert_subject, "source": r.source, "status": r.status, "cached": r.cached}
                for r in self.revocation
            ],
            "signed_bytes_sha256": self.signed_bytes_sha256,
            "validation_time": self.validation_time.isoformat() if self.validation_time else None,
            "warnings": list(self.warnings),
            "pdf_signatures": None if self.pdfs is None else [r.to_json() for r in self.pdfs],
        }
