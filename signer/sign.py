"""Sign an edXML document the edXML way: one enveloped XMLDSig, last child of the header.

``sign_document`` is the safe recipe: SHA-256 digest over the exclusive canonical form of the whole
document (``Reference URI=""``, enveloped-signature + exc-c14n), rsa-sha256 or ecdsa-sha256, and the
signer's certificate with its issuers in ``KeyInfo/X509Data``. Cost: one parse, one canonicalisation of
the document, one of SignedInfo, one private-key operation, one serialisation.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from lxml import etree

from schemas._safe import parse_xml
from schemas.errors import InvalidDocument, Problem
from signer import _xmldsig

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography import x509

    from signer.keys import SigningKey

__all__ = ["sign_document"]

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


@functools.lru_cache(maxsize=256)
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
    header = _xmldsig.find_header(root)
    existing = next(root.iter(_xmldsig.SIGNATURE_TAG), None)
    if existing is not None:
        raise InvalidDocument(
            [Problem(_xmldsig.element_path(existing), "the document is already signed")],
            reason="ALREADY_SIGNED",
        )
    try:
        _xmldsig.refuse_comments_and_pis(root)
    except _xmldsig.ProfileError as exc:
        raise InvalidDocument([exc.problem]) from exc

    certificates = _x509_values(key.certificate, tuple(chain), include_root)

    # Keep the header's closing tag on its own line: the newline that preceded it now follows the signature.
    children = [child for child in header if isinstance(child.tag, str)]
    last = children[-1] if children else None
    tail = last.tail if last is not None else header.text
    if last is not None and last.tail and "\n" in last.tail:
        last.tail = last.tail + "  "
    signature = _xmldsig.build_signature(header, signature_method=key.algorithm, certificates=certificates, tail=tail)
    signed_info = signature[0]
    with _xmldsig.detached(signature):
        canonical = _xmldsig.canonical_document(root, exclusive=True)
    signed_info[2][2].text = base64.b64encode(hashlib.sha256(canonical).digest()).decode("ascii")
    value = key.sign(_xmldsig.canonical_element(signed_info, exclusive=True))
    signature[1].text = base64.b64encode(value).decode("ascii")
    return _XML_DECLARATION + etree.tostring(root.getroottree(), encoding="UTF-8")
