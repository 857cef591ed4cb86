"""Valid edXML documents and statuses parse into the model they were built from."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import Dialect, Edoc, StatusMessage, build_document, build_status, parse, priority_of
from schemas.examples import example_edoc, example_status

SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples"
RECIPIENTS = ("000.00.00.H41", "000.00.00.H13", "000.00.00.G12")


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_shipped_samples_are_valid(sample: Path) -> None:
    """Every shipped sample, including ones written in other tools' styles, parses without a problem."""
    doc = parse(sample.read_bytes())
    assert doc.original == sample.read_bytes()


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("attachment_bytes", [0, 5000])
def test_recipients_and_attachments_round_trip(count: int, attachment_bytes: int) -> None:
    """Documents with 1–3 recipients, with and without attachments, read back as the model they came from."""
    edoc = example_edoc(recipients=RECIPIENTS[:count], attachment_bytes=attachment_bytes)
    doc = parse(build_document(edoc))
    assert doc.message == edoc
    assert isinstance(doc.message, Edoc)
    assert [r.organ_id for r in doc.message.recipients] == list(RECIPIENTS[:count])
    assert sum(len(a.content) for a in doc.message.attachments) == attachment_bytes


def test_vietnamese_text_is_kept_exactly() -> None:
    """Vietnamese subject and content (precomposed diacritics) survive build and parse unchanged."""
    subject = "Về việc hỏa tốc: Ủy ban nhân dân tỉnh Nghệ An đề nghị phối hợp ứng phó bão số 3"
    edoc = example_edoc(subject=subject)
    parsed = parse(build_document(edoc)).message
    assert isinstance(parsed, Edoc)
    assert parsed.subject == subject


def test_original_bytes_are_kept_byte_for_byte() -> None:
    """``parse`` keeps the exact input bytes, so a signature over them stays checkable."""
    data = build_document(example_edoc()).replace(b"\n", b"\r\n")
    assert parse(data).original == data


@pytest.mark.parametrize("priority", range(5))
def test_each_priority(priority: int) -> None:
    """Priority 0 (normal) to 4 (timed express) are accepted and read back."""
    parsed = parse(build_document(example_edoc(priority=priority))).message
    assert isinstance(parsed, Edoc)
    assert parsed.priority == priority


@pytest.mark.parametrize("code", ["01", "02", "03", "04", "05", "06", "13", "15", "16"])
def test_each_status_code(code: str) -> None:
    """Every status code of the standard is accepted and the message is recognised as a status."""
    status = example_status(example_edoc(), code=code)
    doc = parse(build_status(status))
    assert doc.kind == "status"
    assert doc.message == status


@pytest.mark.parametrize("doc_type", [1, 2, 3])
def test_revocation_update_replacement(doc_type: int) -> None:
    """Revocation (BussinessDocType 1), update and replacement documents carry their business type."""
    edoc = example_edoc(business_doc_type=doc_type)
    parsed = parse(build_document(edoc)).message
    assert isinstance(parsed, Edoc)
    assert parsed.business is not None
    assert parsed.business.bussiness_doc_type == doc_type


def test_lgsp_dialect_yields_the_same_model() -> None:
    """A document in the older LGSP dialect reads into the same model as its QCVN 102 twin."""
    lgsp = parse((SAMPLES / "lgsp-dialect.xml").read_bytes())
    assert lgsp.dialect is Dialect.LGSP
    assert isinstance(lgsp.message, Edoc)
    twin = parse(build_document(lgsp.message))
    assert twin.dialect is Dialect.QCVN102
    assert twin.message == lgsp.message


def test_other_tool_style_fields() -> None:
    """A document in another tool's style (default namespace, slashed dates, local times) reads correctly."""
    doc = parse((SAMPLES / "other-tool-default-ns.xml").read_bytes())
    message = doc.message
    assert isinstance(message, Edoc)
    assert message.document_id == "000.00.00.G22,2019/01/16,74/VPCP-TTĐT"
    assert message.trace[0].timestamp.utcoffset() is not None
    assert message.attachments[0].content.decode() == "Văn bản điện tử."
    assert message.steering_type == 2


def test_new_style_long_organ_id_is_accepted() -> None:
    """OrganIds of the 2022 form (up to 35 characters) are accepted as well as legacy 13-character ones."""
    long_id = "H41.01.02.03.04.05.06.07.08.09.10"
    edoc = example_edoc(recipients=(long_id,))
    parsed = parse(build_document(edoc)).message
    assert isinstance(parsed, Edoc)
    assert parsed.recipients[0].organ_id == long_id


def test_status_model_fields() -> None:
    """A status names the document it answers, its sender and code."""
    edoc = example_edoc()
    doc = parse(build_status(example_status(edoc, code="02", description="Sai thể thức")))
    assert isinstance(doc.message, StatusMessage)
    assert doc.message.response_for.document_id == edoc.document_id
    assert doc.message.description == "Sai thể thức"


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_the_lane_reader_agrees_with_parse_on_priority(sample: Path) -> None:
    """``priority_of`` (the intake's cheap read) gives the Priority ``parse`` reads, and 0 for a status."""
    data = sample.read_bytes()
    message = parse(data).message
    assert priority_of(data) == (message.priority if isinstance(message, Edoc) else 0)


@pytest.mark.parametrize("priority", [0, 1, 2, 3, 4])
def test_the_lane_reader_reads_every_priority(priority: int) -> None:
    """Every Priority 0–4 of a built document reads back through ``priority_of``."""
    edoc = example_edoc()
    edoc = replace(edoc, other=replace(edoc.other, priority=priority))
    assert priority_of(build_document(edoc)) == priority


def test_times_are_written_in_vietnam_time() -> None:
    """A UTC time is written as Vietnam local time (UTC+7), yyyy/MM/dd HH:mm:ss, and reads back as the same instant."""
    status = replace(example_status(example_edoc()), timestamp=datetime(2026, 11, 19, 20, 20, tzinfo=UTC))
    data = build_status(status)
    assert b"<edXML:Timestamp>2026/11/20 03:20:00</edXML:Timestamp>" in data
    assert b"<edXML:PromulgationDate>2026/05/16</edXML:PromulgationDate>" in data
    assert parse(data).message == status
