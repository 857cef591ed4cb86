"""Write documents and statuses in QCVN 102 (the dialect lienthong always emits).

The output is unsigned; ``signer.sign_document`` adds the Signature as the last child of edXMLHeader.
"""

from __future__ import annotations

import base64
from datetime import date, datetime

from lxml import etree

from schemas._checks import VIETNAM_TZ
from schemas._names import EDXML_NS
from schemas.model import Business, Edoc, Organization, ResponseFor, StaffInfo, StatusMessage

__all__ = ["build_document", "build_status"]

_NSMAP = {"edXML": EDXML_NS}


def _el(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{EDXML_NS}}}{name}")
    if text is not None:
        element.text = text
    return element


def _opt(parent: etree._Element, name: str, text: str | int | None) -> None:
    """Write ``name`` only when it has a value (absent and empty read back the same)."""
    if text is not None and text != "":
        _el(parent, name, str(text))


# DMS libraries read dates only as yyyy/MM/dd and times only as yyyy/MM/dd HH:mm:ss in local time; any other form
# (ISO 8601 included) silently reads as empty on their side.
def _day(value: date) -> str:
    return f"{value:%Y/%m/%d}"


def _time(value: datetime) -> str:
    """Vietnam local time (a naive ``value`` is taken as Vietnam time already, as the reader takes it)."""
    return f"{value.astimezone(VIETNAM_TZ) if value.tzinfo else value:%Y/%m/%d %H:%M:%S}"


def _organization(parent: etree._Element, name: str, org: Organization) -> None:
    element = _el(parent, name)
    _el(element, "OrganId", org.organ_id)
    _opt(element, "OrganizationInCharge", org.organization_in_charge)
    _opt(element, "OrganName", org.organ_name)
    _opt(element, "OrganAdd", org.organ_add)
    _opt(element, "Email", org.email)
    _opt(element, "Telephone", org.telephone)
    _opt(element, "Fax", org.fax)
    _opt(element, "Website", org.website)


def _response_for(parent: etree._Element, response: ResponseFor) -> None:
    element = _el(parent, "ResponseFor")
    _el(element, "OrganId", response.organ_id)
    _el(element, "Code", response.code)
    _el(element, "PromulgationDate", _day(response.promulgation_date))
    _el(element, "DocumentId", response.document_id)


def _staff(parent: etree._Element, staff: StaffInfo, order: tuple[str, ...]) -> None:
    element = _el(parent, "StaffInfo")
    values = {"Department": staff.department, "Staff": staff.staff, "Email": staff.email, "Mobile": staff.mobile}
    for name in order:
        _opt(element, name, values[name])


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _envelope() -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.Element(f"{{{EDXML_NS}}}edXML", nsmap=_NSMAP)
    envelope = _el(root, "edXMLEnvelope")
    header = _el(envelope, "edXMLHeader")
    return root, envelope, header


def _write_message_header(header: etree._Element, edoc: Edoc) -> None:
    message = _el(header, "MessageHeader")
    _organization(message, "From", edoc.sender)
    for recipient in edoc.recipients:
        _organization(message, "To", recipient)
    _el(message, "DocumentId", edoc.document_id)
    code = _el(message, "Code")
    _el(code, "CodeNumber", edoc.code.code_number)
    _el(code, "CodeNotation", edoc.code.code_notation)
    promulgation = _el(message, "PromulgationInfo")
    _el(promulgation, "Place", edoc.promulgation.place)
    _el(promulgation, "PromulgationDate", _day(edoc.promulgation.promulgation_date))
    doc_type = _el(message, "DocumentType")
    _el(doc_type, "Type", str(edoc.document_type.type))
    _el(doc_type, "TypeDetail", str(edoc.document_type.type_detail))
    _opt(doc_type, "TypeName", edoc.document_type.type_name)
    _el(message, "Subject", edoc.subject)
    _opt(message, "Content", edoc.content)
    if edoc.signatory is not None:
        signer = _el(message, "SignerInfo")
        _opt(signer, "Competence", edoc.signatory.competence)
        _opt(signer, "Position", edoc.signatory.position)
        _opt(signer, "FullName", edoc.signatory.full_name)
    if edoc.due_date is not None:
        _el(message, "DueDate", _day(edoc.due_date))
    if edoc.to_places:
        places = _el(message, "ToPlaces")
        for place in edoc.to_places:
            _el(places, "Place", place)
    _write_other_info(message, edoc)
    for response in edoc.response_for:
        _response_for(message, response)
    _opt(message, "SteeringType", edoc.steering_type)


def _write_other_info(message: etree._Element, edoc: Edoc) -> None:
    other = _el(message, "OtherInfo")
    _el(other, "Priority", str(edoc.other.priority))
    _opt(other, "SphereOfPromulgation", edoc.other.sphere_of_promulgation)
    _opt(other, "TyperNotation", edoc.other.typer_notation)
    _opt(other, "PromulgationAmount", edoc.other.promulgation_amount)
    _opt(other, "PageAmount", edoc.other.page_amount)
    _opt(other, "Direction", edoc.other.direction)
    if edoc.other.appendixes:
        appendixes = _el(other, "Appendixes")
        for appendix in edoc.other.appendixes:
            _el(appendixes, "Appendix", appendix.text)


def _write_trace(header: etree._Element, edoc: Edoc) -> None:
    if not edoc.trace and edoc.business is None:
        return
    trace = _el(header, "TraceHeaderList")
    for hop in edoc.trace:
        item = _el(trace, "TraceHeader")
        _el(item, "OrganId", hop.organ_id)
        _el(item, "Timestamp", _time(hop.timestamp))
    if (business := edoc.business) is not None:
        _write_business(trace, business)


def _write_business(trace: etree._Element, business: Business) -> None:
    element = _el(trace, "Bussiness")
    _opt(element, "DocumentId", business.document_id)
    _el(element, "BussinessDocType", str(business.bussiness_doc_type))
    _opt(element, "BussinessDocReason", business.bussiness_doc_reason)
    _opt(element, "Paper", business.paper)
    if business.staff_info is not None:
        _staff(element, business.staff_info, ("Department", "Staff", "Email", "Mobile"))
    if business.document_info or business.document_receiver or business.receivers:
        info = _el(element, "BussinessDocumentInfo")
        _opt(info, "DocumentInfo", business.document_info)
        _opt(info, "DocumentReceiver", business.document_receiver)
        if business.receivers:
            receivers = _el(info, "ReceiverList")
            for receiver in business.receivers:
                item = _el(receivers, "Receiver")
                _el(item, "ReceiverType", str(receiver.receiver_type))
                _el(item, "OrganId", receiver.organ_id)
    if business.replacements:
        replacements = _el(element, "ReplacementInfoList")
        for replacement in business.replacements:
            item = _el(replacements, "ReplacementInfo")
            _el(item, "DocumentId", replacement.document_id)
            ids = _el(item, "OrganIdList")
            for organ_id in replacement.organ_ids:
                _el(ids, "OrganId", organ_id)


def _write_body(root: etree._Element, envelope: etree._Element, edoc: Edoc) -> None:
    if edoc.manifest:
        manifest = _el(_el(envelope, "edXMLBody"), "edXMLManifest")
        manifest.set("version", "1.0")
        for ref in edoc.manifest:
            item = _el(manifest, "Reference")
            _el(item, "ContentId", ref.content_id)
            _opt(item, "ContentType", ref.content_type)
            _opt(item, "Description", ref.description)
            _opt(item, "AttachmentName", ref.attachment_name)
    if edoc.attachments:
        encoded = _el(root, "AttachmentEncoded")
        for attachment in edoc.attachments:
            item = _el(encoded, "Attachment")
            _el(item, "ContentId", attachment.content_id)
            _el(item, "AttachmentName", attachment.attachment_name)
            _opt(item, "Description", attachment.description)
            _el(item, "ContentType", attachment.content_type)
            _el(item, "ContentTransferEncoded", base64.b64encode(attachment.content).decode("ascii"))


def build_document(edoc: Edoc, *, check: bool = True) -> bytes:
    """Write ``edoc`` as QCVN 102 edXML (UTF-8).

    With ``check``, the output is parsed back and any problem raises ``InvalidDocument``, so a builder
    mistake never leaves the process as a document.
    """
    root, envelope, header = _envelope()
    _write_message_header(header, edoc)
    _write_trace(header, edoc)
    _write_body(root, envelope, edoc)
    data = _serialise(root)
    if check:
        from schemas._parse import parse  # noqa: PLC0415 - parse imports the reader; keep the builder light

        parse(data)
    return data


def build_status(status: StatusMessage, *, check: bool = True) -> bytes:
    """Write ``status`` as a QCVN 102 status message; with ``check``, parse it back (see ``build_document``)."""
    root, _, header = _envelope()
    message = _el(header, "MessageHeader")
    _response_for(message, status.response_for)
    _organization(message, "From", status.sender)
    _el(message, "StatusCode", status.status_code)
    _opt(message, "Description", status.description)
    _el(message, "Timestamp", _time(status.timestamp))
    if status.staff_info is not None:
        _staff(message, status.staff_info, ("Department", "Staff", "Mobile", "Email"))
    data = _serialise(root)
    if check:
        from schemas._parse import parse  # noqa: PLC0415

        parse(data)
    return data
