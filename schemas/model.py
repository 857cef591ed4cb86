"""The typed, immutable edXML model: what a document or a status message says.

Field names follow EDXML.md in snake_case. Text fields default to ``""`` (absent and empty are the same to
every DMS seen in the field); optional structured fields default to ``None`` or an empty tuple.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from schemas._names import Dialect
from schemas.errors import Problem

__all__ = [
    "Appendix",
    "Attachment",
    "Business",
    "Code",
    "DocumentType",
    "Edoc",
    "ManifestReference",
    "Organization",
    "OtherInfo",
    "ParsedDocument",
    "PromulgationInfo",
    "Receiver",
    "ReplacementInfo",
    "ResponseFor",
    "Signatory",
    "SignatureSummary",
    "StaffInfo",
    "StatusMessage",
    "TraceHeader",
]


@dataclass(frozen=True, slots=True)
class Organization:
    """An agency as it appears in From and To."""

    organ_id: str
    organization_in_charge: str = ""
    organ_name: str = ""
    organ_add: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True, slots=True)
class Code:
    """Số và ký hiệu: the document's number and notation, e.g. ``74`` and ``VPCP-TTĐT``."""

    code_number: str
    code_notation: str


@dataclass(frozen=True, slots=True)
class PromulgationInfo:
    """Where and on which day the document was issued."""

    place: str
    promulgation_date: date


@dataclass(frozen=True, slots=True)
class DocumentType:
    """Loại văn bản: a numeric type, its detail code and its name."""

    type: int
    type_detail: int
    type_name: str = ""


@dataclass(frozen=True, slots=True)
class Signatory:
    """SignerInfo: the official who signed on paper (not the certificate holder)."""

    competence: str = ""
    position: str = ""
    full_name: str = ""


@dataclass(frozen=True, slots=True)
class Appendix:
    """One entry of OtherInfo/Appendixes."""

    text: str


@dataclass(frozen=True, slots=True)
class OtherInfo:
    """OtherInfo: priority (0 normal … 4 timed express) and circulation details."""

    priority: int = 0
    sphere_of_promulgation: str = ""
    typer_notation: str = ""
    promulgation_amount: int | None = None
    page_amount: int | None = None
    direction: str = ""
    appendixes: tuple[Appendix, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """The document a reply or a status refers to."""

    organ_id: str
    code: str
    promulgation_date: date
    document_id: str

    @classmethod
    def answering(cls, edoc: Edoc) -> ResponseFor:
        """The ResponseFor of a status about ``edoc``: its sender, code, promulgation date and DocumentId."""
        return cls(
            organ_id=edoc.sender.organ_id,
            code=f"{edoc.code.code_number}/{edoc.code.code_notation}",
            promulgation_date=edoc.promulgation.promulgation_date,
            document_id=edoc.document_id,
        )


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """A hop the document has passed: OrganId and a claimed (unsigned by any TSA) time."""

    organ_id: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class StaffInfo:
    """The clerk responsible."""

    department: str = ""
    staff: str = ""
    email: str = ""
    mobile: str = ""


@dataclass(frozen=True, slots=True)
class Receiver:
    """ReceiverList/Receiver: ReceiverType 0 removed, 1 added."""

    receiver_type: int
    organ_id: str


@dataclass(frozen=True, slots=True)
class ReplacementInfo:
    """ReplacementInfoList/ReplacementInfo: which document replaces which, for whom."""

    document_id: str
    organ_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Business:
    """TraceHeaderList/Bussiness (the standard's spelling): new, revoke, update or replace."""

    bussiness_doc_type: int
    document_id: str = ""
    bussiness_doc_reason: str = ""
    paper: int | None = None
    staff_info: StaffInfo | None = None
    document_info: str = ""
    document_receiver: str = ""
    receivers: tuple[Receiver, ...] = ()
    replacements: tuple[ReplacementInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class ManifestReference:
    """edXMLManifest/Reference: what the body says an attachment is."""

    content_id: str
    content_type: str = ""
    description: str = ""
    attachment_name: str = ""


@dataclass(frozen=True, slots=True)
class Attachment:
    """AttachmentEncoded/Attachment with its content decoded from base64."""

    content_id: str
    attachment_name: str
    content_type: str
    content: bytes = field(repr=False)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Edoc:
    """An official document (công văn) with its header, trace, manifest and attachments."""

    sender: Organization
    recipients: tuple[Organization, ...]
    document_id: str
    code: Code
    promulgation: PromulgationInfo
    document_type: DocumentType
    subject: str
    content: str = ""
    signatory: Signatory | None = None
    due_date: date | None = None
    to_places: tuple[str, ...] = ()
    other: OtherInfo = field(default_factory=OtherInfo)
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None
    trace: tuple[TraceHeader, ...] = ()
    business: Business | None = None
    manifest: tuple[ManifestReference, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    kind: Literal["edoc"] = "edoc"

    @property
    def priority(self) -> int:
        """OtherInfo/Priority, 0–4."""
        return self.other.priority


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A status (01 arrived … 06 completed, 13/15/16 recall) about a document another agency sent."""

    sender: Organization
    response_for: ResponseFor
    status_code: str
    timestamp: datetime
    description: str = ""
    staff_info: StaffInfo | None = None
    kind: Literal["status"] = "status"


@dataclass(frozen=True, slots=True)
class SignatureSummary:
    """What ``inspect`` shows of a signature, without checking it (that is the signer's job)."""

    signature_method: str
    digest_methods: tuple[str, ...]
    canonicalization_method: str
    certificates: int


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A parsed document or status with its original bytes kept byte for byte.

    ``warnings`` lists the field quirks accepted in it (each with its path and code; README, "Field quirks").
    """

    message: Edoc | StatusMessage
    original: bytes = field(repr=False)
    dialect: Dialect
    signature: SignatureSummary | None
    warnings: tuple[Problem, ...] = ()

    @property
    def kind(self) -> Literal["edoc", "status"]:
        """``"edoc"`` or ``"status"``."""
        return self.message.kind
