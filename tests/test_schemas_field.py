"""edXML as the field writes it: the orders DMS libraries use, their extra elements and their quirks."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from hub.cli import main
from schemas import EDXML_NS, Edoc, InvalidDocument, ResponseFor, build_document, build_status, parse
from schemas.examples import example_edoc, example_status
from signer.report import Indication
from signer.sign import sign_document
from tests.support.pki_fixtures import AGENCY_RSA_ORGAN_ID, FIXED_NOW
from tests.support.signing import key_of

E = "{" + EDXML_NS + "}"
HEADER = f"{E}edXMLEnvelope/{E}edXMLHeader"
MESSAGE = f"{HEADER}/{E}MessageHeader"
#: The QCVN 102 prefix of MessageHeader, before the part the EdXML102 library orders its own way.
QCVN_START = ("From", "To", "DocumentId", "Code", "PromulgationInfo", "DocumentType", "Subject", "Content")
#: Each group the issue names, where it sits, and the order the field writes it in.
FIELD_ORDERS = {
    "MessageHeader": (
        MESSAGE,
        (
            *QCVN_START,
            "SignerInfo",
            "DueDate",
            "OtherInfo",
            "ResponseFor",
            "SteeringType",
            "ResponseForTask",
            "ApplicationType",
            "ToPlaces",
        ),
    ),
    "ResponseFor": (f"{MESSAGE}/{E}ResponseFor", ("OrganId", "Code", "DocumentId", "PromulgationDate")),
    "TraceHeaderList": (f"{HEADER}/{E}TraceHeaderList", ("Paper", "Bussiness", "TraceHeader")),
    "Bussiness/StaffInfo": (
        f"{HEADER}/{E}TraceHeaderList/{E}Bussiness/{E}StaffInfo",
        ("Department", "DepartmentId", "Staff", "StaffId", "Email", "Mobile"),
    ),
}
STATUS_ORDERS = {
    "status MessageHeader": (MESSAGE, ("From", "ResponseFor", "StaffInfo", "StatusCode", "Description", "Timestamp")),
    "status StaffInfo": (
        f"{MESSAGE}/{E}StaffInfo",
        ("Department", "DepartmentId", "Staff", "StaffId", "Email", "Mobile"),
    ),
}


def _field_edoc(sender: str = AGENCY_RSA_ORGAN_ID) -> etree._Element:
    """A document with every group the field reorders, plus the elements only the field writes."""
    edoc = example_edoc(sender=sender, business_doc_type=0, attachment_bytes=100)
    answered = ResponseFor("000.00.00.H41", "12/UBND-VX", date(2026, 5, 2), "000.00.00.H41,2026/05/02,12/UBND-VX")
    root = etree.fromstring(build_document(dataclasses.replace(edoc, response_for=(answered,))))
    message = root.find(MESSAGE)
    assert message is not None
    etree.SubElement(message, f"{E}ResponseForTask").text = "0"
    etree.SubElement(message, f"{E}ApplicationType").text = "1"
    trace = root.find(f"{HEADER}/{E}TraceHeaderList")
    assert trace is not None
    etree.SubElement(trace, f"{E}Paper").text = "1"
    _add_staff_ids(root)
    return root


def _field_status() -> etree._Element:
    """A status from the RSA test agency, its StaffInfo with the field's DepartmentId and StaffId."""
    edoc = example_edoc(sender="000.00.00.H41", recipients=(AGENCY_RSA_ORGAN_ID,))
    root = etree.fromstring(build_status(example_status(edoc, by=AGENCY_RSA_ORGAN_ID)))
    _add_staff_ids(root)
    return root


def _add_staff_ids(root: etree._Element) -> None:
    for staff in root.iter(f"{E}StaffInfo"):
        etree.SubElement(staff, f"{E}DepartmentId").text = "000.00.00.G22.01"
        etree.SubElement(staff, f"{E}StaffId").text = "VT-0042"


def _order(root: etree._Element, path: str, names: tuple[str, ...]) -> None:
    """Put the children of every element at ``path`` in the order of ``names`` (repeats stay together)."""
    for parent in root.iterfind(path):
        children = sorted(parent, key=lambda child: names.index(etree.QName(child).localname))
        parent[:] = children


def _shuffle(root: etree._Element, path: str, rng: random.Random) -> None:
    """Shuffle the children of every element at ``path``; repeated elements keep their order among themselves."""
    for parent in root.iterfind(path):
        children = list(parent)
        slots = children[:]
        rng.shuffle(slots)
        queues = {name: iter([c for c in children if c.tag == name]) for name in {c.tag for c in children}}
        parent[:] = [next(queues[slot.tag]) for slot in slots]


def _signed(root: etree._Element, pki) -> bytes:
    return sign_document(
        etree.tostring(root, xml_declaration=True, encoding="UTF-8"), key_of(pki.agency_rsa), chain=pki.agency_rsa.chain
    )


def _assert_valid_and_verified(root: etree._Element, pki, verifier) -> None:
    data = _signed(root, pki)
    parsed = parse(data)
    assert parsed.warnings == ()
    report = verifier.verify(data, at=FIXED_NOW)
    assert report.indication is Indication.TOTAL_PASSED, report.errors


def test_the_qcvn_order_validates_and_verifies(pki, verifier):
    """A document and a status in the QCVN 102 order, with the field's extra elements, validate and verify."""
    for root in (_field_edoc(), _field_status()):
        _assert_valid_and_verified(root, pki, verifier)


@pytest.mark.parametrize("group", [*FIELD_ORDERS, *STATUS_ORDERS])
def test_each_field_order_validates_and_verifies(pki, verifier, group):
    """A document or status with a group in the EdXML102 library's order validates, reads the same and verifies."""
    root = _field_status() if group in STATUS_ORDERS else _field_edoc()
    expected = parse(etree.tostring(root)).message
    _order(root, *{**FIELD_ORDERS, **STATUS_ORDERS}[group])
    assert parse(etree.tostring(root)).message == expected
    _assert_valid_and_verified(root, pki, verifier)


def test_every_field_order_at_once_validates_and_verifies(pki, verifier):
    """A document and a status with every group in the field's order at once validate and verify."""
    for root, orders in ((_field_edoc(), FIELD_ORDERS), (_field_status(), STATUS_ORDERS)):
        for path, names in orders.values():
            _order(root, path, names)
        _assert_valid_and_verified(root, pki, verifier)


_EDOC = etree.tostring(_field_edoc(), encoding="UTF-8")
_STATUS = etree.tostring(_field_status(), encoding="UTF-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.booleans())
def test_any_sibling_order_keeps_validity(rng: random.Random, status: bool) -> None:
    """Shuffling the siblings inside each group (documents and statuses) keeps the document valid and its model."""
    data, orders = (_STATUS, STATUS_ORDERS) if status else (_EDOC, FIELD_ORDERS)
    root = etree.fromstring(data)
    for path, _ in orders.values():
        _shuffle(root, path, rng)
    assert parse(etree.tostring(root)).message == parse(data).message


LGSP = (Path(__file__).resolve().parent.parent / "schemas" / "samples" / "lgsp-dialect.xml").read_bytes()
FIELD_EDOC_PATH = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
LGSP_PATH = "/EdXMLEnvelope/EdXMLHeader/MessageHeader"


@pytest.mark.parametrize(
    ("data", "old", "new", "path", "words"),
    [
        (_EDOC, b"<edXML:ToPlaces>", b"<edXML:Topic/><edXML:ToPlaces>", f"{FIELD_EDOC_PATH}/Topic", "not expected"),
        (LGSP, b"<OtherInfo>", b"<Topic/><OtherInfo>", f"{LGSP_PATH}/Topic", "not expected"),
        (
            _EDOC,
            b"<edXML:Subject>",
            b"<edXML:Subject>x</edXML:Subject><edXML:Subject>",
            f"{FIELD_EDOC_PATH}/Subject[2]",
            "only once",
        ),
        (LGSP, b"<Subject>", b"<Subject>x</Subject><Subject>", f"{LGSP_PATH}/Subject[2]", "only once"),
        (
            _EDOC,
            b"<edXML:CodeNotation>VPCP-TT\xc4\x90T</edXML:CodeNotation>",
            b"",
            f"{FIELD_EDOC_PATH}/Code/CodeNotation",
            "required",
        ),
        (LGSP, b"<Place>Ngh\xe1\xbb\x87 An</Place>", b"", f"{LGSP_PATH}/PromulgationInfo/Place", "required"),
        (
            LGSP,
            b"<Priority>2</Priority>",
            b"<Priority>2<b/></Priority>",
            f"{LGSP_PATH}/OtherInfo/Priority",
            "text only",
        ),
    ],
    ids=["unknown", "lgsp unknown", "repeated", "lgsp repeated", "missing", "lgsp missing", "lgsp element in text"],
)
def test_structure_faults_are_errors_in_both_dialects(data: bytes, old: bytes, new: bytes, path: str, words: str):
    """Unknown, repeated and missing elements are still refused at their path, in field-ordered and LGSP documents."""
    assert old in data
    with pytest.raises(InvalidDocument) as caught:
        parse(data.replace(old, new, 1))
    assert any(p.path == path and words in p.message for p in caught.value.problems), caught.value.problems


# --- field quirks ----------------------------------------------------------------------------------------------

RANDOM_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def _with_defaults(root: etree._Element) -> etree._Element:
    """``root`` as EdXML102 writes it when left to its defaults: a random UUID DocumentId, SteeringType 0."""
    for name, value in (("DocumentId", RANDOM_ID), ("SteeringType", "0")):
        element = root.find(f"{MESSAGE}/{E}{name}")
        assert element is not None
        element.text = value
    return root


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [("DocumentId", RANDOM_ID, "UUID_DOCUMENT_ID"), ("SteeringType", "0", "STEERING_TYPE_0")],
)
def test_a_field_quirk_is_a_warning_or_in_strict_mode_an_error(name: str, value: str, code: str):
    """A UUID DocumentId or SteeringType 0 is accepted with a warning at its path; strict parsing refuses it there."""
    root = _field_edoc()
    element = root.find(f"{MESSAGE}/{E}{name}")
    assert element is not None
    element.text = value
    data = etree.tostring(root)
    path = f"{FIELD_EDOC_PATH}/{name}"
    parsed = parse(data)
    assert [(w.path, w.code) for w in parsed.warnings] == [(path, code)]
    with pytest.raises(InvalidDocument) as caught:
        parse(data, strict=True)
    assert [(p.path, p.code) for p in caught.value.problems] == [(path, code)]
    assert caught.value.warnings == ()


def test_a_document_with_the_library_defaults_is_valid_and_verifies(pki, verifier):
    """A field-ordered document with a UUID DocumentId and SteeringType 0 is valid (two warnings) and verifies."""
    root = _with_defaults(_field_edoc())
    for path, names in FIELD_ORDERS.values():
        _order(root, path, names)
    data = _signed(root, pki)
    parsed = parse(data)
    assert {w.code for w in parsed.warnings} == {"UUID_DOCUMENT_ID", "STEERING_TYPE_0"}
    assert isinstance(parsed.message, Edoc)
    assert (parsed.message.document_id, parsed.message.steering_type) == (RANDOM_ID, 0)
    assert verifier.verify(data, at=FIXED_NOW).indication is Indication.TOTAL_PASSED


def test_an_invalid_document_still_lists_its_warnings():
    """A document refused for a real fault still reports its field quirks, apart from its errors."""
    data = etree.tostring(_with_defaults(_field_edoc())).replace(b">0</edXML:Priority>", b">9</edXML:Priority>")
    with pytest.raises(InvalidDocument) as caught:
        parse(data)
    assert [p.path for p in caught.value.problems] == [f"{FIELD_EDOC_PATH}/OtherInfo/Priority"]
    assert {w.code for w in caught.value.warnings} == {"UUID_DOCUMENT_ID", "STEERING_TYPE_0"}


def test_validate_prints_warnings_and_strict_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """``lienthong validate`` passes a quirky document and names each warning; with --strict it fails on them."""
    document = tmp_path / "defaults.xml"
    document.write_bytes(etree.tostring(_with_defaults(_field_edoc())))
    assert main(["validate", str(document)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{document}: valid edoc\n"
    assert f"{document}: warning UUID_DOCUMENT_ID: {FIELD_EDOC_PATH}/DocumentId: " in err
    assert f"{document}: warning STEERING_TYPE_0: {FIELD_EDOC_PATH}/SteeringType: " in err
    assert main(["validate", "--json", str(document)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert [(w["path"], w["code"]) for w in line["warnings"]] == [
        (f"{FIELD_EDOC_PATH}/DocumentId", "UUID_DOCUMENT_ID"),
        (f"{FIELD_EDOC_PATH}/SteeringType", "STEERING_TYPE_0"),
    ]
    assert main(["validate", "--strict", "--json", str(document)]) == 1
    line = json.loads(capsys.readouterr().out)
    assert (line["valid"], line["warnings"]) == (False, [])
    assert {e["path"] for e in line["errors"]} == {f"{FIELD_EDOC_PATH}/DocumentId", f"{FIELD_EDOC_PATH}/SteeringType"}
