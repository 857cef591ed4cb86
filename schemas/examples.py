"""Realistic example documents for the demo, the tests and the benchmarks (Vietnamese text included)."""

from __future__ import annotations

from datetime import date, datetime

from schemas._checks import VIETNAM_TZ, document_id_for
from schemas.model import (
    Attachment,
    Business,
    Code,
    DocumentType,
    Edoc,
    ManifestReference,
    Organization,
    OtherInfo,
    PromulgationInfo,
    ResponseFor,
    Signatory,
    StaffInfo,
    StatusMessage,
    TraceHeader,
)

__all__ = ["AGENCIES", "example_edoc", "example_status"]

#: A few real-looking agencies: Government Office, Nghệ An and Bình Dương People's Committees, a ministry.
AGENCIES: dict[str, str] = {
    "000.00.00.G22": "Văn phòng Chính phủ",
    "000.00.00.H41": "UBND tỉnh Nghệ An",
    "000.00.00.H13": "UBND tỉnh Bình Dương",
    "000.00.00.G12": "Bộ Thông tin và Truyền thông",
}


def _org(organ_id: str) -> Organization:
    return Organization(
        organ_id=organ_id,
        organization_in_charge="Lãnh đạo cơ quan",
        organ_name=AGENCIES.get(organ_id, f"Cơ quan {organ_id}"),
        organ_add="Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội",
        email="vanthu@example.gov.vn",
        telephone="024 3845 8261",
    )


def example_edoc(
    *,
    sender: str = "000.00.00.G22",
    recipients: tuple[str, ...] = ("000.00.00.H41",),
    number: int = 74,
    notation: str = "VPCP-TTĐT",
    day: date = date(2026, 5, 16),
    priority: int = 0,
    subject: str = "V/v triển khai liên thông văn bản điện tử giữa các cơ quan nhà nước",
    attachment_bytes: int = 0,
    business_doc_type: int | None = None,
    content_padding: int = 0,
) -> Edoc:
    """A complete công văn from ``sender`` to ``recipients``.

    ``attachment_bytes`` adds one attachment of that many (deterministic) bytes; ``content_padding`` adds
    that many characters of Vietnamese text to Content, for sizing benchmark documents.
    """
    code = Code(str(number), notation)
    paragraph = "Thực hiện chỉ đạo của Thủ tướng Chính phủ về việc đẩy mạnh chuyển đổi số. "
    padding = (paragraph * (content_padding // len(paragraph) + 1))[:content_padding]
    content = ("Kính gửi các cơ quan. " + padding).strip()  # the reader strips text; keep round trips exact
    attachments: tuple[Attachment, ...] = ()
    manifest: tuple[ManifestReference, ...] = ()
    if attachment_bytes:
        blob = (bytes(range(256)) * (attachment_bytes // 256 + 1))[:attachment_bytes]
        attachments = (Attachment("1", "cong-van-74.pdf", "application/pdf", blob, "Văn bản gốc"),)
        manifest = (ManifestReference("cid:1", "application/pdf", "Văn bản gốc", "cong-van-74.pdf"),)
    business = None
    if business_doc_type is not None:
        business = Business(
            bussiness_doc_type=business_doc_type,
            document_id=document_id_for(sender, day, str(number), notation),
            bussiness_doc_reason="Thu hồi do sai sót" if business_doc_type == 1 else "",
            staff_info=StaffInfo("Phòng Hành chính", "Nguyễn Văn An", "an@example.gov.vn", "0912345678"),
        )
    return Edoc(
        sender=_org(sender),
        recipients=tuple(_org(r) for r in recipients),
        document_id=document_id_for(sender, day, code.code_number, code.code_notation),
        code=code,
        promulgation=PromulgationInfo("Hà Nội", day),
        document_type=DocumentType(1, 1, "Công văn"),
        subject=subject,
        content=content,
        signatory=Signatory("Thủ trưởng cơ quan", "Bộ trưởng, Chủ nhiệm", "Trần Văn Sơn"),
        due_date=None,
        to_places=("Các Bộ, cơ quan ngang Bộ", "UBND các tỉnh, thành phố"),
        other=OtherInfo(priority=priority, sphere_of_promulgation="Toàn quốc", promulgation_amount=1, page_amount=2),
        steering_type=1,
        trace=(TraceHeader(sender, datetime(day.year, day.month, day.day, 8, 30, tzinfo=VIETNAM_TZ)),),
        business=business,
        manifest=manifest,
        attachments=attachments,
    )


def example_status(
    edoc: Edoc, *, by: str | None = None, code: str = "03", description: str = "Đã tiếp nhận văn bản"
) -> StatusMessage:
    """The status ``code`` that recipient ``by`` (default: the first) sends about ``edoc``."""
    responder = by or edoc.recipients[0].organ_id
    return StatusMessage(
        sender=_org(responder),
        response_for=ResponseFor.answering(edoc),
        status_code=code,
        timestamp=datetime(2026, 5, 16, 9, 0, tzinfo=VIETNAM_TZ),
        description=description,
        staff_info=StaffInfo("Văn thư", "Lê Thị Bình", "binh@example.gov.vn", "0987654321"),
    )
