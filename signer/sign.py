"""Sign an edXML document the edXML way: one enveloped XMLDSig, last child of the header.

``sign_document`` is the safe recipe: SHA-256 digest over the exclusive canonical form of the whole
document (``Reference URI=""``, enveloped-signature + exc-c14n), rsa-sha256 or ecdsa-sha256, and the
signer's certificate with its issuers in ``KeyInfo/X509Data``. The Signature is spliced into the original
bytes before the header's end tag, so everything else stays as the author wrote it. Cost: one parse, one
canonicalisation of the document, one private-key operation.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from lxml import etree

from schemas._parse import STREAM_THRESHOLD_BYTES
from schemas._reader import element_path
from schemas._safe import DEFAULT_MAX_BYTES, parse_xml
from schemas._stream import ascii_compatible, memory_chunks, scan
from schemas.errors import InvalidDocument, Problem
from signer import _xmldsig
from signer._stream_c14n import DigestConfig, ReferenceDigest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from cryptography import x509

    from signer.keys import SigningKey

__all__ = ["sign_document", "sign_stream"]

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# The header's end tag, either dialect, any prefix (comments are refused before this is used).
_HEADER_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?[eE]dXMLHeader\s*>")


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


@functools.lru_cache(maxsize=256)
def _x509_values(leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], include_root: bool) -> tuple[str, ...]:
    """Base64 DER of the leaf then its issuers, as X509Certificate texts.

    Cached: the same few certificates sign every document, and encoding and comparing them each time costs
    about a tenth of an RSA-2048 signature.
    """
    certificates = [leaf]
    certificates += [c for c in chain if c != leaf and (include_root or not _is_self_signed(c))]
    return tuple(base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii") for c in certificates)


def sign_document(
    data: bytes,
    key: SigningKey,
    *,
    chain: Sequence[x509.Certificate] = (),
    include_root: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """Return ``data`` with an enveloped XMLDSig appended as the last child of its edXML header.

    ``chain``: issuers of ``key.certificate`` (nearest first); a self-signed root among them is left out
    unless ``include_root``. Raises ``InvalidDocument`` when ``data`` is not an edXML document or status
    (either dialect), is already signed, or holds comments or processing instructions (a verifier refuses
    those, so signing them would only produce a document nobody accepts). Documents over
    ``STREAM_THRESHOLD_BYTES`` are signed by ``sign_stream``: the same bytes out, except that it always inserts at
    the header's real end tag, where this path re-serialises a document whose end tag it cannot find once.
    """
    if isinstance(data, bytes | bytearray) and STREAM_THRESHOLD_BYTES < len(data) <= max_bytes:
        whole = bytes(data)
        stream = sign_stream(
            lambda: memory_chunks(whole), key, chain=chain, include_root=include_root, max_bytes=max_bytes
        )
        return b"".join(stream)
    root = parse_xml(data, max_bytes=max_bytes)
    header = _signable_header(root)
    del header
    # No signature is in the tree yet, so its canonical form is exactly what the enveloped transform yields.
    canonical = _xmldsig.canonical_document(root, exclusive=True)
    fragment = _fragment(hashlib.sha256(canonical).digest(), key, chain, include_root)
    return _splice_into_header(data, root, fragment)


def sign_stream(
    open_chunks: Callable[[], Iterable[bytes]],
    key: SigningKey,
    *,
    chain: Sequence[x509.Certificate] = (),
    include_root: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    size: int | None = None,
) -> Iterator[bytes]:
    """``sign_document`` for a document read as chunks, in memory that does not grow with its attachments.

    Two passes over ``open_chunks()`` (a fresh iterator over the same bytes each call): the first checks the
    document and digests it, then this returns; the second is the returned iterator, which yields the original
    bytes with the Signature inserted before the header's end tag. Every refusal of ``sign_document`` happens
    before this returns; the iterator raises ``InvalidDocument`` only if the bytes changed between the passes
    (write to a temporary file and rename it when the iterator is exhausted).
    """
    sink = ReferenceDigest(DigestConfig(exclusive=True, prefixes=(), hash_name="sha256"))
    skeleton = scan(open_chunks(), max_bytes=max_bytes, size=size, sink=sink)
    root = skeleton.root
    assert root is not None
    header = _signable_header(root)
    tags = [str(node.tag) for node in (header, *header.iterancestors())]
    offsets = skeleton.end_tags.get(tuple(reversed(tags)), [])
    if len(offsets) != 1:  # find_header allowed exactly one header; this cannot differ, but never guess
        raise InvalidDocument([Problem(element_path(header), "the header's end tag was not found exactly once")])
    digest = sink.digest
    assert digest is not None  # a ReferenceDigest given its configuration hashes from the first byte
    fragment = _fragment(digest, key, chain, include_root)
    if skeleton.encoding.upper().startswith(("UTF-16", "UTF-32")) or not ascii_compatible(skeleton.encoding):
        raise InvalidDocument(
            [
                Problem(
                    "",
                    f"a document over {STREAM_THRESHOLD_BYTES} bytes is signed in place: its encoding "
                    f"{skeleton.encoding} must be ASCII-compatible (UTF-8)",
                )
            ]
        )
    return _spliced(open_chunks(), offsets[0], fragment, skeleton.sha256)


def _spliced(chunks: Iterable[bytes], offset: int, fragment: bytes, sha256: str) -> Iterator[bytes]:
    """The chunks with ``fragment`` inserted at byte ``offset`` (an end tag's ``<``), checked against ``sha256``."""
    whole = hashlib.sha256()
    position = 0
    end_tag = b""  # the bytes from ``offset`` on, until two are known
    for raw in chunks:
        chunk = bytes(raw)
        whole.update(chunk)
        if position <= offset < position + len(chunk):
            cut = offset - position
            end_tag = chunk[cut : cut + 2]
            yield chunk[:cut]
            yield fragment
            yield chunk[cut:]
        else:
            if len(end_tag) == 1:
                end_tag += chunk[:1]
            yield chunk
        position += len(chunk)
    if whole.hexdigest() != sha256 or end_tag != b"</":
        raise InvalidDocument([Problem("", "the document changed between the two passes of signing")])


def _signable_header(root: etree._Element) -> etree._Element:
    """The header the Signature goes into, after refusing what ``sign_document`` refuses."""
    header = _xmldsig.find_header(root)  # the header must exist (either dialect) or InvalidDocument names its path
    existing = next(root.iter(_xmldsig.SIGNATURE_TAG), None)
    if existing is not None:
        raise InvalidDocument(
            [Problem(element_path(existing), "the document is already signed")],
            reason="ALREADY_SIGNED",
        )
    try:
        _xmldsig.refuse_comments_and_pis(root)
    except _xmldsig.ProfileError as exc:
        raise InvalidDocument([exc.problem]) from exc
    return header


def _fragment(digest: bytes, key: SigningKey, chain: Sequence[x509.Certificate], include_root: bool) -> bytes:
    """The Signature element for a document whose Reference digest (SHA-256, exc-c14n) is ``digest``."""
    certificates = _x509_values(key.certificate, tuple(chain), include_root)
    signed_info = _xmldsig.signed_info_c14n(
        signature_method=key.algorithm, digest_value=base64.b64encode(digest).decode("ascii")
    )
    value = base64.b64encode(key.sign(signed_info)).decode("ascii")
    return _xmldsig.signature_fragment(signed_info, value, certificates)


def _splice_into_header(data: bytes, root: etree._Element, fragment: bytes) -> bytes:
    """Insert ``fragment`` just before the header's end tag, leaving every other byte as the sender wrote it.

    Falls back to lxml's UTF-8 serialisation (where CDATA is written as text, so the end tag is unambiguous)
    when the document is not UTF-8 or its bytes show the header's end tag other than exactly once.
    """
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
    ends = list(_HEADER_END.finditer(data)) if encoding in {"UTF-8", "UTF8", "ASCII", "US-ASCII"} else []
    if len(ends) != 1:
        data = _XML_DECLARATION + etree.tostring(root.getroottree(), encoding="UTF-8")
        ends = list(_HEADER_END.finditer(data))
    position = ends[0].start()
    return data[:position] + fragment + data[position:]
