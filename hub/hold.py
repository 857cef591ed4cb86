"""Holding documents the hub cannot validate yet: TRY_LATER is the hub's problem, not the sender's.

A signature whose validation ends INDETERMINATE / TRY_LATER (no current CRL or OCSP answer for a certificate of its
chain: a CA's distribution point down, a CRL past its nextUpdate, an OCSP responder unreachable) says nothing
against the sender. Such a document is put on ``lienthong.work.retry`` (hub-only) with the time the hub first
received it and when it is due again (backoff from ``try_later_retry_seconds``, doubling up to
``MAX_RETRY_SECONDS``), and processed again then, or sooner when the hub's revocation data changes. It is refused
(``REVOCATION_UNAVAILABLE``, naming the certificate) only once ``try_later_deadline_seconds`` have passed since it
was received. Every attempt validates at that first receipt time, so a held document is judged as it was received.

No I/O here: the processor (``hub.process``) decides, the worker (``hub.app``) produces and consumes the records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.records import (
    H_ATTEMPTS,
    H_HELD_SINCE,
    H_INPUT,
    H_RETRY_AT,
    WORK_RETRY,
    Headers,
    InboundRecord,
    OutboundRecord,
)
from signer.report import Indication, SubIndication, VerificationReport

__all__ = ["MAX_RETRY_SECONDS", "REVOCATION_UNAVAILABLE", "Hold", "is_try_later", "requeued", "unavailable_certificate"]

#: The reason code of a document refused after its deadline (the status 02's text and the dead letter's header).
REVOCATION_UNAVAILABLE = "REVOCATION_UNAVAILABLE"
#: The longest wait between two attempts: a CA back after an outage is noticed within 15 minutes at worst (and at
#: once when its CRL arrives: the worker retries early when its revocation data changes).
MAX_RETRY_SECONDS = 900.0

_HOLD_HEADERS = frozenset({H_HELD_SINCE, H_RETRY_AT, H_ATTEMPTS, H_INPUT})
# signer.path's wording for a certificate without a current answer; the subject is what the sender's status names.
_MISSING = re.compile(r"^no current revocation information for (.+?): ")


def is_try_later(report: VerificationReport) -> bool:
    """Whether ``report`` failed only for lack of current revocation data (INDETERMINATE / TRY_LATER)."""
    return report.indication is Indication.INDETERMINATE and report.subindication is SubIndication.TRY_LATER


def unavailable_certificate(report: VerificationReport) -> str:
    """The certificate whose revocation data is missing (the first one named), else the signer's."""
    for error in report.errors:
        if found := _MISSING.match(error):
            return found.group(1)
    return report.signer.subject if report.signer is not None else "the signing certificate"


@dataclass(frozen=True)
class Hold:
    """Where a held document stands: first received ``since``, held ``attempts`` times, due again at ``retry_at``."""

    since: datetime
    attempts: int
    retry_at: datetime

    @classmethod
    def of(cls, record: InboundRecord) -> Hold | None:
        """The hold a ``lienthong.work.retry`` record carries (None for any other record, or unreadable headers).

        Only the hub writes that topic, and the intake strips every ``lienthong-*`` header an agency sends.
        """
        if record.topic != WORK_RETRY:
            return None
        since, retry_at, attempts = (record.header(h) for h in (H_HELD_SINCE, H_RETRY_AT, H_ATTEMPTS))
        if since is None or retry_at is None or attempts is None:
            return None
        try:
            return cls(_time(since), int(attempts), _time(retry_at))
        except ValueError:
            return None

    def deadline(self, deadline_seconds: float) -> datetime:
        """When the document is refused if its revocation data is still missing."""
        return self.since + timedelta(seconds=deadline_seconds)

    def again(self, now: datetime, *, retry_seconds: float, deadline_seconds: float) -> Hold:
        """The next hold: due after the backoff of one more attempt, never after the deadline."""
        first = max(retry_seconds, 0.001)
        delay = min(first * 2 ** min(self.attempts, 30), max(first, MAX_RETRY_SECONDS))
        return Hold(self.since, self.attempts + 1, min(now + timedelta(seconds=delay), self.deadline(deadline_seconds)))

    def record(self, record: InboundRecord) -> OutboundRecord:
        """``record`` (value, key, the agency's and the intake's headers) on the retry topic, with this hold."""
        headers: Headers = (
            *(h for h in record.headers if h[0] not in _HOLD_HEADERS),
            (H_HELD_SINCE, self.since.isoformat().encode()),
            (H_RETRY_AT, self.retry_at.isoformat().encode()),
            (H_ATTEMPTS, str(self.attempts).encode()),
        )
        return OutboundRecord(WORK_RETRY, record.key, record.value or b"", headers)


def requeued(record: InboundRecord) -> OutboundRecord:
    """A held record not yet due, put back at the end of the retry topic as it is (the partition moves on)."""
    headers = tuple(h for h in record.headers if h[0] != H_INPUT)  # the worker adds this copy's own cause
    return OutboundRecord(WORK_RETRY, record.key, record.value or b"", headers)


def _time(value: bytes) -> datetime:
    when = datetime.fromisoformat(value.decode())
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
