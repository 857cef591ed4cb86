"""Each invalid case is refused with the element path of the fault and a plain message."""

from __future__ import annotations

import pytest

from schemas import InvalidDocument, build_document, build_status, parse
from schemas.examples import example_edoc, example_status

HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
DOC = build_document(example_edoc(recipients=("000.00.00.H41", "000.00.00.H13"), attachment_bytes=300))
STATUS = build_status(example_status(example_edoc()))


def problems_of(data: bytes) -> list[tuple[str, str]]:
    """Parse ``data``, which must fail, and return its (path, message) pairs."""
    with pytest.raises(InvalidDocument) as caught:
        parse(data)
    return [(p.path, p.message) for p in caught.value.problems]


def edit(data: bytes, old: str, new: str) -> bytes:
    """Replace ``old`` (which must occur) by ``new`` once."""
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), 1)


CASES = [
    ("legacy OrganId malformed", DOC, "<edXML:OrganId>000.00.00.G22<", "<edXML:OrganId>000.00.00.GXX<",
     f"{HEADER}/From/OrganId", "DDD.DD.DD.XNN"),
    ("second recipient malformed", DOC, "<edXML:OrganId>000.00.00.H13<", "<edXML:OrganId>bad id!<",
     f"{HEADER}/To[2]/OrganId", "not an OrganId"),
    ("OrganId too long", DOC, "<edXML:OrganId>000.00.00.H41<", "<edXML:OrganId>" + "A1." * 12 + "B<",
     f"{HEADER}/To[1]/OrganId", "at most 35"),
    ("DocumentId not matching Code", DOC, ",74/VPCP-TTĐT<", ",75/VPCP-TTĐT<",
     f"{HEADER}/DocumentId", "does not match"),
    ("Priority out of range", DOC, "<edXML:Priority>0<", "<edXML:Priority>5<",
     f"{HEADER}/OtherInfo/Priority", "out of range"),
    ("Priority not a number", DOC, "<edXML:Priority>0<", "<edXML:Priority>high<",
     f"{HEADER}/OtherInfo/Priority", "not a number"),
    ("SteeringType out of range", DOC, "<edXML:SteeringType>1<", "<edXML:SteeringType>4<",
     f"{HEADER}/SteeringType", "SteeringType is 1"),
    ("attachment not base64", DOC, "<edXML:ContentTransferEncoded>", "<edXML:ContentTransferEncoded>@@@",
     "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded", "base64"),
    ("manifest reference without attachment", DOC, "<edXML:ContentId>cid:1<", "<edXML:ContentId>cid:9<",
     "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference", "has no Attachment"),
    ("attachment not in manifest", DOC, "<edXML:ContentId>1<", "<edXML:ContentId>8<",
     "/edXML/AttachmentEncoded/Attachment", "not in the manifest"),
    ("promulgation date unreadable", DOC, "<edXML:PromulgationDate>2026/05/16<",
     "<edXML:PromulgationDate>16.5.2026<", f"{HEADER}/PromulgationInfo/PromulgationDate", "not a date"),
    ("unknown StatusCode", STATUS, "<edXML:StatusCode>03<", "<edXML:StatusCode>07<",
     f"{HEADER}/StatusCode", "not a known StatusCode"),
    ("status timestamp unreadable", STATUS, "<edXML:Timestamp>2026", "<edXML:Timestamp>yesterday 2026",
     f"{HEADER}/Timestamp", "not a time"),
]


@pytest.mark.parametrize(
    ("data", "old", "new", "path", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_invalid_case_names_its_path(data: bytes, old: str, new: str, path: str, words: str) -> None:
    """The fault is reported at its element path, with words that say what is wrong."""
    found = problems_of(edit(data, old, new))
    assert any(p == path and words in m for p, m in found), found


def test_business_doc_type_out_of_range() -> None:
    """BussinessDocType outside 0–3 is refused at its path."""
    data = build_document(example_edoc(business_doc_type=1))
    found = problems_of(edit(data, "<edXML:BussinessDocType>1<", "<edXML:BussinessDocType>9<"))
    path = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType"
    assert any(p == path and "BussinessDocType is 0" in m for p, m in found), found


def test_unexpected_element_is_named_by_the_schema() -> None:
    """An element the structure does not allow is named with its path and what was expected instead."""
    data = edit(edit(DOC, "<edXML:Subject>", "<edXML:Topic>"), "</edXML:Subject>", "</edXML:Topic>")
    found = problems_of(data)
    assert any(p == f"{HEADER}/Topic" and "Expected is ( Subject )" in m for p, m in found), found


def test_all_problems_are_reported_at_once() -> None:
    """Several independent faults are all listed, not just the first."""
    data = edit(edit(DOC, "<edXML:Priority>0<", "<edXML:Priority>9<"), "<edXML:SteeringType>1<",
                "<edXML:SteeringType>4<")
    paths = {p for p, _ in problems_of(data)}
    assert {f"{HEADER}/OtherInfo/Priority", f"{HEADER}/SteeringType"} <= paths


def test_two_signatures_are_refused() -> None:
    """A document carrying more than one XMLDSig Signature is refused (edXML has exactly one)."""
    sig = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>'
    data = edit(DOC, "</edXML:MessageHeader>", "</edXML:MessageHeader>" + sig)
    data = edit(data, "</edXML:Code>", "<Signature xmlns='http://www.w3.org/2000/09/xmldsig#'/></edXML:Code>")
    assert problems_of(data)


def test_lgsp_missing_subject_names_path() -> None:
    """In the LGSP dialect a missing required field is still named by path."""
    data = (
        b'<EdXMLEnvelope xmlns="http://www.go.vn/eDoc"><EdXMLHeader><MessageHeader>'
        b"<From><OrganId>000.00.00.H41</OrganId></From><To><OrganId>000.00.00.H13</OrganId></To>"
        b"<DocumentId>000.00.00.H41,2021/03/02,1/UB</DocumentId><Code><CodeNumber>1</CodeNumber>"
        b"<CodeNotation>UB</CodeNotation></Code><PromulgationInfo><Place>x</Place>"
        b"<PromulgationDate>2021-03-02</PromulgationDate></PromulgationInfo>"
        b"<DocumentType><Type>1</Type><TypeDetail>0</TypeDetail></DocumentType>"
        b"</MessageHeader></EdXMLHeader></EdXMLEnvelope>"
    )
    found = problems_of(data)
    assert ("/EdXMLEnvelope/EdXMLHeader/MessageHeader/Subject", "is required but missing") in found
