"""``parse``: bytes in, a checked ``ParsedDocument`` out, or one ``InvalidDocument`` naming every problem."""

from __future__ import annotations

from lxml import etree

from schemas._names import DSIG_NS, EDXML_NS, LGSP_NS, Dialect
from schemas._reader import read_message, signature_summary
from schemas._safe import DEFAULT_MAX_BYTES, parse_xml
from schemas._structure import structure_problems
from schemas.errors import InvalidDocument, Problem
from schemas.model import ParsedDocument

__all__ = ["parse", "priority_of"]


def _dialect(root: etree._Element) -> Dialect:
    qname = etree.QName(root)
    if qname.namespace == EDXML_NS and qname.localname == "edXML":
        return Dialect.QCVN102
    if qname.namespace == LGSP_NS and qname.localname.lower() == "edxmlenvelope":
        return Dialect.LGSP
    found = f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname
    raise InvalidDocument(
        [
            Problem(
                f"/{qname.localname}",
                f"root element {found} is not edXML: expected {{{EDXML_NS}}}edXML "
                f"(QCVN 102) or {{{LGSP_NS}}}EdXMLEnvelope (LGSP)",
            )
        ],
        reason="WRONG_NAMESPACE",
    )


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, strict: bool = False) -> ParsedDocument:
    """Parse and check an edXML document or status message of either dialect.

    Keeps ``data`` byte for byte in ``ParsedDocument.original`` (the signature covers those bytes). Raises
    ``InvalidDocument`` listing every problem found, each with its element path; never anything else for
    bad input. Field quirks (a UUID DocumentId, SteeringType 0) are ``ParsedDocument.warnings``, or problems
    when ``strict``.
    """
    root = parse_xml(data, max_bytes=max_bytes)
    dialect = _dialect(root)
    if problems := structure_problems(root, dialect):
        raise InvalidDocument(problems, reason="SCHEMA_INVALID")
    message, problems, warnings = read_message(root, dialect)
    if strict:
        problems, warnings = problems + warnings, []
    if signatures := list(root.iter(f"{{{DSIG_NS}}}Signature"))[1:]:
        problems.append(Problem("", f"{len(signatures) + 1} signatures found; edXML carries exactly one"))
    if message is None or problems:
        raise InvalidDocument(problems or [Problem("", "no MessageHeader found")], warnings=warnings)
    return ParsedDocument(
        message=message,
        original=bytes(data),
        dialect=dialect,
        signature=signature_summary(root),
        warnings=tuple(warnings),
    )


def priority_of(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """A document's Priority (0–4) read without the full checks, for choosing its lane; 0 when it has none.

    Parsed as safely as ``parse`` (no DTD, no entities, size cap); ``InvalidDocument`` when the bytes are not XML.
    Statuses and documents whose Priority is not a digit 0–4 read as 0: ``parse`` judges them later.
    """
    root = parse_xml(data, max_bytes=max_bytes)
    for element in root.iter("{*}OtherInfo"):
        text = (element.findtext("{*}Priority") or "").strip()
        return int(text) if text in {"0", "1", "2", "3", "4"} else 0
    return 0
