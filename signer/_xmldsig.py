"""XMLDSig internals shared by signing and verification: names, the edXML profile, c14n and digests.

Hazards live here, below the safe recipes of ``signer.sign`` and ``signer.verify``. The profile is narrow on
purpose: one enveloped signature, last child of the header of the very root being processed, one
``Reference URI=""``; anything else is refused before any cryptography runs.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree

from schemas._names import DSIG_NS, EDXML_NS, LGSP_NS
from schemas._reader import element_path
from schemas.errors import InvalidDocument, Problem
from signer import legacy

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__: list[str] = []  # private module; names are imported explicitly by signer.sign / signer.verify

DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"

SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

#: signature method URI -> (key family, hash name understood by hashlib and signer.verify).
SIGNATURE_METHODS: dict[str, tuple[str, str]] = {
    RSA_SHA256: ("rsa", "sha256"),
    RSA_SHA384: ("rsa", "sha384"),
    RSA_SHA512: ("rsa", "sha512"),
    ECDSA_SHA256: ("ec", "sha256"),
    ECDSA_SHA384: ("ec", "sha384"),
    ECDSA_SHA512: ("ec", "sha512"),
    **legacy.LEGACY_SIGNATURE_METHODS,
}
#: digest method URI -> hashlib name.
DIGEST_METHODS: dict[str, str] = {
    SHA256: "sha256",
    SHA384: "sha384",
    SHA512: "sha512",
    **legacy.LEGACY_DIGEST_METHODS,
}
#: Canonicalisation methods of the profile (never the WithComments variants: URI="" drops comments).
C14N_METHODS = frozenset({EXC_C14N, C14N})

_DS = "{" + DSIG_NS + "}"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
SIGNATURE_TAG = _DS + "Signature"

# Where the header sits, per dialect: (root tag, path of element tags from the root to the header).
_HEADERS: dict[str, tuple[str, ...]] = {
    f"{{{EDXML_NS}}}edXML": (f"{{{EDXML_NS}}}edXMLEnvelope", f"{{{EDXML_NS}}}edXMLHeader"),
    f"{{{LGSP_NS}}}EdXMLEnvelope": (f"{{{LGSP_NS}}}EdXMLHeader",),
}


class ProfileError(Exception):
    """The signature does not follow the edXML XMLDSig profile (becomes TOTAL_FAILED / FORMAT_FAILURE)."""

    def __init__(self, path: str, message: str) -> None:
        self.problem = Problem(path, message)
        super().__init__(str(self.problem))


def local(tag: str) -> str:
    """Return the local part of a Clark-notation tag."""
    return tag.rpartition("}")[2]


def find_header(root: etree._Element) -> etree._Element:
    """Return the edXML header of ``root`` (either dialect), or raise ``InvalidDocument`` naming the path."""
    tag = str(root.tag) if isinstance(root.tag, str) else ""
    steps = _HEADERS.get(tag)
    if steps is None:
        raise InvalidDocument(
            [Problem("/" + local(tag), f"root element {tag!r} is neither QCVN 102 edXML nor LGSP EdXMLEnvelope")]
        )
    node = root
    for step in steps:
        found = node.findall(step)
        if len(found) != 1:
            path = element_path(node) + "/" + local(step)
            if not found:
                raise InvalidDocument([Problem(path, "missing: the signature goes in this header")])
            raise InvalidDocument([Problem(path, f"appears {len(found)} times; exactly one is allowed")])
        node = found[0]
    return node


def from_organ_id(header: etree._Element) -> str | None:
    """``MessageHeader/From/OrganId`` directly under ``header`` (documents and status messages alike)."""
    ns = str(header.tag).partition("}")[0] + "}"
    node = header.find(f"{ns}MessageHeader/{ns}From/{ns}OrganId")
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def refuse_comments_and_pis(root: etree._Element) -> None:
    """Raise ``ProfileError`` if any comment or processing instruction sits inside ``root``.

    Comments are outside the signed node set, so a comment splitting signed text ("adm<!---->in") lets two
    different readings share one signature: refused outright.
    """
    for node in root.iter(etree.Comment, etree.ProcessingInstruction):
        tag: object = node.tag  # lxml puts the factory function (etree.Comment / etree.PI) in .tag
        kind = "comment" if tag is etree.Comment else "processing instruction"
        parent = node.getparent()
        where = element_path(parent) if parent is not None else "/"
        raise ProfileError(where, f"a {kind} inside the document is not allowed in a signed edXML document")


def b64decode(text: str | None, where: etree._Element | str) -> bytes:
    """Strict base64 (whitespace allowed between characters) or ``ProfileError`` naming ``where``."""
    if text is None:
        raise ProfileError(_where(where), "empty: base64 content expected")
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProfileError(_where(where), f"not valid base64: {exc}") from exc


def _where(where: etree._Element | str) -> str:
    return where if isinstance(where, str) else element_path(where)


@contextmanager
def detached(signature: etree._Element) -> Iterator[None]:
    """Remove ``signature`` from its parent for the duration (the enveloped-signature transform).

    The transform removes the element only; the text after it (lxml's ``tail``) stays where it was, so it is
    moved onto the previous node while detached and put back afterwards.
    """
    parent = signature.getparent()
    if parent is None:
        yield
        return
    index = parent.index(signature)
    tail = signature.tail
    previous = signature.getprevious()
    saved_prev_tail = previous.tail if previous is not None else parent.text
    signature.tail = None
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(signature)
    try:
        yield
    finally:
        if previous is not None:
            previous.tail = saved_prev_tail
        else:
            parent.text = saved_prev_tail
        parent.insert(index, signature)
        signature.tail = tail


def canonical_document(root: etree._Element, *, exclusive: bool, prefixes: tuple[str, ...] = ()) -> bytes:
    """C14N 1.0 (inclusive or exclusive, never with comments) of the whole document: the URI="" node set."""
    return etree.tostring(
        root.getroottree(),
        method="c14n",
        exclusive=exclusive,
        with_comments=False,
        inclusive_ns_prefixes=list(prefixes) if prefixes else None,
    )


def canonical_element(element: etree._Element, *, exclusive: bool, prefixes: tuple[str, ...] = ()) -> bytes:
    """C14N 1.0 of ``element`` in its document context (inherited namespaces count in inclusive mode)."""
    if exclusive:
        return etree.tostring(
            element,
            method="c14n",
            exclusive=True,
            with_comments=False,
            inclusive_ns_prefixes=list(prefixes) if prefixes else None,
        )
    # lxml's inclusive c14n of a subtree writes xmlns="" on the grandchildren of a default-namespace apex (lxml 6.1,
    # libxml2 2.14), so SignedInfo as xmlsec1 signs it never verified. Canonicalise a standalone copy instead, its
    # apex declaring every namespace in scope and carrying the xml:* attributes it inherits, as C14N 1.0 asks.
    nsmap: Any = element.nsmap  # lxml takes None as the default namespace's prefix; its stubs say str only
    apex = etree.Element(element.tag, nsmap=nsmap)
    for node in (element, *element.iterancestors()):
        for name, value in node.attrib.items():
            if (node is element or str(name).startswith(_XML_NS)) and name not in apex.attrib:
                apex.set(name, value)
    apex.text = element.text
    apex.extend(copy.deepcopy(child) for child in element)
    return etree.tostring(apex, method="c14n", exclusive=False, with_comments=False)


def digest(name: str, data: bytes) -> bytes:
    """``hashlib`` digest by name (legacy names included; used only after the profile check)."""
    return hashlib.new(name, data).digest()


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    """What the profile check extracted from the one ``ds:Signature`` of a document."""

    element: etree._Element
    header: etree._Element
    signed_info: etree._Element
    c14n_method: str
    c14n_prefixes: tuple[str, ...]
    signature_method: str
    digest_method: str
    digest_value: bytes
    reference_exclusive: bool
    reference_prefixes: tuple[str, ...]
    reference_c14n: str
    signature_value: bytes
    certificates: tuple[str, ...]  # X509Certificate texts (base64, whitespace removed), document order
    key_value: etree._Element | None


def _children(element: etree._Element) -> list[etree._Element]:
    # Comments and PIs were refused document-wide already; only elements remain.
    return [child for child in element if isinstance(child.tag, str)]


def _expect(element: etree._Element, names: tuple[str, ...]) -> None:
    """Children of ``element`` must be exactly ``names`` (ds namespace), in this order."""
    got = [str(child.tag) for child in _children(element)]
    if got != [_DS + n for n in names]:
        pretty = ", ".join(local(g) if g.startswith(_DS) else g for g in got) or "nothing"
        raise ProfileError(element_path(element), f"children must be {', '.join(names)}; found {pretty}")


def _algorithm(element: etree._Element) -> str:
    value = element.get("Algorithm")
    if not value:
        raise ProfileError(element_path(element), "Algorithm attribute missing")
    return value


def _c14n_choice(element: etree._Element, algorithm: str) -> tuple[bool, tuple[str, ...]]:
    """(exclusive?, InclusiveNamespaces PrefixList) for a c14n algorithm element; refuses anything else."""
    if algorithm not in C14N_METHODS:
        raise ProfileError(
            element_path(element),
            f"canonicalisation {algorithm!r} is not allowed (exc-c14n or c14n 1.0 only)",
        )
    kids = _children(element)
    if algorithm == C14N:
        if kids:
            raise ProfileError(element_path(element), "inclusive c14n takes no parameters")
        return False, ()
    if not kids:
        return True, ()
    if len(kids) != 1 or kids[0].tag != "{" + EXC_C14N + "}InclusiveNamespaces" or len(kids[0]):
        raise ProfileError(element_path(element), "only an ec:InclusiveNamespaces parameter is allowed")
    prefixes = tuple((kids[0].get("PrefixList") or "").split())
    # "#default" is the spec's name for the default namespace; lxml wants None-free strings, so drop it:
    # exclusive c14n emits the default namespace wherever it is visibly used anyway.
    return True, tuple(p for p in prefixes if p != "#default")


# One flat list of profile rules reads better than a dozen helpers.
def parse_signature(root: etree._Element) -> ParsedSignature:  # noqa: C901, PLR0912, PLR0915
    """Check ``root`` against the edXML signature profile and extract what verification needs.

    Raises ``ProfileError`` (or ``InvalidDocument`` from ``find_header``) on any deviation.
    """
    signatures: list[etree._Element] = []
    for node in root.iter(etree.Comment, etree.ProcessingInstruction, SIGNATURE_TAG):
        tag: object = node.tag  # a string for elements, a factory function for comments and PIs
        if isinstance(tag, str):
            signatures.append(node)
        else:
            refuse_comments_and_pis(root)
    if not signatures:
        raise ProfileError(element_path(root), "no ds:Signature: the document is not signed")
    if len(signatures) > 1:
        where = "; ".join(element_path(s) for s in signatures)
        raise ProfileError(where, f"{len(signatures)} ds:Signature elements; exactly one is allowed")
    signature = signatures[0]
    header = find_header(root)
    if signature.getparent() is not header:
        raise ProfileError(element_path(signature), f"ds:Signature must be a child of {element_path(header)}")
    if header[-1] is not signature:  # comments and PIs were refused above, so [-1] is an element
        raise ProfileError(element_path(signature), f"ds:Signature must be the last child of {element_path(header)}")

    _expect(signature, ("SignedInfo", "SignatureValue", "KeyInfo"))
    signed_info, value_el, key_info = _children(signature)

    _expect(signed_info, ("CanonicalizationMethod", "SignatureMethod", "Reference"))
    c14n_el, method_el, reference = _children(signed_info)
    c14n_method = _algorithm(c14n_el)
    c14n_exclusive, c14n_prefixes = _c14n_choice(c14n_el, c14n_method)
    del c14n_exclusive
    signature_method = _algorithm(method_el)
    if "hmac" in signature_method.lower():
        raise ProfileError(
            element_path(method_el),
            f"HMAC signature method {signature_method!r} is refused: a shared secret proves nothing about a signer",
        )
    if _children(method_el):
        raise ProfileError(element_path(method_el), "SignatureMethod takes no parameters here")

    if reference.get("URI") != "":
        raise ProfileError(
            element_path(reference), f'URI must be "" (the whole document); found {reference.get("URI")!r}'
        )
    _expect(reference, ("Transforms", "DigestMethod", "DigestValue"))
    transforms, digest_el, digest_value_el = _children(reference)
    steps = _children(transforms)
    if any(step.tag != _DS + "Transform" for step in steps):
        raise ProfileError(element_path(transforms), "only ds:Transform children are allowed")
    algorithms = [_algorithm(step) for step in steps]
    if not algorithms or algorithms[0] != ENVELOPED or len(algorithms) > 2:  # noqa: PLR2004
        raise ProfileError(
            element_path(transforms),
            "transforms must be enveloped-signature, optionally followed by one exc-c14n or c14n; found "
            + (", ".join(algorithms) or "none"),
        )
    if _children(steps[0]):
        raise ProfileError(element_path(steps[0]), "enveloped-signature takes no parameters")
    if len(algorithms) == 2:  # noqa: PLR2004
        ref_c14n = algorithms[1]
        ref_exclusive, ref_prefixes = _c14n_choice(steps[1], ref_c14n)
    else:  # the default octet conversion of a node set is inclusive c14n 1.0 without comments
        ref_c14n, ref_exclusive, ref_prefixes = C14N, False, ()
    digest_method = _algorithm(digest_el)
    if _children(digest_el):
        raise ProfileError(element_path(digest_el), "DigestMethod takes no parameters here")
    digest_value = b64decode(digest_value_el.text, digest_value_el)
    if _children(digest_value_el):
        raise ProfileError(element_path(digest_value_el), "DigestValue must be text")
    signature_value = b64decode(value_el.text, value_el)
    if _children(value_el):
        raise ProfileError(element_path(value_el), "SignatureValue must be text")

    certificates, key_value = _key_info(key_info)
    return ParsedSignature(
        element=signature,
        header=header,
        signed_info=signed_info,
        c14n_method=c14n_method,
        c14n_prefixes=c14n_prefixes,
        signature_method=signature_method,
        digest_method=digest_method,
        digest_value=digest_value,
        reference_exclusive=ref_exclusive,
        reference_prefixes=ref_prefixes,
        reference_c14n=ref_c14n,
        signature_value=signature_value,
        certificates=certificates,
        key_value=key_value,
    )


_KEY_INFO_IGNORED = frozenset({_DS + "KeyName"})
_X509_DATA_IGNORED = frozenset(
    {_DS + "X509IssuerSerial", _DS + "X509SubjectName", _DS + "X509SKI", "{" + DSIG11_NS + "}X509Digest"}
)


def _key_info(key_info: etree._Element) -> tuple[tuple[str, ...], etree._Element | None]:  # noqa: C901
    if key_info.tag != _DS + "KeyInfo":
        raise ProfileError(element_path(key_info), "expected ds:KeyInfo")
    certificates: list[str] = []
    key_value: etree._Element | None = None
    for child in _children(key_info):
        if child.tag == _DS + "X509Data":
            for item in _children(child):
                if item.tag == _DS + "X509Certificate":
                    if _children(item) or not item.text:
                        raise ProfileError(element_path(item), "must hold base64 DER text")
                    certificates.append("".join(item.text.split()))
                elif item.tag not in _X509_DATA_IGNORED:
                    raise ProfileError(element_path(item), "not allowed in X509Data")
        elif child.tag == _DS + "KeyValue":
            if key_value is not None:
                raise ProfileError(element_path(child), "at most one KeyValue")
            key_value = child
        elif child.tag not in _KEY_INFO_IGNORED:
            # RetrievalMethod, EncryptedKey, ...: indirections are refused, the certificate must be inline.
            raise ProfileError(element_path(child), f"{local(str(child.tag))} is not allowed in KeyInfo")
    if not certificates:
        raise ProfileError(
            element_path(key_info), "no X509Data/X509Certificate: the signer's certificate must be included"
        )
    return tuple(certificates), key_value


def signed_info_c14n(*, signature_method: str, digest_value: str) -> bytes:
    """The exclusive-c14n form of the profile's SignedInfo, written directly.

    Every part is ours (namespace, algorithm URIs, base64), so its canonical form is known without building
    and canonicalising a tree; the interop tests check it against xmlsec1 and the verifier.
    """
    return (
        f'<SignedInfo xmlns="{DSIG_NS}">'
        f'<CanonicalizationMethod Algorithm="{EXC_C14N}"></CanonicalizationMethod>'
        f'<SignatureMethod Algorithm="{signature_method}"></SignatureMethod>'
        '<Reference URI=""><Transforms>'
        f'<Transform Algorithm="{ENVELOPED}"></Transform>'
        f'<Transform Algorithm="{EXC_C14N}"></Transform>'
        f'</Transforms><DigestMethod Algorithm="{SHA256}"></DigestMethod>'
        f"<DigestValue>{digest_value}</DigestValue></Reference></SignedInfo>"
    ).encode("ascii")


def signature_fragment(signed_info: bytes, signature_value: str, certificates: Sequence[str]) -> bytes:
    """The complete ``ds:Signature`` element (default dsig namespace) around an already-canonical SignedInfo.

    ``certificates`` are the base64 texts of the X509Certificate elements, leaf first.
    """
    x509 = "".join(f"<X509Certificate>{text}</X509Certificate>" for text in certificates)
    return (
        f'<Signature xmlns="{DSIG_NS}">'.encode("ascii")
        + signed_info
        + f"<SignatureValue>{signature_value}</SignatureValue>"
        f"<KeyInfo><X509Data>{x509}</X509Data></KeyInfo></Signature>".encode("ascii")
    )
