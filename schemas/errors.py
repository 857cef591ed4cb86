"""The one error tree of lienthong, split by who is at fault.

Every package raises from here so that callers can catch ``HubError`` at a boundary and
tell a sender's bad document (``DocumentRejected``: answer with status 02 and a reason)
from the hub's own failure (anything else: retry, alert).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DocumentRejected", "HubError", "InvalidDocument", "Problem"]


class HubError(Exception):
    """Root of every error lienthong raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document: where, and what in plain words.

    ``path`` is an element path such as ``/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId``;
    ``code`` a stable name for the faults that have one (the field quirks: ``UUID_DOCUMENT_ID``, ``STEERING_TYPE_0``).
    """

    path: str
    message: str
    code: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class DocumentRejected(HubError):
    """The sender's document is at fault; ``reason`` is a stable code for status 02 and dead letters."""

    def __init__(self, reason: str, problems: tuple[Problem, ...] | list[Problem]) -> None:
        self.reason = reason
        self.problems = tuple(problems)
        super().__init__(f"{reason}: " + "; ".join(str(p) for p in self.problems))


class InvalidDocument(DocumentRejected):
    """The bytes are not a well-formed, safe, schema-valid edXML document or status.

    Raised by ``schemas.parse`` and friends; ``problems`` lists each fault with its element path, ``warnings`` the
    field quirks found besides (see ``ParsedDocument.warnings``).
    """

    def __init__(
        self,
        problems: tuple[Problem, ...] | list[Problem],
        reason: str = "INVALID_EDXML",
        warnings: tuple[Problem, ...] | list[Problem] = (),
    ) -> None:
        super().__init__(reason, problems)
        self.warnings = tuple(warnings)
