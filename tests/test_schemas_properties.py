"""Properties: build → parse gives back the model; any bytes give a model or InvalidDocument, nothing else."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from schemas import (
    EDXML_NS,
    Attachment,
    Business,
    Code,
    DocumentType,
    Edoc,
    InvalidDocument,
    ManifestReference,
    Organization,
    OtherInfo,
    ParsedDocument,
    PromulgationInfo,
    ResponseFor,
    Signatory,
    StaffInfo,
    StatusMessage,
    TraceHeader,
    build_document,
    build_status,
    document_id_for,
    parse,
)
from schemas._checks import VIETNAM_TZ

# XML 1.0 text: no control characters, surrogates or non-characters; the reader strips surrounding space.
_chars = st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Co"))
text = st.text(_chars, max_size=40).map(str.strip)
required_text = text.filter(bool)
organ_ids = st.from_regex(r"\A\d{3}\.\d{2}\.\d{2}\.[GH]\d{2}\Z") | st.from_regex(
    r"\A[A-Z][0-9]{2}(\.[0-9]{2}){1,5}\Z"
)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.sampled_from([VIETNAM_TZ, UTC])
).map(lambda t: t.replace(microsecond=0))
counts = st.none() | st.integers(0, 10**6)


def organizations(ids: st.SearchStrategy[str] = organ_ids) -> st.SearchStrategy[Organization]:
    """Organizations with optional contact fields."""
    return st.builds(Organization, organ_id=ids, organization_in_charge=text, organ_name=text, email=text)


staff = st.none() | st.builds(StaffInfo, department=text, staff=text, email=text, mobile=text)


@st.composite
def edocs(draw: st.DrawFn) -> Edoc:
    """Documents varying every field the model has."""
    sender = draw(organizations())
    code = Code(str(draw(st.integers(1, 99999))), draw(st.from_regex(r"\A[A-ZĐ]{2,6}(-[A-ZĐ]{2,5})?\Z")))
    day = draw(days)
    n_files = draw(st.integers(0, 3))
    files = tuple(
        Attachment(str(i + 1), draw(required_text), draw(required_text), draw(st.binary(max_size=300)), draw(text))
        for i in range(n_files)
    )
    manifest = tuple(ManifestReference(f"cid:{a.content_id}", a.content_type, a.description, a.attachment_name)
                     for a in files)
    business = draw(
        st.none()
        | st.builds(
            Business,
            bussiness_doc_type=st.integers(0, 3),
            document_id=text,
            bussiness_doc_reason=text,
            paper=counts,
            staff_info=staff,
        )
    )
    return Edoc(
        sender=sender,
        recipients=tuple(draw(st.lists(organizations(), min_size=1, max_size=3))),
        document_id=document_id_for(sender.organ_id, day, code.code_number, code.code_notation),
        code=code,
        promulgation=PromulgationInfo(draw(text), day),
        document_type=DocumentType(draw(st.integers(0, 99)), draw(st.integers(0, 99)), draw(text)),
        subject=draw(required_text),
        content=draw(text),
        signatory=draw(st.none() | st.builds(Signatory, competence=text, position=text, full_name=text)),
        due_date=draw(st.none() | days),
        to_places=tuple(draw(st.lists(text, max_size=3))),
        other=OtherInfo(
            priority=draw(st.integers(0, 4)),
            sphere_of_promulgation=draw(text),
            promulgation_amount=draw(counts),
            page_amount=draw(counts),
        ),
        response_for=tuple(
            draw(st.lists(st.builds(ResponseFor, organ_id=organ_ids, code=text, promulgation_date=days,
                                    document_id=required_text), max_size=2))
        ),
        steering_type=draw(st.none() | st.integers(1, 3)),
        trace=tuple(draw(st.lists(st.builds(TraceHeader, organ_id=organ_ids, timestamp=times), max_size=3))),
        business=business,
        manifest=manifest,
        attachments=files,
    )


statuses = st.builds(
    StatusMessage,
    sender=organizations(),
    response_for=st.builds(ResponseFor, organ_id=organ_ids, code=text, promulgation_date=days,
                           document_id=required_text),
    status_code=st.sampled_from(["01", "02", "03", "04", "05", "06", "13", "15", "16"]),
    timestamp=times,
    description=text,
    staff_info=staff,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edocs())
def test_document_round_trip(edoc: Edoc) -> None:
    """Any document the model can hold is written and read back unchanged."""
    assert parse(build_document(edoc, check=False)).message == edoc


@settings(max_examples=150, deadline=None)
@given(statuses)
def test_status_round_trip(status: StatusMessage) -> None:
    """Any status message is written and read back unchanged."""
    assert parse(build_status(status, check=False)).message == status


_FIELD_DAY = re.compile(r"\d{4}/\d{2}/\d{2}")
_FIELD_TIME = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}")
_FIELD_FORMATS = {"PromulgationDate": _FIELD_DAY, "DueDate": _FIELD_DAY, "Timestamp": _FIELD_TIME}


def _field_dates(data: bytes) -> int:
    """Assert that every date and time in ``data`` has the field's form; return how many there are."""
    root = etree.fromstring(data)
    found = 0
    for name, form in _FIELD_FORMATS.items():
        for element in root.iter(f"{{{EDXML_NS}}}{name}"):
            assert form.fullmatch(element.text or ""), (name, element.text)
            found += 1
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edocs(), statuses)
def test_written_dates_have_the_field_format(edoc: Edoc, status: StatusMessage) -> None:
    """Every date and time the builder writes is yyyy/MM/dd or yyyy/MM/dd HH:mm:ss, and reads back unchanged."""
    for message, data in ((edoc, build_document(edoc, check=False)), (status, build_status(status, check=False))):
        assert _field_dates(data) >= 1
        assert parse(data).message == message


def _model_or_documented_error(data: bytes) -> None:
    try:
        result = parse(data)
    except InvalidDocument as exc:
        assert exc.problems
    else:
        assert isinstance(result, ParsedDocument)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes parse to a model or raise InvalidDocument, never anything else."""
    _model_or_documented_error(data)


_VALID = build_document(Edoc(
    sender=Organization("000.00.00.G22"), recipients=(Organization("000.00.00.H41"),),
    document_id="000.00.00.G22,2026/01/02,1/VPCP", code=Code("1", "VPCP"),
    promulgation=PromulgationInfo("Hà Nội", date(2026, 1, 2)), document_type=DocumentType(1, 1), subject="Thử",
    attachments=(Attachment("1", "a.pdf", "application/pdf", b"%PDF-1.7"),),
    manifest=(ManifestReference("cid:1", "application/pdf"),),
))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_documents(edits: list[tuple[int, int]]) -> None:
    """A valid document with random bytes changed gives a model or InvalidDocument, nothing else."""
    data = bytearray(_VALID)
    for position, value in edits:
        data[position] = value
    _model_or_documented_error(bytes(data))
