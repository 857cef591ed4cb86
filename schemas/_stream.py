"""Streaming reading of large documents: memory that does not grow with the attachments.

libxml2 refuses text nodes over 10,000,000 characters, so a tree cannot hold an attachment above ~7 MiB, and a tree
costs 4-6 times the document anyway. ``scan`` reads a document as chunks of bytes with expat and keeps only its
*skeleton*: every element, attribute, comment and processing instruction, and every text except the content of
``ContentTransferEncoded`` elements. That content is checked as strict base64 chunk by chunk and replaced in the
skeleton by an empty text (valid) or ``!`` (invalid), so the tree-based checks (``schemas._structure``,
``schemas._reader``, the signature profile) run unchanged on the skeleton and name the same problems at the same
paths. The skeleton is re-serialised from expat's events and parsed by libxml2 (``parse_xml``), which re-checks
everything but the streamed text.

An optional ``XmlEvents`` sink sees every event in document order (``signer._stream_c14n`` canonicalises them into
a digest). The safety rules are today's (``schemas._safe``): a size cap while reading, no DTD (refused on the raw
bytes before expat sees them), no entities, no network, libxml2's limits on depth and text length.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol
from xml.parsers import expat

from lxml import etree

from schemas._safe import _DOCTYPE, _WIDE_DOCTYPES, parse_xml
from schemas.errors import InvalidDocument, Problem

__all__ = [
    "ATTACHMENT_TOKEN",
    "DEFAULT_CHUNK_BYTES",
    "Attr",
    "Base64Check",
    "Scan",
    "XmlEvents",
    "ascii_compatible",
    "has_doctype_marker",
    "memory_chunks",
    "scan",
]

#: 1 MiB reads: big enough that per-chunk Python costs vanish, small enough to be a constant in the RSS.
DEFAULT_CHUNK_BYTES = 1024 * 1024
#: libxml2's limits without XML_PARSE_HUGE, kept so that both paths refuse the same documents.
MAX_DEPTH = 256
MAX_TEXT_CHARS = 10_000_000
_SEP = "\x01"  # expat's namespace separator: a character XML 1.0 never allows in a name or a URI
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_ATTACHMENT_TEXT = "contenttransferencoded"  # local name, any namespace, any case (both dialects)
# Whitespace ``str.split()`` removes, in ASCII (base64 text is ASCII; other text takes the slow exact path).
_ASCII_SPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BASE64_ALPHABET_PAD = _BASE64_ALPHABET + b"="
#: Buffered text handed to the handlers at once (pyexpat's buffer_text): few Python calls per megabyte.
_TEXT_BUFFER = 256 * 1024

#: Begins the decoded placeholder of a kept attachment in the skeleton (then its index, 4 bytes).
ATTACHMENT_TOKEN = b"\x00lienthong-attachment\x00"

#: An attribute as expat reports it: (namespace URI, local name, prefix, value); "" for no namespace / prefix.
Attr = tuple[str, str, str, str]


class XmlEvents(Protocol):
    """What a streaming consumer (the canonicaliser) is told, in document order."""

    def start(self, uri: str, local: str, prefix: str, attrs: list[Attr], decls: list[tuple[str, str]]) -> None:
        """An element starts; ``decls`` are the namespace declarations written on it, (prefix or "", URI)."""

    def end(self, uri: str, local: str, prefix: str) -> None:
        """The element last started and not yet ended ends."""

    def text(self, data: str) -> None:
        """Character data (CDATA sections included), in pieces; outside the root element too."""

    def plain_text(self, data: bytes) -> None:
        """Character data given as its ASCII bytes, holding nothing C14N escapes (base64 read past expat)."""

    def pi(self, target: str, data: str) -> None:
        """A processing instruction, inside the root element or outside it."""


class Base64Check:
    """Strict base64 (``base64.b64decode(..., validate=True)`` after removing whitespace), fed in pieces.

    Keeps at most three data characters and a count of padding characters between pieces; the final verdict
    replays that residue through the very decoder the tree path uses.
    """

    def __init__(self, *, keep: bool = False) -> None:
        self.valid = True
        self.decoded_bytes = 0
        self.content: bytes | None = None  # the decoded bytes, when kept and valid (after ``finish``)
        self._kept: list[bytes] | None = [] if keep else None  # the compact base64 text, when kept
        self._residue = b""
        self._aligned_before = False  # whole groups of four came before the residue
        self._pads = 0

    def feed(self, text: str) -> None:
        """Check the next piece of text."""
        if not self.valid:
            return
        if text.isascii():
            data = text.encode("ascii").translate(None, _ASCII_SPACE)
        else:
            compact = "".join(text.split())
            if not compact.isascii():
                self.valid = False
                return
            data = compact.encode("ascii")
        if self._kept is not None:
            self._kept.append(data)
        self._feed_compact(data)

    def feed_plain(self, run: bytes) -> int | None:
        """Check ``run`` if it holds only base64 characters, ``=`` and line feeds (as every DMS library writes).

        Returns how many line feeds it held, or None, having checked nothing, when it holds anything else (the
        caller then takes the general path).
        """
        data = run.replace(b"\n", b"")
        if data.translate(None, _BASE64_ALPHABET_PAD):  # one C pass at memory speed (the decoder is 5x slower)
            return None
        if self._kept is not None:
            self._kept.append(data)
        self._feed_compact(data, alphabet_checked=True)
        return len(run) - len(data)

    def _feed_compact(self, data: bytes, *, alphabet_checked: bool = False) -> None:
        if not self.valid or not data:
            return
        if self._pads:  # after padding only padding may follow
            self.valid = data.count(b"=") == len(data)
            self._pads += len(data)
            return
        cut = data.find(b"=")
        if cut >= 0:
            pads = data[cut:]
            if pads.count(b"=") != len(pads):
                self.valid = False
                return
            self._pads, data = len(pads), data[:cut]
        if not alphabet_checked and data.translate(None, _BASE64_ALPHABET):
            self.valid = False
            return
        data = self._residue + data if self._residue else data
        whole = len(data) - len(data) % 4
        if whole:
            self._aligned_before = True
            self.decoded_bytes += whole // 4 * 3
        self._residue = data[whole:]

    def finish(self) -> bool:
        """Whether everything fed was valid base64."""
        if not self.valid:
            return False
        # After whole groups the decoder's state is the same whatever they held; padding beyond 8 decides nothing.
        probe = (b"AAAA" if self._aligned_before else b"") + self._residue + b"=" * min(self._pads, 8)
        try:
            tail = binascii.a2b_base64(probe, strict_mode=True)
        except (binascii.Error, ValueError):
            self.valid = False
            return False
        self.decoded_bytes += len(tail) - (3 if self._aligned_before else 0)
        if self._kept is not None:
            self.content = binascii.a2b_base64(b"".join(self._kept), strict_mode=True)
            self._kept = None
        return True


@dataclass(slots=True)
class Scan:
    """What ``scan`` found: the skeleton tree and the facts about the bytes it streamed past."""

    root: etree._Element | None  # None when scanned with ``build=False``
    size: int
    sha256: str
    encoding: str  # as declared ("UTF-8" when undeclared); "UTF-16"/"UTF-32" for a document announced wide
    #: Byte offset of the end tag of each element at depth 2 and 3, by the path of Clark tags from the root.
    end_tags: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    streamed_texts: int = 0
    streamed_bytes: int = 0  # decoded bytes of the valid streamed base64
    attachments: list[bytes] = field(default_factory=list)  # kept contents, when asked (see ``attachment_content``)

    def attachment_content(self, decoded: bytes) -> bytes:
        """The content a skeleton attachment's decoded text stands for (itself when it is no token)."""
        if len(decoded) == len(ATTACHMENT_TOKEN) + 4 and decoded.startswith(ATTACHMENT_TOKEN):
            index = int.from_bytes(decoded[len(ATTACHMENT_TOKEN) :], "big")
            if index < len(self.attachments):
                return self.attachments[index]
        return decoded


def has_doctype_marker(data: bytes, head: bytes) -> bool:
    """Whether ``data`` holds ``<!DOCTYPE`` (or its wide form, when ``head`` announces UTF-16/32), as ``_safe`` asks."""
    if _DOCTYPE in data:
        return True
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        return any(marker in data for marker in _WIDE_DOCTYPES)
    return False


def ascii_compatible(encoding: str) -> bool:
    """Whether ``encoding`` writes every ASCII character as that one byte (UTF-8, ISO-8859-x, windows-125x)."""
    sample = bytes(range(1, 128))
    try:
        return sample.decode(encoding) == sample.decode("ascii") and "<".encode(encoding) == b"<"
    except (LookupError, UnicodeError):
        return False


class _Malformed(Exception):
    """Raised inside an expat handler: the document breaks one of libxml2's limits."""


def _split(name: str) -> tuple[str, str, str]:
    """Split expat's ``uri SEP local SEP prefix`` (or fewer parts) as (uri, local, prefix)."""
    parts = name.split(_SEP)
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:  # noqa: PLR2004 - the default namespace: no prefix part
        return parts[0], parts[1], ""
    return parts[0], parts[1], parts[2]


def _escape_text(text: str) -> str:
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return text


def _escape_attr(value: str) -> str:
    for old, new in (("&", "&amp;"), ("<", "&lt;"), ('"', "&quot;"), ("\t", "&#9;"), ("\n", "&#10;"), ("\r", "&#13;")):
        if old in value:
            value = value.replace(old, new)
    return value


class _Scanner:
    """expat handlers that write the skeleton, check streamed base64 and forward events to the sink."""

    def __init__(self, sink: XmlEvents | None, *, build: bool, keep: bool) -> None:
        self.sink = sink
        self.build = build
        self.keep = keep
        self.kept: list[bytes] = []
        self.out: list[str] = []
        self.depth = 0
        self.encoding = "UTF-8"
        self.scan_path: list[str] = []
        self.end_tags: dict[tuple[str, ...], list[int]] = {}
        self.parser = self._parser()
        self._decls: list[tuple[str, str]] = []
        self._in_attachment: list[bool] = [False]
        self._text: list[str] = []
        self._text_chars = 0
        self._check: Base64Check | None = None
        self.streamed_texts = 0
        self.streamed_bytes = 0
        # Bytes and lines read past expat (plain base64): expat's offsets and line numbers are shifted by them.
        self.skipped = 0
        self.skipped_lines = 0
        self.attachment_tag_at = -1  # raw offset of the last ContentTransferEncoded start tag, while nothing followed
        self.plain_open = False  # expat was fed exactly to the end of that tag: its text may go past expat
        self.ascii_bytes = True  # the encoding writes ASCII as ASCII (UTF-8 unless declared): plain text may skip expat
        self.previous_tail = b""  # the last bytes of the previous chunk, where that tag may have begun

    def _parser(self) -> expat.XMLParserType:
        parser = expat.ParserCreate(namespace_separator=_SEP)
        parser.namespace_prefixes = True
        parser.ordered_attributes = True
        parser.buffer_text = True
        parser.buffer_size = _TEXT_BUFFER
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.XmlDeclHandler = self._xml_decl
        parser.StartNamespaceDeclHandler = self._namespace
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._chars
        parser.CommentHandler = self._comment
        parser.ProcessingInstructionHandler = self._pi
        # DTDs are refused on the raw bytes before expat sees them; these are the second lock on that door.
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._entity
        parser.ExternalEntityRefHandler = self._external_entity
        return parser

    # -- handlers ---------------------------------------------------------------------------------------

    def _xml_decl(self, version: str, encoding: str | None, standalone: int) -> None:
        del version, standalone
        if encoding:
            self.encoding = encoding
            self.ascii_bytes = ascii_compatible(encoding)

    def _namespace(self, prefix: str | None, uri: str | None) -> None:
        self._decls.append((prefix or "", uri or ""))

    def _start(self, name: str, attributes: list[str]) -> None:
        self.attachment_tag_at = -1
        self._flush()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Malformed(f"Excessive depth in document: {MAX_DEPTH}")
        uri, local, prefix = _split(name)
        attrs = [(*_split(attributes[i]), attributes[i + 1]) for i in range(0, len(attributes), 2)]
        decls, self._decls = self._decls, []
        if self.build:
            self._write_start(local, prefix, attrs, decls)
        if self.depth <= 3:  # noqa: PLR2004 - the header sits at depth 2 (LGSP) or 3 (QCVN 102)
            self.scan_path.append(f"{{{uri}}}{local}" if uri else local)
        is_attachment = local.lower() == _ATTACHMENT_TEXT
        self._in_attachment.append(is_attachment)
        self.attachment_tag_at = self.parser.CurrentByteIndex + self.skipped if is_attachment else -1
        if self.sink is not None:
            self.sink.start(uri, local, prefix, attrs, decls)

    def _write_start(self, local: str, prefix: str, attrs: list[Attr], decls: list[tuple[str, str]]) -> None:
        parts = ["<", f"{prefix}:{local}" if prefix else local]
        for ns_prefix, ns_uri in decls:
            parts.append(f' xmlns:{ns_prefix}="' if ns_prefix else ' xmlns="')
            parts.append(_escape_attr(ns_uri) + '"')
        for _, attr_local, attr_prefix, value in attrs:
            parts.append(f" {attr_prefix}:{attr_local}" if attr_prefix else f" {attr_local}")
            parts.append('="' + _escape_attr(value) + '"')
        parts.append(">")
        self.out.append("".join(parts))

    def _end(self, name: str) -> None:
        self.attachment_tag_at = -1
        self._flush()
        uri, local, prefix = _split(name)
        if self.build:
            self.out.append(f"</{prefix}:{local}>" if prefix else f"</{local}>")
        if self.depth <= 3:  # noqa: PLR2004
            if self.depth >= 2:  # noqa: PLR2004
                offset = self.parser.CurrentByteIndex + self.skipped
                self.end_tags.setdefault(tuple(self.scan_path), []).append(offset)
            self.scan_path.pop()
        self.depth -= 1
        self._in_attachment.pop()
        if self.sink is not None:
            self.sink.end(uri, local, prefix)

    def _chars(self, data: str) -> None:
        if self.sink is not None:
            self.sink.text(data)
        if not self.depth:
            return  # whitespace around the root: no part of the tree
        if self._in_attachment[-1]:
            if self._check is None:
                self._check = Base64Check(keep=self.keep)
            self._check.feed(data)
            return
        self._text_chars += len(data)
        if self._text_chars > MAX_TEXT_CHARS:
            raise _Malformed(f"Text node too long (over {MAX_TEXT_CHARS} characters outside an attachment)")
        if self.build:
            self._text.append(data)

    def _flush(self) -> None:
        """End the current text: write it (or the streamed verdict's placeholder) into the skeleton."""
        check, self._check = self._check, None
        if check is not None:
            valid = check.finish()
            self.streamed_texts += 1
            self.streamed_bytes += check.decoded_bytes if valid else 0
            if self.build and not valid:
                self.out.append("!")  # invalid base64: the reader names the element, as it would the real text
            elif self.build and check.content is not None:  # kept: the reader decodes a token naming the content
                self.out.append(base64.b64encode(ATTACHMENT_TOKEN + len(self.kept).to_bytes(4, "big")).decode())
                self.kept.append(check.content)
        if self._text:
            self.out.append(_escape_text("".join(self._text)))
            self._text = []
        self._text_chars = 0

    def plain_text(self, run: bytes) -> bool:
        """Take ``run`` (the text right after a ContentTransferEncoded start tag) past expat, if it is plain base64.

        Returns False, having taken nothing, when it holds anything but base64 characters and line feeds; expat
        then reads it as any text. Plain, it needs no parsing: no references, no markup, no CR to normalise.
        """
        if self._check is None:
            self._check = Base64Check(keep=self.keep)
        lines = self._check.feed_plain(run)
        if lines is None:
            return False
        if self.sink is not None:
            self.sink.plain_text(run)
        self.skipped += len(run)
        self.skipped_lines += lines
        return True

    def _comment(self, data: str) -> None:
        self.attachment_tag_at = -1
        self._flush()
        if self.build and self.depth:
            self.out.append(f"<!--{data}-->")

    def _pi(self, target: str, data: str) -> None:
        self.attachment_tag_at = -1
        self._flush()
        if self.build and self.depth:
            self.out.append(f"<?{target} {data}?>" if data else f"<?{target}?>")
        if self.sink is not None:
            self.sink.pi(target, data)

    def _doctype(self, *_: object) -> None:
        raise InvalidDocument([Problem("", "a DTD (<!DOCTYPE>) is not allowed in edXML")], reason="DTD_FORBIDDEN")

    def _entity(self, *_: object) -> None:
        raise InvalidDocument([Problem("", "entity references are not allowed in edXML")], reason="ENTITY_FORBIDDEN")

    def _external_entity(self, *_: object) -> int:
        raise InvalidDocument([Problem("", "entity references are not allowed in edXML")], reason="ENTITY_FORBIDDEN")


def _too_large(size: int, max_bytes: int, *, exact: bool) -> InvalidDocument:
    said = f"{size} bytes" if exact else f"over {max_bytes} bytes"
    return InvalidDocument([Problem("", f"document is {said}; the limit is {max_bytes}")], reason="TOO_LARGE")


def memory_chunks(data: bytes, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
    """``data`` as chunks for ``scan``: documents already in memory take the same path as files."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_bytes):
        yield bytes(view[start : start + chunk_bytes])


def scan(  # noqa: C901, PLR0912 - one reading loop with its refusals in today's order
    chunks: Iterable[bytes],
    *,
    max_bytes: int,
    size: int | None = None,
    sink: XmlEvents | None = None,
    build: bool = True,
    keep_attachments: bool = False,
) -> Scan:
    """Read a document from ``chunks`` once, in bounded memory; return its skeleton and facts.

    ``size``, when the caller knows it (a file's or an S3 object's length), lets an oversized document be refused
    before a byte is read. Raises ``InvalidDocument`` with today's reasons, in today's order of precedence:
    ``EMPTY``, ``TOO_LARGE``, ``DTD_FORBIDDEN``, ``MALFORMED`` (the message is expat's, the reason and path are
    the same). ``build=False`` skips the skeleton (a second, digest-only pass). ``keep_attachments`` decodes and
    keeps every attachment (``Scan.attachments``; memory then grows with them): the skeleton's text names each by
    a token that ``attachment_content`` resolves.
    """
    if size is not None and size > max_bytes:
        raise _too_large(size, max_bytes, exact=True)
    scanner = _Scanner(sink, build=build, keep=keep_attachments)
    whole = hashlib.sha256()
    total = 0
    head = b""
    tail = b""  # the last bytes of the previous chunk: a <!DOCTYPE may straddle two chunks
    doctype = False
    failure: InvalidDocument | None = None
    for piece in chunks:
        if not piece:
            continue
        chunk = bytes(piece)  # a view of a document in memory: one copy of one chunk
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(total, max_bytes, exact=False)
        whole.update(chunk)
        if doctype or failure is not None:
            continue  # keep counting: an oversized document is refused as such, whatever else is wrong
        if len(head) < 4:  # noqa: PLR2004
            head = (head + chunk)[:4]
        window = tail + chunk[:64] if tail else b""
        if has_doctype_marker(chunk, head) or (window and has_doctype_marker(window, head)):
            doctype = True
            continue
        tail = chunk[-64:]
        failure = _refusal(scanner, functools.partial(_feed, scanner, chunk, total - len(chunk)))
    if total == 0:
        raise InvalidDocument([Problem("", "empty input: no XML document")], reason="EMPTY")
    if doctype:
        raise InvalidDocument([Problem("", "a DTD (<!DOCTYPE>) is not allowed in edXML")], reason="DTD_FORBIDDEN")
    if failure is None:
        failure = _refusal(scanner, lambda: scanner.parser.Parse(b"", True))  # noqa: FBT003 - no keywords taken
    if failure is not None:
        raise failure
    encoding = scanner.encoding
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        encoding = "UTF-32" if head[:2] == b"\x00\x00" or head[2:4] == b"\x00\x00" else "UTF-16"
    root = None
    if build:
        skeleton = "".join(scanner.out).encode("utf-8")
        root = parse_xml(skeleton, max_bytes=len(skeleton) + 1)
    return Scan(
        root=root,
        size=total,
        sha256=whole.hexdigest(),
        encoding=encoding,
        end_tags=scanner.end_tags,
        streamed_texts=scanner.streamed_texts,
        streamed_bytes=scanner.streamed_bytes,
        attachments=scanner.kept,
    )


def _refusal(scanner: _Scanner, step: Callable[[], object]) -> InvalidDocument | None:
    """Run one parsing step; what it found wrong with the document, as today's refusal, or None."""
    try:
        step()
    except expat.ExpatError as exc:
        return _malformed(exc, scanner.skipped_lines)
    except _Malformed as exc:
        line = scanner.parser.CurrentLineNumber + scanner.skipped_lines
        return InvalidDocument([Problem("", f"not well-formed XML (line {line}): {exc}")], reason="MALFORMED")
    except InvalidDocument as exc:
        return exc
    except (LookupError, ValueError) as exc:  # an encoding expat and Python do not know, a bad byte in one
        return InvalidDocument([Problem("", f"not parseable XML: {exc}")], reason="MALFORMED")
    return None


def _feed(scanner: _Scanner, chunk: bytes, offset: int) -> None:
    """Give ``chunk`` (at byte ``offset`` of the document) to expat, except the plain base64 of attachments.

    Expat is fed up to the end of each tag that may open an attachment's text; when it did (the start tag ends
    exactly there, with no attribute that could hide a ``>``), the text up to the next ``<`` is plain base64 taken
    past expat, at memory speed. Anything unusual goes through expat, which then decides as for any text.
    """
    position, size = 0, len(chunk)
    while position < size:
        if scanner.plain_open:
            end = chunk.find(b"<", position)
            end = size if end < 0 else end
            if end > position and scanner.plain_text(chunk[position:end]):
                position = end
                if position == size:
                    break  # the text goes on in the next chunk, still past expat
            scanner.plain_open = False
        mark = chunk.find(b"ncoded", position)  # (ContentTransfer)Encoded, (contenttransfer)encoded
        stop = size if mark < 0 else (chunk.find(b">", mark) + 1 or size)
        scanner.parser.Parse(chunk[position:stop], False)  # noqa: FBT003 - pyexpat takes no keywords
        position = stop
        tag_start, scanner.attachment_tag_at = scanner.attachment_tag_at, -1
        if tag_start >= 0 and scanner.ascii_bytes:
            tag = _bytes_before(scanner.previous_tail, chunk, tag_start - offset, position)
            scanner.plain_open = _plain_start_tag(tag)
    scanner.previous_tail = chunk[-256:]


def _bytes_before(previous_tail: bytes, chunk: bytes, start: int, end: int) -> bytes:
    """``chunk[start:end]``, where ``start`` may be negative: in the previous chunk's kept tail (else empty)."""
    if start >= 0:
        return chunk[start:end]
    if -start > len(previous_tail):
        return b""  # began further back than kept: the general path takes that text
    return previous_tail[start:] + chunk[:end]


def _plain_start_tag(tag: bytes) -> bool:
    """Whether ``tag`` is exactly one start tag (not empty) with no quoted value that could hide a ``>``."""
    return (
        tag.startswith(b"<")
        and tag.endswith(b">")
        and not tag.endswith(b"/>")
        and tag.count(b">") == 1
        and b'"' not in tag
        and b"'" not in tag
    )


def _malformed(exc: expat.ExpatError, skipped_lines: int) -> InvalidDocument:
    message = expat.errors.messages[exc.code] if exc.code in expat.errors.messages else str(exc)
    line = exc.lineno + skipped_lines
    return InvalidDocument([Problem("", f"not well-formed XML (line {line}): {message}")], reason="MALFORMED")
