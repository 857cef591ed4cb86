"""``parse``: bytes in, a checked ``ParsedDocument`` out, or one ``InvalidDocument`` naming every problem."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from lxml import etree

from schemas._names import DSIG_NS, EDXML_NS, LGSP_NS, Dialect
from schemas._reader import read_message, signature_summary
from schemas._safe import DEFAULT_MAX_BYTES, parse_xml
from schemas._stream import Scan, memory_chunks, scan
from schemas._structure import structure_problems
from schemas.errors import InvalidDocument, Problem
from schemas.model import Edoc, ParsedDocument

__all__ = ["STREAM_THRESHOLD_BYTES", "parse", "parse_stream", "priority_of"]

#: Above this size ``parse`` streams (schemas._stream); below it libxml2's tree is faster (README, "Large documents").
STREAM_THRESHOLD_BYTES = 4 * 1024 * 1024


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
    when ``strict``. Documents over ``STREAM_THRESHOLD_BYTES`` are read as ``parse_stream`` reads them (libxml2's
    tree cannot hold an attachment over ~7 MiB), their attachments decoded and kept.
    """
    if isinstance(data, bytes | bytearray) and STREAM_THRESHOLD_BYTES < len(data) <= max_bytes:
        whole = bytes(data)
        skeleton = scan(memory_chunks(whole), max_bytes=max_bytes, size=len(whole), keep_attachments=True)
        assert skeleton.root is not None
        return _checked(skeleton.root, whole, strict=strict, contents=skeleton.attachment_content)
    return _checked(parse_xml(data, max_bytes=max_bytes), bytes(data), strict=strict)


def parse_stream(
    chunks: Iterable[bytes], *, max_bytes: int = DEFAULT_MAX_BYTES, strict: bool = False, size: int | None = None
) -> ParsedDocument:
    """``parse`` for a document read as chunks of bytes (a file, an S3 object), in memory bounded by its skeleton.

    Every check of ``parse``, with the same problems at the same paths; attachments are checked as strict base64
    while streaming and their ``content`` is left empty; ``original`` is empty too (the bytes stay with the caller).
    ``size`` (when known) refuses an oversized document before reading it.
    """
    return parse_scanned(scan(chunks, max_bytes=max_bytes, size=size), strict=strict)


def parse_scanned(skeleton: Scan, *, strict: bool = False) -> ParsedDocument:
    """``parse_stream`` of a document already read by ``scan``.

    With a signature digest sink in that scan, a worker reads a large document once for parsing and verification.
    """
    assert skeleton.root is not None
    return _checked(skeleton.root, b"", strict=strict)


def _checked(
    root: etree._Element, data: bytes, *, strict: bool, contents: Callable[[bytes], bytes] | None = None
) -> ParsedDocument:
    """Run every check on a safely parsed tree (whole or skeleton); ``contents`` resolves kept attachments."""
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
    if contents is not None and isinstance(message, Edoc):
        kept = tuple(dataclasses.replace(a, content=contents(a.content)) for a in message.attachments)
        message = dataclasses.replace(message, attachments=kept)
    return ParsedDocument(
        message=message,
        original=data,
        dialect=dialect,
        signature=signature_summary(root),
        warnings=tuple(warnings),
    )


def priority_of(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """A document's Priority (0–4) read without the full checks, for choosing its lane; 0 when it has none.

    Parsed as safely as ``parse`` (no DTD, no entities, size cap); ``InvalidDocument`` when the bytes are not XML.
    Statuses and documents whose Priority is not a digit 0–4 read as 0: ``parse`` judges them later.
    """
    if isinstance(data, bytes | bytearray) and STREAM_THRESHOLD_BYTES < len(data) <= max_bytes:
        root = scan(memory_chunks(bytes(data)), max_bytes=max_bytes, size=len(data)).root
        assert root is not None
    else:
        root = parse_xml(data, max_bytes=max_bytes)
    for element in root.iter("{*}OtherInfo"):
        text = (element.findtext("{*}Priority") or "").strip()
        return int(text) if text in {"0", "1", "2", "3", "4"} else 0
    return 0
