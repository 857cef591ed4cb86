"""The streaming path (schemas._stream, signer._stream_c14n) against today's tree path, on every vector we have.

Both paths run on the same bytes; verdicts, reasons, problem paths and messages, warnings, models (attachment
content aside: the streaming path checks it without keeping it), verification reports and signed bytes must be
equal. One difference is allowed and named: a not-well-formed document's message is expat's, not libxml2's (same
reason, same path). Hypothesis varies namespace layouts, escapes, attachment sizes, line lengths and chunk sizes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from schemas import InvalidDocument, build_document, build_status
from schemas._parse import _checked, parse_stream
from schemas._safe import parse_xml
from schemas._stream import Base64Check, memory_chunks, scan
from schemas.examples import example_edoc, example_status
from schemas.model import Edoc
from signer import _xmldsig
from signer._stream_c14n import Canonicaliser
from signer.report import SubIndication, VerificationReport
from signer.sign import _HEADER_END, sign_document, sign_stream
from signer.verify import Verifier
from tests import test_schemas_invalid, test_xml_attacks
from tests.support.pki_fixtures import FIXED_NOW, TestPki
from tests.support.signing import key_of, organ_of, policy_for, unsigned
from tests.test_attacks import VECTORS

SAMPLES = sorted((Path(__file__).parent.parent / "schemas" / "samples").glob("*.xml"))
CHUNKS = (13, 65_536)  # a chunk boundary inside nearly every token, and the usual case
NS = test_xml_attacks.NS
LIMIT = 10**9


def _tree_parse(data: bytes) -> Any:
    return _checked(parse_xml(data, max_bytes=LIMIT), bytes(data), strict=False)


def _stream_parse(chunk: int) -> Callable[[bytes], Any]:
    return lambda data: parse_stream(memory_chunks(data, chunk), max_bytes=LIMIT, size=len(data))


def _stream_parse_kept(chunk: int) -> Callable[[bytes], Any]:
    """The streaming path as ``parse(bytes)`` takes it over the threshold: attachments decoded and kept."""

    def parse(data: bytes) -> Any:
        skeleton = scan(memory_chunks(data, chunk), max_bytes=LIMIT, size=len(data), keep_attachments=True)
        assert skeleton.root is not None
        return _checked(skeleton.root, data, strict=False, contents=skeleton.attachment_content)

    return parse


def _without_content(message: Any) -> Any:
    if isinstance(message, Edoc):
        return dataclasses.replace(
            message, attachments=tuple(dataclasses.replace(a, content=b"") for a in message.attachments)
        )
    return message


def _outcome(parse: Callable[[bytes], Any], data: bytes, *, content: bool = False) -> tuple[object, ...]:
    """What a parse decided, in comparable form (attachment content compared only when asked)."""
    try:
        doc = parse(data)
    except InvalidDocument as exc:
        problems = [
            (p.path, "not well-formed XML" if exc.reason == "MALFORMED" else p.message, p.code) for p in exc.problems
        ]
        return (exc.reason, problems, exc.warnings)
    message = doc.message if content else _without_content(doc.message)
    return ("valid", doc.dialect, doc.signature, message, doc.warnings)


def _parse_vectors() -> list[tuple[str, bytes]]:
    vectors = [(path.name, path.read_bytes()) for path in SAMPLES]
    vectors += [("doc", test_schemas_invalid.DOC), ("status", test_schemas_invalid.STATUS)]
    vectors += [(case[0], test_schemas_invalid.edit(case[1], case[2], case[3])) for case in test_schemas_invalid.CASES]
    doc = build_document(example_edoc(attachment_bytes=3_000)).decode()
    attachment = doc.index("<edXML:ContentTransferEncoded>") + len("<edXML:ContentTransferEncoded>")
    body = doc[attachment : doc.index("<", attachment)]

    def with_text(text: str) -> bytes:
        return (doc[:attachment] + text + doc[attachment + len(body) :]).encode()

    vectors += [
        ("billion-laughs", test_xml_attacks.BILLION_LAUGHS.encode()),
        ("billion-laughs-utf16", test_xml_attacks.BILLION_LAUGHS.encode("utf-16")),
        ("quadratic", test_xml_attacks.QUADRATIC.encode()),
        ("internal-dtd", test_xml_attacks.INTERNAL_DTD.encode()),
        ("xxe", test_xml_attacks.xxe(Path("/etc/hostname")).encode()),
        ("truncated", build_document(example_edoc())[:-200]),
        ("binary", bytes(range(256)) * 8),
        ("empty", b""),
        ("wrong-namespace", b'<edXML xmlns="urn:not-edxml"/>'),
        ("no-namespace", b"<edXML/>"),
        ("undefined-entity", b"<a>&undefined;</a>"),
        ("utf16-garbage", b"\xff\xfe<\x00"),
        ("bad-encoding", b'<?xml version="1.0" encoding="bogus"?><a/>'),
        ("undeclared-prefix", b"<a><p:b/></a>"),
        ("same-attribute-twice", b'<a xmlns:p="u" xmlns:q="u" p:x="1" q:x="2"/>'),
        ("depth-256", b"<a>" * 256 + b"</a>" * 256),
        ("depth-257", b"<a>" * 257 + b"</a>" * 257),
        (
            "status-utf16",
            build_status(example_status(example_edoc())).decode().replace("UTF-8", "UTF-16").encode("utf-16"),
        ),
        ("attachment-lines", with_text("\n".join(body[i : i + 76] for i in range(0, len(body), 76)) + "\n")),
        ("attachment-crlf", with_text("\r\n".join(body[i : i + 64] for i in range(0, len(body), 64)))),
        ("attachment-spaces", with_text("  " + body[:100] + " \t " + body[100:] + "  ")),
        ("attachment-cdata", with_text("<![CDATA[" + body + "]]>")),
        ("attachment-char-refs", with_text("&#65;" + body[1:])),
        ("attachment-comment-inside", with_text(body[:40] + "<!-- x -->" + body[40:])),
        ("attachment-bad-char", with_text(body[:-8] + "!" + body[-7:])),
        ("attachment-bad-padding", with_text(body + "=")),
        ("attachment-excess-padding", with_text(body[:-4] + "A===")),
        ("attachment-data-after-padding", with_text("AB==" + body)),
        ("attachment-unicode-space", with_text(body[:20] + "\u00a0" + body[20:])),
        ("attachment-non-ascii", with_text(body[:20] + "é" + body[20:])),
        ("attachment-empty", with_text("")),
        (
            "attachment-attribute",
            with_text(body).replace(b"<edXML:ContentTransferEncoded>", b'<edXML:ContentTransferEncoded a=">">'),
        ),
        ("pi-before-root", b"<?xml-stylesheet href='x'?>" + build_document(example_edoc())[38:]),
        (
            "latin1-declared",
            with_text(body)
            .decode()
            .replace("encoding='UTF-8'", "encoding='ISO-8859-1'")
            .encode("latin-1", "xmlcharrefreplace"),
        ),
    ]
    return vectors


PARSE_VECTORS = _parse_vectors()


@pytest.mark.parametrize(("name", "data"), PARSE_VECTORS, ids=[name for name, _ in PARSE_VECTORS])
def test_parse_verdicts_are_the_same_on_both_paths(name: str, data: bytes) -> None:
    """Every parse vector gets the same verdict, reason, problems, warnings and model (contents too, when kept)."""
    expected = _outcome(_tree_parse, data)
    for chunk in CHUNKS:
        assert _outcome(_stream_parse(chunk), data) == expected, (name, chunk)
    kept = _outcome(_stream_parse_kept(CHUNKS[0]), data, content=True)
    assert kept == _outcome(_tree_parse, data, content=True), name


def _report(report: VerificationReport) -> tuple[object, ...]:
    errors = tuple("not well-formed XML" if e.startswith("not well-formed XML") else e for e in report.errors)
    return (
        report.indication,
        report.subindication,
        errors,
        report.signer,
        report.chain,
        tuple(dataclasses.replace(r, cached=False) for r in report.revocation),  # the second run hits the cache
        report.algorithms,
        report.signed_bytes_sha256,
        report.warnings,
    )


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_verify_reports_are_the_same_on_both_paths(pki: TestPki, vector: Any) -> None:
    """Every signature attack vector gets the same report (indication, errors, signer, chain) on both paths."""
    verifier = Verifier(policy_for(pki), clock=lambda: FIXED_NOW)
    data: bytes = vector.build(pki)
    tampered = data.replace("Kính gửi".encode(), "Kính chào".encode(), 1)
    for document in (data, tampered):
        expected = _report(verifier.verify(document))
        for chunk in CHUNKS:
            streamed = verifier.verify_stream(functools.partial(memory_chunks, document, chunk))
            assert _report(streamed) == expected, (vector.name, chunk)


@pytest.mark.parametrize(("name", "data"), PARSE_VECTORS[:20], ids=[name for name, _ in PARSE_VECTORS[:20]])
def test_verify_of_unsigned_and_broken_documents_is_the_same(pki: TestPki, name: str, data: bytes) -> None:
    """Unsigned, broken and hostile documents get the same FORMAT_FAILURE report from both verify paths."""
    verifier = Verifier(policy_for(pki), clock=lambda: FIXED_NOW)
    expected = _report(verifier.verify(data))
    assert _report(verifier.verify_stream(lambda: memory_chunks(data, 13))) == expected, name


@pytest.mark.parametrize("attachment", [0, 300, 100_000])
@pytest.mark.parametrize("issuer", ["agency_rsa", "agency_ec"])
def test_signing_gives_the_same_bytes_on_both_paths(pki: TestPki, attachment: int, issuer: str) -> None:
    """sign_stream writes the very bytes sign_document writes (RSA; ECDSA verifies: its signatures are random)."""
    issued = getattr(pki, issuer)
    data = unsigned(organ_of(issued), attachment_bytes=attachment)
    key = key_of(issued)
    streamed = b"".join(sign_stream(lambda: memory_chunks(data, 13), key, chain=issued.chain))
    whole = sign_document(data, key, chain=issued.chain)
    if issuer == "agency_rsa":
        assert streamed == whole
    else:
        assert len(streamed) == len(whole)
        assert streamed[: whole.index(b"<SignatureValue>")] == whole[: whole.index(b"<SignatureValue>")]
    verifier = Verifier(policy_for(pki), clock=lambda: FIXED_NOW)
    assert verifier.verify(streamed).indication.value == "TOTAL_PASSED"


@pytest.mark.parametrize(("name", "data"), PARSE_VECTORS, ids=[name for name, _ in PARSE_VECTORS])
def test_signing_refusals_are_the_same_on_both_paths(pki: TestPki, name: str, data: bytes) -> None:
    """What sign_document refuses, sign_stream refuses with the same reason and paths; what it signs, same bytes."""
    key = key_of(pki.agency_rsa)

    def outcome(sign: Callable[[], bytes]) -> object:
        try:
            return sign()
        except InvalidDocument as exc:
            malformed = exc.reason == "MALFORMED"
            return (exc.reason, [(p.path, "" if malformed else p.message) for p in exc.problems])

    expected = outcome(lambda: sign_document(data, key))
    streamed = outcome(lambda: b"".join(sign_stream(lambda: memory_chunks(data, 13), key)))
    declared = re.match(rb"<\?xml[^>]*encoding=[\"']([^\"']+)", data)
    utf8 = declared is None or declared.group(1).upper() in {b"UTF-8", b"UTF8", b"ASCII", b"US-ASCII"}
    if isinstance(expected, bytes) and (len(_HEADER_END.findall(data)) != 1 or not utf8):
        # The tree path re-serialises to UTF-8; the streaming one signs in place, or refuses a wide encoding.
        if isinstance(streamed, bytes):
            verifier = Verifier(policy_for(pki), clock=lambda: FIXED_NOW)
            verdict = verifier.verify_stream(lambda: memory_chunks(streamed))
            assert verdict.indication == verifier.verify(expected).indication, name
            assert verdict.subindication != SubIndication.HASH_FAILURE, name
        else:
            assert isinstance(streamed, tuple), name
            assert "ASCII-compatible" in streamed[1][0][1]
        return
    assert streamed == expected, name


# --- generated documents: the canonicaliser against libxml2's ----------------------------------------------

_PREFIXES = ("", "a", "b", "ds")
_URIS = ("urn:x", "urn:y", NS, "http://www.w3.org/2000/09/xmldsig#")
_TEXT = st.text(alphabet="ab &<>\"'\t\n\r\u00e9\u1ea1]", max_size=12)


def _esc_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _esc_attr(text: str) -> str:
    return _esc_text(text).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")


@st.composite
def _element(draw: st.DrawFn, depth: int, scope: dict[str, str], signature: list[bool]) -> str:
    decls = draw(st.dictionaries(st.sampled_from(_PREFIXES), st.sampled_from((*_URIS, "")), max_size=2))
    decls = {p: u for p, u in decls.items() if u or not p}
    inner = {**scope, **decls}
    bound = sorted(p for p, u in inner.items() if p and u)
    prefix = draw(st.sampled_from(["", *bound]))
    local = draw(st.sampled_from(["e", "f", "ContentTransferEncoded"]))
    name = f"{prefix}:{local}" if prefix else local
    attrs: dict[tuple[str, str], str] = {}
    for attr_prefix, attr_local in draw(
        st.lists(st.tuples(st.sampled_from(["", *bound]), st.sampled_from(["x", "y"])), max_size=3)
    ):
        key = (inner[attr_prefix] if attr_prefix else "", attr_local)  # unique by expanded name (and so by name)
        if key not in attrs:
            qname = f"{attr_prefix}:{attr_local}" if attr_prefix else attr_local
            attrs[key] = f' {qname}="{_esc_attr(draw(_TEXT))}"'
    parts = [f"<{name}"]
    parts += [f' xmlns:{p}="{u}"' if p else f' xmlns="{u}"' for p, u in decls.items()]
    parts += list(attrs.values())
    parts.append(">")
    if local == "ContentTransferEncoded":
        blob = base64.b64encode(draw(st.binary(max_size=3_000))).decode()
        width = draw(st.sampled_from([0, 64, 76]))
        eol = draw(st.sampled_from(["\n", "\r\n"]))
        parts.append(eol.join(blob[i : i + width] for i in range(0, len(blob), width)) if width else blob)
    else:
        for _ in range(draw(st.integers(0, 3 if depth < 3 else 0))):
            parts.append(_esc_text(draw(_TEXT)))
            if not signature[0] and draw(st.booleans()):
                signature[0] = True
                parts.append(
                    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X>s</ds:X></ds:Signature>'
                )
            parts.append(draw(_element(depth + 1, inner, signature)))
        parts.append(_esc_text(draw(_TEXT)))
    parts.append(f"</{name}>")
    return "".join(parts)


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    root = draw(_element(0, {}, [False]))
    before = draw(st.sampled_from(["", "<?pi one?>", "<!-- c -->\n<?pi?>"]))
    after = draw(st.sampled_from(["", "\n<?pi two?>", "<!-- c -->"]))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + before + root + after).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=_documents(),
    exclusive=st.booleans(),
    prefixes=st.lists(st.sampled_from(["a", "b", "ds"]), max_size=2, unique=True),
    chunk=st.integers(1, 200),
)
def test_streamed_c14n_equals_libxml2(document: bytes, exclusive: bool, prefixes: list[str], chunk: int) -> None:
    """The streamed canonical form (Signature removed) is byte for byte libxml2's, whatever the layout and chunks."""
    root = etree.fromstring(document, etree.XMLParser(huge_tree=False, resolve_entities=False))
    signature = next(root.iter(_xmldsig.SIGNATURE_TAG), None)
    wanted = tuple(prefixes) if exclusive else ()
    if signature is not None:
        with _xmldsig.detached(signature):
            expected = _xmldsig.canonical_document(root, exclusive=exclusive, prefixes=wanted)
    else:
        expected = _xmldsig.canonical_document(root, exclusive=exclusive, prefixes=wanted)
    out: list[bytes] = []
    scan(
        memory_chunks(document, chunk),
        max_bytes=LIMIT,
        sink=Canonicaliser(out.append, exclusive=exclusive, prefixes=wanted),
    )
    assert b"".join(out) == expected


def _b64_ok(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet="AQw+/=\n \t\r\u00a0\u00e9*", max_size=40),
        st.binary(max_size=40).map(lambda b: base64.encodebytes(b).decode()),
    ),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    plain=st.booleans(),
)
def test_base64_check_agrees_with_b64decode(text: str, cuts: list[int], plain: bool) -> None:
    """The chunked strict-base64 check says valid exactly when b64decode(validate=True) accepts the whole."""
    check = Base64Check()
    start = 0
    for cut in [*sorted(cuts), len(text)]:
        piece = text[start:cut]
        start = max(start, cut)
        if not (plain and piece.isascii() and check.feed_plain(piece.encode()) is not None):
            check.feed(piece)
    assert check.finish() == _b64_ok(text)


def test_signature_after_megabytes_of_attachment_takes_a_second_pass(
    pki: TestPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 6 MB attachment before the Signature, verify_stream reads twice and agrees with the tree path."""
    data = unsigned(organ_of(pki.agency_rsa), attachment_bytes=6_000_000)
    start, end = data.index(b"<edXML:AttachmentEncoded>"), data.index(b"</edXML:AttachmentEncoded>")
    block = data[start : end + len(b"</edXML:AttachmentEncoded>")]
    data = data.replace(block, b"").replace(b"<edXML:edXMLEnvelope>", block + b"<edXML:edXMLEnvelope>", 1)
    signed = b"".join(sign_stream(lambda: memory_chunks(data), key_of(pki.agency_rsa), chain=pki.agency_rsa.chain))
    opened = []

    def chunks() -> Iterator[bytes]:
        opened.append(1)
        return memory_chunks(signed)

    verifier = Verifier(policy_for(pki), clock=lambda: FIXED_NOW)
    streamed = verifier.verify_stream(chunks)
    assert len(opened) == 2  # the digest came from a second pass
    assert streamed.indication.value == "TOTAL_PASSED"
    monkeypatch.setattr("signer.verify.STREAM_THRESHOLD_BYTES", len(signed))  # the tree path, whatever the size
    assert _report(streamed) == _report(Verifier(policy_for(pki), clock=lambda: FIXED_NOW).verify(signed))
