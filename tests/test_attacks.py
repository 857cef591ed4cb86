"""Attacks on the XMLDSig profile: wrapping (XSW), comments, transforms, HMAC, key confusion, legacy hashes.

``VECTORS`` is shared with the signxml differential in ``test_interop``: each entry builds a document from a
validly signed one and names the verdict lienthong must give.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from signer import _xmldsig
from signer.report import Indication, SubIndication
from tests.support.pki_fixtures import FIXED_NOW, TestPki
from tests.support.signing import signed_by

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
DS = "{" + DS_NS + "}"
E = "{http://www.mic.gov.vn/TBT/QCVN_102_2016}"
FAIL = Indication.TOTAL_FAILED
INDET = Indication.INDETERMINATE
PASS = Indication.TOTAL_PASSED


def _root(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _sig(root: etree._Element) -> etree._Element:
    found = root.find(f".//{DS}Signature")
    assert found is not None
    return found


def resign(
    root: etree._Element,
    pki: TestPki,
    *,
    signature_method: str | None = None,
    digest_method: str | None = None,
    hash_name: str = "sha256",
    digest_name: str = "sha256",
    exclusive: bool = True,
) -> bytes:
    """Recompute DigestValue and SignatureValue (agency RSA key) after editing SignedInfo: a *valid* forgery."""
    signature = _sig(root)
    signed_info = signature[0]
    if signature_method:
        signed_info[1].set("Algorithm", signature_method)
    if digest_method:
        signed_info[2][1].set("Algorithm", digest_method)
    with _xmldsig.detached(signature):
        canonical = _xmldsig.canonical_document(root, exclusive=exclusive)
    signed_info[2][2].text = base64.b64encode(hashlib.new(digest_name, canonical).digest()).decode()
    key = pki.agency_rsa.key
    assert isinstance(key, rsa.RSAPrivateKey)
    algorithm = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1(), "md5": hashes.MD5()}[hash_name]  # noqa: S303
    data = _xmldsig.canonical_element(signed_info, exclusive=True)
    signature[1].text = base64.b64encode(key.sign(data, padding.PKCS1v15(), algorithm)).decode()
    return _bytes(root)


# --- the vectors ---------------------------------------------------------------------------------------------


def _forged_root_with_original_inside(pki: TestPki) -> bytes:
    """XSW: a forged document whose header holds the signed original (with its signature) nested inside."""
    original = _root(signed_by(pki.agency_rsa))
    forged = copy.deepcopy(original)
    forged_header = forged[0][0]
    forged_header.remove(_sig(forged))
    subject = forged.find(f".//{E}Subject")
    assert subject is not None
    subject.text = "Chuyển 1 tỷ đồng vào tài khoản sau"
    forged_header.append(original)
    return _bytes(forged)


def _forged_root_with_signature_copied(pki: TestPki) -> bytes:
    """XSW: the signature copied into a forged document's header (the reference now covers the forgery)."""
    forged = _root(signed_by(pki.agency_rsa))
    subject = forged.find(f".//{E}Subject")
    assert subject is not None
    subject.text = "Nội dung giả mạo"
    return _bytes(forged)


def _signature_moved_to_body(pki: TestPki) -> bytes:
    """The signature moved out of the header to the end of edXMLEnvelope."""
    root = _root(signed_by(pki.agency_rsa))
    root[0].append(_sig(root))
    return _bytes(root)


def _signature_not_last(pki: TestPki) -> bytes:
    """An element appended after the signature in the header."""
    root = _root(signed_by(pki.agency_rsa))
    etree.SubElement(root[0][0], E + "Extra").text = "x"
    return _bytes(root)


def _original_in_object(pki: TestPki) -> bytes:
    """XSW: the original document tucked into a ds:Object of a signature on a forged document."""
    original = _root(signed_by(pki.agency_rsa))
    forged = _root(signed_by(pki.agency_rsa))
    obj = etree.SubElement(_sig(forged), DS + "Object")
    obj.append(original[0])
    return _bytes(forged)


def _duplicate_ids(pki: TestPki) -> bytes:
    """XSW: Reference URI="#doc" pointing at an Id that appears twice (forged copy first)."""
    root = _root(signed_by(pki.agency_rsa))
    root.set("Id", "doc")
    etree.SubElement(root[0], E + "Shadow", Id="doc").text = "forged"
    _sig(root)[0][2].set("URI", "#doc")
    return resign(root, pki)


def _reference_to_id(pki: TestPki) -> bytes:
    """A Reference by Id (not URI="") even when validly signed: out of profile."""
    root = _root(signed_by(pki.agency_rsa))
    root.set("Id", "doc")
    _sig(root)[0][2].set("URI", "#doc")
    return resign(root, pki)


def _comment_in_signed_text(pki: TestPki) -> bytes:
    """Comment-truncation: 'Kính gửi' split by a comment, which c14n drops and naive readers truncate at."""
    data = signed_by(pki.agency_rsa)
    return data.replace("Kính gửi".encode(), "Kính<!-- x --> gửi".encode(), 1)


def _pi_in_document(pki: TestPki) -> bytes:
    """A processing instruction inside the root element."""
    return signed_by(pki.agency_rsa).replace(b"</edXML:edXMLEnvelope>", b"<?evil data?></edXML:edXMLEnvelope>", 1)


def _transform(algorithm: str, child: Callable[[etree._Element], None] | None = None) -> Callable[[TestPki], bytes]:
    def build(pki: TestPki) -> bytes:
        root = _root(signed_by(pki.agency_rsa))
        transforms = _sig(root)[0][2][0]
        step = etree.SubElement(transforms, DS + "Transform", Algorithm=algorithm)
        if child is not None:
            child(step)
        transforms.remove(transforms[1])
        return resign(root, pki)

    return build


def _xpath(step: etree._Element) -> None:
    etree.SubElement(step, DS + "XPath").text = "not(ancestor-or-self::*[local-name()='Subject'])"


def _hmac_with_certificate(pki: TestPki) -> bytes:
    """HMAC-SHA256 keyed with the certificate's public bytes (the classic key-confusion trick)."""
    root = _root(signed_by(pki.agency_rsa))
    signature = _sig(root)
    signature[0][1].set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")
    secret = pki.agency_rsa.cert_pem()
    data = _xmldsig.canonical_element(signature[0], exclusive=True)
    signature[1].text = base64.b64encode(hmac.new(secret, data, "sha256").digest()).decode()
    return _bytes(root)


def _key_value_mismatch(pki: TestPki) -> bytes:
    """A KeyValue naming another key than the certificate's."""
    root = _root(signed_by(pki.agency_rsa))
    other = pki.untrusted_leaf.cert.public_key()
    assert isinstance(other, rsa.RSAPublicKey)
    numbers = other.public_numbers()
    key_value = etree.SubElement(_sig(root)[2], DS + "KeyValue")
    rsa_value = etree.SubElement(key_value, DS + "RSAKeyValue")
    etree.SubElement(rsa_value, DS + "Modulus").text = base64.b64encode(numbers.n.to_bytes(256, "big")).decode()
    etree.SubElement(rsa_value, DS + "Exponent").text = base64.b64encode(numbers.e.to_bytes(3, "big")).decode()
    return _bytes(root)


def _key_value_matching(pki: TestPki) -> bytes:
    """A KeyValue equal to the certificate's key (allowed)."""
    root = _root(signed_by(pki.agency_rsa))
    own = pki.agency_rsa.cert.public_key()
    assert isinstance(own, rsa.RSAPublicKey)
    numbers = own.public_numbers()
    key_value = etree.SubElement(_sig(root)[2], DS + "KeyValue")
    rsa_value = etree.SubElement(key_value, DS + "RSAKeyValue")
    etree.SubElement(rsa_value, DS + "Modulus").text = base64.b64encode(numbers.n.to_bytes(256, "big")).decode()
    etree.SubElement(rsa_value, DS + "Exponent").text = base64.b64encode(numbers.e.to_bytes(3, "big")).decode()
    return _bytes(root)


def _two_signatures(pki: TestPki) -> bytes:
    """A second signature appended to edXMLEnvelope."""
    root = _root(signed_by(pki.agency_rsa))
    root[0].append(copy.deepcopy(_sig(root)))
    return _bytes(root)


def _two_references(pki: TestPki) -> bytes:
    """A second Reference in SignedInfo."""
    root = _root(signed_by(pki.agency_rsa))
    signed_info = _sig(root)[0]
    signed_info.append(copy.deepcopy(signed_info[2]))
    return resign(root, pki)


def _retrieval_method(pki: TestPki) -> bytes:
    """KeyInfo/RetrievalMethod (an indirection an attacker controls)."""
    root = _root(signed_by(pki.agency_rsa))
    etree.SubElement(_sig(root)[2], DS + "RetrievalMethod", URI="http://127.0.0.1/key")
    return _bytes(root)


def _rsa_sha1(pki: TestPki) -> bytes:
    """A valid rsa-sha1 / sha1 signature (what public samples still carry)."""
    return resign(
        _root(signed_by(pki.agency_rsa)),
        pki,
        signature_method="http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        digest_method="http://www.w3.org/2000/09/xmldsig#sha1",
        hash_name="sha1",
        digest_name="sha1",
    )


def _md5_digest(pki: TestPki) -> bytes:
    """A valid signature over an MD5 reference digest."""
    return resign(
        _root(signed_by(pki.agency_rsa)),
        pki,
        digest_method="http://www.w3.org/2001/04/xmldsig-more#md5",
        digest_name="md5",
    )


def _inclusive_c14n(pki: TestPki) -> bytes:
    """A valid signature using inclusive c14n 1.0 for the reference (allowed by the profile)."""
    root = _root(signed_by(pki.agency_rsa))
    transforms = _sig(root)[0][2][0]
    transforms[1].set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    return resign(root, pki, exclusive=False)


def _with_comments_c14n(pki: TestPki) -> bytes:
    """The WithComments canonicalisation variant (out of profile: URI="" excludes comments)."""
    root = _root(signed_by(pki.agency_rsa))
    _sig(root)[0][0].set("Algorithm", "http://www.w3.org/2001/10/xml-exc-c14n#WithComments")
    return _bytes(root)


def _doctype(pki: TestPki) -> bytes:
    """An internal DTD with an entity (billion laughs shape)."""
    data = signed_by(pki.agency_rsa)
    head, _, rest = data.partition(b"\n")
    return head + b'\n<!DOCTYPE edXML [<!ENTITY a "aaaa">]>\n' + rest


@dataclass(frozen=True)
class Vector:
    """One document shape and the verdict lienthong must give it."""

    name: str
    build: Callable[[TestPki], bytes]
    indication: Indication
    sub: SubIndication | None
    #: Why signxml (strictest configuration, pinned to the leaf certificate) may disagree, if it may.
    signxml_differs: str = ""


VECTORS: tuple[Vector, ...] = (
    Vector("valid", lambda pki: signed_by(pki.agency_rsa), PASS, None),
    Vector("valid-inclusive-c14n", _inclusive_c14n, PASS, None),
    Vector("valid-keyvalue-matching", _key_value_matching, PASS, None),
    Vector(
        "xsw-forged-root-original-nested",
        _forged_root_with_original_inside,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml's location './/' finds the nested signature; what it returns as signed is the original",
    ),
    Vector("xsw-signature-copied-to-forgery", _forged_root_with_signature_copied, FAIL, SubIndication.HASH_FAILURE),
    Vector(
        "xsw-signature-moved-to-body",
        _signature_moved_to_body,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml accepts an enveloped signature anywhere in the document",
    ),
    Vector("signature-not-last-child", _signature_not_last, FAIL, SubIndication.FORMAT_FAILURE),
    Vector(
        "xsw-original-in-object",
        _original_in_object,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml allows ds:Object; the reference (URI='') still matches the outer document it checks",
    ),
    Vector(
        "xsw-duplicate-ids",
        _duplicate_ids,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml resolves URI='#doc' by Id; lienthong allows only URI=''",
    ),
    Vector(
        "reference-by-id",
        _reference_to_id,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml accepts same-document Id references; lienthong's profile does not",
    ),
    Vector(
        "comment-in-signed-text",
        _comment_in_signed_text,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "comments are outside the signed node set, so the signature stays valid for signxml",
    ),
    Vector("processing-instruction", _pi_in_document, FAIL, SubIndication.FORMAT_FAILURE),
    Vector(
        "xpath-transform",
        _transform("http://www.w3.org/TR/1999/REC-xpath-19991116", _xpath),
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml 5.2 accepted it (observed): it does not refuse an XPath transform after enveloped-signature",
    ),
    Vector(
        "xslt-transform",
        _transform("http://www.w3.org/TR/1999/REC-xslt-19991116"),
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml 5.2 accepted it (observed): an unknown/XSLT transform is not refused",
    ),
    Vector("hmac-with-certificate", _hmac_with_certificate, FAIL, SubIndication.FORMAT_FAILURE),
    Vector(
        "keyvalue-mismatch",
        _key_value_mismatch,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml with require_x509 uses the pinned certificate and ignores KeyValue",
    ),
    Vector("two-signatures", _two_signatures, FAIL, SubIndication.FORMAT_FAILURE),
    Vector("two-references", _two_references, FAIL, SubIndication.FORMAT_FAILURE),
    Vector(
        "retrieval-method",
        _retrieval_method,
        FAIL,
        SubIndication.FORMAT_FAILURE,
        "signxml ignores unknown KeyInfo children when pinned to a certificate",
    ),
    Vector("rsa-sha1", _rsa_sha1, INDET, SubIndication.CRYPTO_CONSTRAINTS_FAILURE),
    Vector("md5-digest", _md5_digest, INDET, SubIndication.CRYPTO_CONSTRAINTS_FAILURE),
    Vector("exc-c14n-with-comments", _with_comments_c14n, FAIL, SubIndication.FORMAT_FAILURE),
    Vector("doctype-entity", _doctype, FAIL, SubIndication.FORMAT_FAILURE),
)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_gets_its_verdict(pki, verifier, vector):
    """Each attack is refused with its indication; the valid shapes pass."""
    report = verifier.verify(vector.build(pki), at=FIXED_NOW)
    assert (report.indication, report.subindication) == (vector.indication, vector.sub), report.errors


def test_rsa_sha1_error_says_legacy_sha1(pki, verifier):
    """A valid rsa-sha1 signature is reported with an error naming legacy SHA-1."""
    report = verifier.verify(_rsa_sha1(pki), at=FIXED_NOW)
    assert any("legacy SHA-1" in e for e in report.errors)


def test_broken_sha1_signature_is_still_a_failure(pki, verifier):
    """A SHA-1 document whose content was changed is TOTAL_FAILED / HASH_FAILURE, not merely legacy."""
    data = _rsa_sha1(pki).replace("Kính gửi".encode(), "Kính chào".encode(), 1)
    report = verifier.verify(data, at=FIXED_NOW)
    assert (report.indication, report.subindication) == (FAIL, SubIndication.HASH_FAILURE)


def test_errors_name_the_offending_element(pki, verifier):
    """Format failures name the element path, e.g. the second signature's location."""
    report = verifier.verify(_two_signatures(pki), at=FIXED_NOW)
    assert "edXMLEnvelope/Signature" in report.errors[0]
    report = verifier.verify(_transform("http://www.w3.org/TR/1999/REC-xslt-19991116")(pki), at=FIXED_NOW)
    assert "Transforms" in report.errors[0]


@pytest.mark.parametrize(
    "data",
    [b"", b"not xml", b"<a/>", b"\xff\xfe<\x00", b'<?xml version="1.0" encoding="bogus"?><a/>'],
    ids=["empty", "text", "other-root", "utf16-garbage", "bad-encoding"],
)
def test_garbage_is_format_failure(verifier, data):
    """Garbage input gives TOTAL_FAILED / FORMAT_FAILURE, never an exception."""
    report = verifier.verify(data, at=FIXED_NOW)
    assert (report.indication, report.subindication) == (FAIL, SubIndication.FORMAT_FAILURE)
