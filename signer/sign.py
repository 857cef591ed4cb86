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

from schemas._reader import element_path
from schemas._safe import parse_xml
from schemas.errors import InvalidDocument, Problem
from signer import _xmldsig

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography import x509

    from signer.keys import SigningKey

__all__ = ["sign_document"]

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# The header's end tag, either dialect, any prefix (comments are refused before this is used).
_HEADER_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?[eE]dXMLHeader\s*>")


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


@functools.lru_cache(maxsize=256)
def _x509_values(
    leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], include_root: bool
) -> tuple[str, ...]:
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
) -> bytes:
    """Return ``data`` with an enveloped XMLDSig appended as the last child of its edXML header.

    ``chain``: issuers of ``key.certificate`` (nearest first); a self-signed root among them is left out
    unless ``include_root``. Raises ``InvalidDocument`` when ``data`` is not an edXML document or status
    (either dialect), is already signed, or holds comments or processing instructions (a verifier refuses
    those, so signing them would only produce a document nobody accepts).
    """
    root = parse_xml(data)
    _xmldsig.find_header(root)  # the header must exist (either dialect) or InvalidDocument names its path
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

    certificates = _x509_values(key.certificate, tuple(chain), include_root)
    # No signature is in the tree yet, so its canonical form is exactly what the enveloped transform yields.
    canonical = _xmldsig.canonical_document(root, exclusive=True)
    digest = base64.b64encode(hashlib.sha256(canonical).digest()).decode("ascii")
    signed_info = _xmldsig.signed_info_c14n(signature_method=key.algorithm, digest_value=digest)
    value = base64.b64encode(key.sign(signed_info)).decode("ascii")
    fragment = _xmldsig.signature_fragment(signed_info, value, certificates)
    return _splice_into_header(data, root, fragment)


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

