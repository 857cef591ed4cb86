"""Value rules: codes, OrganId formats, DocumentId consistency, dates (the structure is ``schemas._structure``'s)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

__all__ = [
    "PRIORITIES",
    "STATUS_CODES",
    "STEERING_TYPE_0",
    "UUID_DOCUMENT_ID",
    "VIETNAM_TZ",
    "document_id_for",
    "is_uuid",
    "organ_id_problem",
    "parse_date",
    "parse_datetime",
]

#: Naive timestamps in the field are Vietnam local time (UTC+7, no daylight saving).
VIETNAM_TZ = timezone(timedelta(hours=7))

STATUS_CODES = frozenset({"01", "02", "03", "04", "05", "06", "13", "15", "16"})
PRIORITIES = range(5)  # 0 normal … 4 timed express (hỏa tốc hẹn giờ)
STEERING_TYPES = range(1, 4)
# Field quirks: what DMS libraries left to their defaults write (a random UUID as DocumentId, SteeringType 0).
# Accepted with a warning carrying the code, or refused in strict mode (README, "Field quirks").
UUID_DOCUMENT_ID = "UUID_DOCUMENT_ID"
STEERING_TYPE_0 = "STEERING_TYPE_0"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
BUSINESS_DOC_TYPES = range(4)
RECEIVER_TYPES = range(2)

_LEGACY_ORGAN_ID = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")
_LEGACY_SHAPE = re.compile(r".{3}\..{2}\..{2}\..{3}")
# Decision 20/2020/QĐ-TTg codes: dot-separated groups of letters and digits, at most 35 characters.
_NEW_ORGAN_ID = re.compile(r"[A-Za-z0-9]+(?:[.\-][A-Za-z0-9]+)*")
MAX_ORGAN_ID = 35


def organ_id_problem(value: str) -> str | None:
    """Why ``value`` is not an OrganId, or ``None`` when it is one (legacy 13-character or new, ≤ 35)."""
    if _LEGACY_SHAPE.fullmatch(value):
        if _LEGACY_ORGAN_ID.fullmatch(value):
            return None
        return f"{value!r} has the legacy OrganId layout but is not DDD.DD.DD.XNN (e.g. 000.00.00.G22)"
    if len(value) > MAX_ORGAN_ID:
        return f"{value!r} is {len(value)} characters; an OrganId has at most {MAX_ORGAN_ID}"
    if not _NEW_ORGAN_ID.fullmatch(value):
        return f"{value!r} is not an OrganId: letters and digits in dot-separated groups (e.g. 000.00.00.G22)"
    return None


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in its usual text form (e.g. 0f8fad5b-d9cb-469f-a165-70867728950e)."""
    return _UUID.fullmatch(value) is not None


def parse_date(value: str) -> date:
    """Read ``YYYY-MM-DD`` or ``YYYY/MM/DD`` (both are seen in the field); raise ``ValueError`` otherwise."""
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date, no time zone
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date (expected YYYY-MM-DD or YYYY/MM/DD)")


def parse_datetime(value: str) -> datetime:
    """Read ISO 8601 or ``YYYY/MM/DD HH:MM:SS``; a naive time is taken as Vietnam time (UTC+7)."""
    text = value.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%d/%m/%Y %H:%M:%S"):
            try:
                parsed = datetime.strptime(text, fmt)  # noqa: DTZ007 - zone added below
                break
            except ValueError:
                continue
    if parsed is None:
        raise ValueError(f"{value!r} is not a time (expected ISO 8601, e.g. 2019-01-16T08:30:00+07:00)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=VIETNAM_TZ)


def document_id_for(organ_id: str, promulgation_date: date, code_number: str, code_notation: str) -> str:
    """The DocumentId a document must carry: ``<OrganId>,<yyyy/MM/dd>,<Number/Notation>``."""
    number = f"{code_number}/{code_notation}" if code_notation else code_number
    return f"{organ_id},{promulgation_date:%Y/%m/%d},{number}"
