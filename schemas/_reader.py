"""Turn a safely parsed lxml tree of either dialect into the model, collecting every problem with its path.

Elements are matched by local name (case-insensitively in the LGSP dialect), because AttachmentEncoded and its
children are written with and without the edXML namespace in the field; the structure itself (which elements,
how many, in any order) is checked by ``schemas._structure`` before this runs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TypeVar

from lxml import etree

from schemas import _checks as checks
from schemas._names import DSIG_NS, Dialect
from schemas.errors import Problem
from schemas.model import (
    Appendix,
    Attachment,
    Business,
    Code,
    DocumentType,
    Edoc,
    ManifestReference,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    Signatory,
    SignatureSummary,
    StaffInfo,
    StatusMessage,
    TraceHeader,
)

__all__ = ["element_path", "read_message", "signature_summary"]

_T = TypeVar("_T")
# Placeholder for a field already reported as a problem; a model carrying it is never returned by ``parse``.
_UNREADABLE_TIME = datetime.min.replace(tzinfo=UTC)
_Element = etree._Element  # noqa: SLF001 - lxml's public element type has a private name


def _local(element: _Element) -> str:
    return str(element.tag).rpartition("}")[2]


def element_path(element: _Element) -> str:
    """``/edXML/edXMLEnvelope/…/To[2]/OrganId``: local names, with a 1-based index where siblings repeat."""
    parts: list[str] = []
    node: _Element | None = element
    while node is not None:
        name = _local(node)
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and _local(c) == name]
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


class _Reader:
    """Reads fields, records a ``Problem`` for each missing or bad value and carries on."""

    def __init__(self, dialect: Dialect) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self._fold = dialect is Dialect.LGSP
        self._index: dict[_Element, dict[str, list[_Element]]] = {}

    def all(self, parent: _Element, name: str) -> list[_Element]:
        """The children of ``parent`` named ``name`` (indexed once per parent: documents are read field by field)."""
        index = self._index.get(parent)
        if index is None:
            index = {}
            for child in parent:
                tag = child.tag
                if isinstance(tag, str):
                    local = tag.rpartition("}")[2]
                    index.setdefault(local.lower() if self._fold else local, []).append(child)
            self._index[parent] = index
        return index.get(name.lower() if self._fold else name, [])

    def one(self, parent: _Element, name: str, *, required: bool = True) -> _Element | None:
        found = self.all(parent, name)
        if not found:
            if required:
                self.fail(f"{element_path(parent)}/{name}", "is required but missing")
            return None
        if len(found) > 1:
            self.fail(element_path(found[1]), f"{name} may appear only once")
        return found[0]

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def quirk(self, parent: _Element, name: str, code: str, message: str) -> None:
        """Record a field quirk of ``parent``'s child ``name``: a warning with ``code``, not a problem."""
        element = self.one(parent, name)
        self.warnings.append(Problem(element_path(element) if element is not None else name, message, code))

    def text(self, parent: _Element | None, name: str, *, required: bool = False) -> str:
        if parent is None:
            return ""
        element = self.one(parent, name, required=required)
        if element is None:
            return ""
        value = (element.text or "").strip()
        if required and not value:
            self.fail(element_path(element), "must not be empty")
        return value

    def convert(self, parent: _Element | None, name: str, convert: Callable[[str], _T], *, required: bool) -> _T | None:
        if parent is None:
            return None
        element = self.one(parent, name, required=required)
        if element is None:
            return None
        raw = (element.text or "").strip()
        if not raw:
            if required:
                self.fail(element_path(element), "must not be empty")
            return None
        try:
            return convert(raw)
        except ValueError as exc:
            self.fail(element_path(element), str(exc))
            return None

    def code_in(
        self, parent: _Element | None, name: str, allowed: range, meaning: str, *, required: bool = False
    ) -> int | None:
        def to_int(raw: str) -> int:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{raw!r} is not a number; {meaning}") from None
            if value not in allowed:
                raise ValueError(f"{value} is out of range; {meaning}")
            return value

        return self.convert(parent, name, to_int, required=required)

    def count(self, parent: _Element | None, name: str) -> int | None:
        def to_count(raw: str) -> int:
            if not raw.isdigit():
                raise ValueError(f"{raw!r} is not a whole number")
            return int(raw)

        return self.convert(parent, name, to_count, required=False)

    def date(self, parent: _Element | None, name: str, *, required: bool = True) -> date | None:
        return self.convert(parent, name, checks.parse_date, required=required)

    def datetime(self, parent: _Element | None, name: str, *, required: bool = True) -> datetime | None:
        return self.convert(parent, name, checks.parse_datetime, required=required)

    def organ_id(self, parent: _Element | None, name: str = "OrganId") -> str:
        value = self.text(parent, name, required=True)
        if value and parent is not None:
            problem = checks.organ_id_problem(value)
            if problem:
                element = self.one(parent, name)
                self.fail(element_path(element) if element is not None else name, problem)
        return value

    # --- structures -------------------------------------------------------------------------------------

    def organization(self, element: _Element) -> Organization:
        return Organization(
            organ_id=self.organ_id(element),
            organization_in_charge=self.text(element, "OrganizationInCharge"),
            organ_name=self.text(element, "OrganName"),
            organ_add=self.text(element, "OrganAdd"),
            email=self.text(element, "Email"),
            telephone=self.text(element, "Telephone"),
            fax=self.text(element, "Fax"),
            website=self.text(element, "Website"),
        )

    def staff(self, element: _Element | None) -> StaffInfo | None:
        if element is None:
            return None
        return StaffInfo(
            department=self.text(element, "Department"),
            staff=self.text(element, "Staff"),
            email=self.text(element, "Email"),
            mobile=self.text(element, "Mobile"),
        )

    def response_for(self, element: _Element) -> ResponseFor:
        return ResponseFor(
            organ_id=self.organ_id(element),
            code=self.text(element, "Code"),
            promulgation_date=self.date(element, "PromulgationDate") or date.min,
            document_id=self.text(element, "DocumentId", required=True),
        )

    def trace(self, trace_list: _Element | None) -> tuple[TraceHeader, ...]:
        if trace_list is None:
            return ()
        return tuple(
            TraceHeader(
                organ_id=self.organ_id(header),
                timestamp=self.datetime(header, "Timestamp") or _UNREADABLE_TIME,
            )
            for header in self.all(trace_list, "TraceHeader")
        )

    def business(self, element: _Element | None) -> Business | None:
        if element is None:
            return None
        doc_type = self.code_in(
            element,
            "BussinessDocType",
            checks.BUSINESS_DOC_TYPES,
            "BussinessDocType is 0 new, 1 revoke, 2 update or 3 replace",
            required=True,
        )
        info = self.one(element, "BussinessDocumentInfo", required=False)
        receivers: list[Receiver] = []
        receiver_list = self.one(info, "ReceiverList", required=False) if info is not None else None
        for receiver in self.all(receiver_list, "Receiver") if receiver_list is not None else []:
            kind = self.code_in(
                receiver,
                "ReceiverType",
                checks.RECEIVER_TYPES,
                "ReceiverType is 0 (removed) or 1 (added)",
                required=True,
            )
            receivers.append(Receiver(receiver_type=kind if kind is not None else -1, organ_id=self.organ_id(receiver)))
        replacements: list[ReplacementInfo] = []
        replacement_list = self.one(element, "ReplacementInfoList", required=False)
        for item in self.all(replacement_list, "ReplacementInfo") if replacement_list is not None else []:
            ids = self.one(item, "OrganIdList")
            organ_ids = tuple((o.text or "").strip() for o in self.all(ids, "OrganId")) if ids is not None else ()
            for organ_element, organ_id in zip(
                self.all(ids, "OrganId") if ids is not None else [], organ_ids, strict=True
            ):
                problem = checks.organ_id_problem(organ_id)
                if problem:
                    self.fail(element_path(organ_element), problem)
            replacements.append(
                ReplacementInfo(document_id=self.text(item, "DocumentId", required=True), organ_ids=organ_ids)
            )
        return Business(
            bussiness_doc_type=doc_type if doc_type is not None else -1,
            document_id=self.text(element, "DocumentId"),
            bussiness_doc_reason=self.text(element, "BussinessDocReason"),
            paper=self.count(element, "Paper"),
            staff_info=self.staff(self.one(element, "StaffInfo", required=False)),
            document_info=self.text(info, "DocumentInfo"),
            document_receiver=self.text(info, "DocumentReceiver"),
            receivers=tuple(receivers),
            replacements=tuple(replacements),
        )

    def other_info(self, element: _Element | None) -> OtherInfo:
        if element is None:
            return OtherInfo()
        priority = self.code_in(
            element,
            "Priority",
            checks.PRIORITIES,
            "Priority is 0 normal, 1 urgent, 2 very urgent, 3 express or 4 timed express",
        )
        appendixes = self.one(element, "Appendixes", required=False)
        return OtherInfo(
            priority=priority or 0,
            sphere_of_promulgation=self.text(element, "SphereOfPromulgation"),
            typer_notation=self.text(element, "TyperNotation"),
            promulgation_amount=self.count(element, "PromulgationAmount"),
            page_amount=self.count(element, "PageAmount"),
            direction=self.text(element, "Direction"),
            appendixes=tuple(
                Appendix((a.text or "").strip())
                for a in (self.all(appendixes, "Appendix") if appendixes is not None else [])
            ),
        )

    def manifest(self, body: _Element | None) -> list[tuple[ManifestReference, _Element]]:
        manifest = self.one(body, "edXMLManifest", required=False) if body is not None else None
        if manifest is None:
            return []
        return [
            (
                ManifestReference(
                    content_id=self.text(ref, "ContentId", required=True),
                    content_type=self.text(ref, "ContentType"),
                    description=self.text(ref, "Description"),
                    attachment_name=self.text(ref, "AttachmentName"),
                ),
                ref,
            )
            for ref in self.all(manifest, "Reference")
        ]

    def attachments(self, containers: list[_Element]) -> list[tuple[Attachment, _Element]]:
        found: list[tuple[Attachment, _Element]] = []
        for container in containers:
            for element in self.all(container, "Attachment"):
                encoded = self.one(element, "ContentTransferEncoded")
                content = b""
                if encoded is not None:
                    compact = "".join((encoded.text or "").split())
                    try:
                        content = base64.b64decode(compact, validate=True)
                    except (binascii.Error, ValueError):
                        self.fail(element_path(encoded), "is not valid base64")
                found.append(
                    (
                        Attachment(
                            content_id=self.text(element, "ContentId", required=True),
                            attachment_name=self.text(element, "AttachmentName"),
                            content_type=self.text(element, "ContentType"),
                            content=content,
                            description=self.text(element, "Description"),
                        ),
                        element,
                    )
                )
        return found


def _content_key(content_id: str) -> str:
    return content_id.removeprefix("cid:").strip()


def _check_pairs(
    reader: _Reader,
    refs: list[tuple[ManifestReference, _Element]],
    files: list[tuple[Attachment, _Element]],
) -> None:
    ref_ids = {_content_key(r.content_id) for r, _ in refs}
    file_ids = {_content_key(a.content_id) for a, _ in files}
    for ref, element in refs:
        if ref.content_id and _content_key(ref.content_id) not in file_ids:
            reader.fail(element_path(element), f"manifest Reference {ref.content_id!r} has no Attachment")
    for attachment, element in files:
        if attachment.content_id and _content_key(attachment.content_id) not in ref_ids:
            reader.fail(element_path(element), f"Attachment {attachment.content_id!r} is not in the manifest")


def _read_edoc(reader: _Reader, root: _Element, envelope: _Element, header: _Element, message: _Element) -> Edoc:
    sender_el = reader.one(message, "From")
    sender = reader.organization(sender_el) if sender_el is not None else Organization("")
    to_elements = reader.all(message, "To")
    if not to_elements:
        reader.fail(f"{element_path(message)}/To", "at least one recipient (To) is required")
    recipients = tuple(reader.organization(t) for t in to_elements)
    code_el = reader.one(message, "Code")
    code = Code(reader.text(code_el, "CodeNumber", required=True), reader.text(code_el, "CodeNotation"))
    prom_el = reader.one(message, "PromulgationInfo")
    promulgation = PromulgationInfo(
        place=reader.text(prom_el, "Place"),
        promulgation_date=reader.date(prom_el, "PromulgationDate") or date.min,
    )
    type_el = reader.one(message, "DocumentType")
    doc_type = DocumentType(
        type=reader.convert(type_el, "Type", int, required=True) or 0,
        type_detail=reader.convert(type_el, "TypeDetail", int, required=True) or 0,
        type_name=reader.text(type_el, "TypeName"),
    )
    document_id = reader.text(message, "DocumentId", required=True)
    if document_id and sender.organ_id and promulgation.promulgation_date != date.min and code.code_number:
        expected = checks.document_id_for(
            sender.organ_id, promulgation.promulgation_date, code.code_number, code.code_notation
        )
        if checks.is_uuid(document_id):
            reader.quirk(
                message,
                "DocumentId",
                checks.UUID_DOCUMENT_ID,
                f"{document_id!r} is a random UUID, not <OrganId>,<yyyy/MM/dd>,<Number/Notation> "
                f"({expected!r}); accepted as a field quirk",
            )
        elif document_id != expected:
            element = reader.one(message, "DocumentId")
            reader.fail(
                element_path(element) if element is not None else "DocumentId",
                f"{document_id!r} does not match From/OrganId, PromulgationDate and Code: expected {expected!r}",
            )
    signer_el = reader.one(message, "SignerInfo", required=False)
    to_places_el = reader.one(message, "ToPlaces", required=False)
    trace_list = reader.one(header, "TraceHeaderList", required=False)
    body = reader.one(envelope, "edXMLBody", required=False)
    refs = reader.manifest(body)
    containers = [
        c for parent in (root, envelope, body) if parent is not None for c in reader.all(parent, "AttachmentEncoded")
    ]
    files = reader.attachments(containers)
    _check_pairs(reader, refs, files)
    return Edoc(
        sender=sender,
        recipients=recipients,
        document_id=document_id,
        code=code,
        promulgation=promulgation,
        document_type=doc_type,
        subject=reader.text(message, "Subject", required=True),
        content=reader.text(message, "Content"),
        signatory=(
            Signatory(
                competence=reader.text(signer_el, "Competence"),
                position=reader.text(signer_el, "Position"),
                full_name=reader.text(signer_el, "FullName"),
            )
            if signer_el is not None
            else None
        ),
        due_date=reader.date(message, "DueDate", required=False),
        to_places=tuple((p.text or "").strip() for p in reader.all(to_places_el, "Place"))
        if to_places_el is not None
        else (),
        other=reader.other_info(reader.one(message, "OtherInfo", required=False)),
        response_for=tuple(reader.response_for(r) for r in reader.all(message, "ResponseFor")),
        steering_type=_steering_type(reader, message),
        trace=reader.trace(trace_list),
        business=reader.business(
            reader.one(trace_list, "Bussiness", required=False) if trace_list is not None else None
        ),
        manifest=tuple(r for r, _ in refs),
        attachments=tuple(a for a, _ in files),
    )


def _steering_type(reader: _Reader, message: _Element) -> int | None:
    meaning = "SteeringType is 1 not a directive, 2 directive or 3 report on a directive"
    value = reader.code_in(message, "SteeringType", range(checks.STEERING_TYPES.stop), meaning)
    if value == 0:
        reader.quirk(
            message,
            "SteeringType",
            checks.STEERING_TYPE_0,
            f"0 is not a QCVN 102 code ({meaning}) but what DMS libraries write by default; accepted as a field quirk",
        )
    return value


def _read_status(reader: _Reader, message: _Element) -> StatusMessage:
    sender_el = reader.one(message, "From")
    response_el = reader.one(message, "ResponseFor")

    def status_code(raw: str) -> str:
        if raw not in checks.STATUS_CODES:
            known = ", ".join(sorted(checks.STATUS_CODES))
            raise ValueError(f"{raw!r} is not a known StatusCode ({known})")
        return raw

    return StatusMessage(
        sender=reader.organization(sender_el) if sender_el is not None else Organization(""),
        response_for=(
            reader.response_for(response_el) if response_el is not None else ResponseFor("", "", date.min, "")
        ),
        status_code=reader.convert(message, "StatusCode", status_code, required=True) or "",
        timestamp=reader.datetime(message, "Timestamp") or _UNREADABLE_TIME,
        description=reader.text(message, "Description"),
        staff_info=reader.staff(reader.one(message, "StaffInfo", required=False)),
    )


def read_message(root: _Element, dialect: Dialect) -> tuple[Edoc | StatusMessage | None, list[Problem], list[Problem]]:
    """Read ``root`` (already known to be of ``dialect``) into a model; return it with every problem and warning.

    The model is ``None`` only when the envelope itself is missing; otherwise it is returned even with
    problems, so that callers can report all of them at once. Warnings are the field quirks accepted.
    """
    reader = _Reader(dialect)
    envelope = root if dialect is Dialect.LGSP else reader.one(root, "edXMLEnvelope")
    header = reader.one(envelope, "edXMLHeader") if envelope is not None else None
    message = reader.one(header, "MessageHeader") if header is not None else None
    if envelope is None or header is None or message is None:
        return None, reader.problems, reader.warnings
    if reader.all(message, "StatusCode"):
        return _read_status(reader, message), reader.problems, reader.warnings
    return _read_edoc(reader, root, envelope, header, message), reader.problems, reader.warnings


def signature_summary(root: _Element) -> SignatureSummary | None:
    """The algorithms of the first XMLDSig Signature in ``root``, unchecked; ``None`` when unsigned."""
    signature = next(root.iter(f"{{{DSIG_NS}}}Signature"), None)
    if signature is None:
        return None

    def algorithm(path: str) -> str:
        element = signature.find(path)
        return element.get("Algorithm", "") if element is not None else ""

    ns = f"{{{DSIG_NS}}}"
    return SignatureSummary(
        signature_method=algorithm(f"{ns}SignedInfo/{ns}SignatureMethod"),
        digest_methods=tuple(d.get("Algorithm", "") for d in signature.iter(f"{ns}DigestMethod")),
        canonicalization_method=algorithm(f"{ns}SignedInfo/{ns}CanonicalizationMethod"),
        certificates=sum(1 for _ in signature.iter(f"{ns}X509Certificate")),
    )
