"""Safe XML parsing: the only place lienthong turns untrusted bytes into an lxml tree.

No DTD, no entities, no network, a size cap checked before the parser sees a byte
(DESIGN.md, "Security rules").
"""

from __future__ import annotations

from lxml import etree

from schemas.errors import InvalidDocument, Problem

__all__ = ["DEFAULT_MAX_BYTES", "parse_xml"]

#: 1 MB documents are common and claim-checked ones reach 100 MB; 150 MB leaves room for base64 overhead.
DEFAULT_MAX_BYTES = 150 * 1024 * 1024

# A DOCTYPE is never legitimate in edXML; refusing it up front also refuses every entity trick.
_DOCTYPE = b"<!DOCTYPE"
# The same marker in the wide encodings a document may use (announced by a BOM or NUL bytes up front).
_WIDE_DOCTYPES = tuple("<!DOCTYPE".encode(c) for c in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))


def _has_doctype(data: bytes) -> bool:
    if _DOCTYPE in data:
        return True
    head = data[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        return any(marker in data for marker in _WIDE_DOCTYPES)
    return False


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted ``data`` into an lxml element tree, or raise ``InvalidDocument``.

    Refuses: empty input, input over ``max_bytes``, any DTD or entity declaration, text that is not
    well-formed XML. The tree is parsed from the very bytes given, so offsets and text are the sender's.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidDocument([Problem("", f"expected bytes, got {type(data).__name__}")])
    data = bytes(data)
    if not data:
        raise InvalidDocument([Problem("", "empty input: no XML document")], reason="EMPTY")
    if len(data) > max_bytes:
        raise InvalidDocument(
            [Problem("", f"document is {len(data)} bytes; the limit is {max_bytes}")], reason="TOO_LARGE"
        )
    if _has_doctype(data):
        raise InvalidDocument([Problem("", "a DTD (<!DOCTYPE>) is not allowed in edXML")], reason="DTD_FORBIDDEN")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = f" (line {exc.lineno})" if exc.lineno else ""
        raise InvalidDocument([Problem("", f"not well-formed XML{line}: {exc.msg}")], reason="MALFORMED") from exc
    except ValueError as exc:  # e.g. encoding declarations lxml refuses
        raise InvalidDocument([Problem("", f"not parseable XML: {exc}")], reason="MALFORMED") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise InvalidDocument([Problem("", "a DTD is not allowed in edXML")], reason="DTD_FORBIDDEN")
    if next(root.iter(etree.Entity), None) is not None:  # an unresolved entity reference left in the tree
        raise InvalidDocument([Problem("", "entity references are not allowed in edXML")], reason="ENTITY_FORBIDDEN")
    return root
