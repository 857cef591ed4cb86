"""PDFs made and signed in the tests (pyHanko, any ``devpki.Issued``): plain, signed, altered, re-signed with a gap.

Shared by the PDF verifier's own tests and by the tests of PDFs inside edXML documents.
"""

import asyncio
import hashlib
import io
import re
from datetime import timedelta

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signer import devpki
from tests.support.pki_fixtures import FIXED_NOW, TestPki

__all__ = [
    "TEXT",
    "TIMESTAMPED_AT",
    "change_page",
    "minimal_pdf",
    "pdf_signer",
    "sign_pdf",
    "timestamper",
    "with_gap",
]

TEXT = b"Cong van so 123"
TIMESTAMPED_AT = FIXED_NOW - timedelta(days=2)


def minimal_pdf(text: bytes = TEXT, padding: int = 0) -> bytes:
    """A one-page PDF showing ``text``, with ``padding`` bytes of an unused stream to make it large."""
    content = b"BT /F1 24 Tf 72 720 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font 6 0 R >> >>",
        b"<< /Length %d >>\nstream\n%b\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /F1 5 0 R >>",
    ]
    if padding:
        blob = b"0" * padding
        objects.append(b"<< /Length %d >>\nstream\n%b\nendstream" % (len(blob), blob))
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _asn1_key(key: devpki.PrivateKey | None) -> asn1_keys.PrivateKeyInfo:
    assert key is not None, "a PDF is signed with a private key in memory"
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return asn1_keys.PrivateKeyInfo.load(der)


def pdf_signer(issued: devpki.Issued) -> signers.SimpleSigner:
    """A pyHanko signer for a devpki certificate, embedding its chain."""
    return signers.SimpleSigner(
        signing_cert=_asn1_cert(issued.cert),
        signing_key=_asn1_key(issued.key),
        cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(c) for c in issued.chain]),
    )


def timestamper(pki: TestPki) -> DummyTimeStamper:
    """An in-process RFC 3161 TSA signing with the test PKI's TSA certificate at TIMESTAMPED_AT."""
    return DummyTimeStamper(
        tsa_cert=_asn1_cert(pki.tsa.cert),
        tsa_key=_asn1_key(pki.tsa.key),
        certs_to_embed=SimpleCertificateStore.from_certs([_asn1_cert(pki.ca.cert)]),
        fixed_dt=TIMESTAMPED_AT,
    )


def sign_pdf(
    data: bytes, issued: devpki.Issued, *, field: str = "Signature1", stamper: DummyTimeStamper | None = None
) -> bytes:
    """Sign ``data`` (PAdES baseline) with ``issued``'s key, as an incremental update."""
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    meta = signers.PdfSignatureMetadata(field_name=field)
    return signers.sign_pdf(writer, meta, signer=pdf_signer(issued), timestamper=stamper).getvalue()


def change_page(signed: bytes) -> bytes:
    """Append an incremental update that replaces the page's text (what a forger would do)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 720 Td (Cong van so 999) Tj ET")
    page["/Contents"] = writer.add_object(stream)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_gap(signed: bytes, issued: devpki.Issued, gap: int = 16) -> bytes:
    """Re-sign ``signed`` over a ByteRange that skips ``gap`` bytes after /Contents (the signature stays intact)."""
    match = re.search(rb"/ByteRange \[(\d+) (\d+) (\d+) (\d+)\] *", signed)
    assert match is not None
    start1, len1, start2, len2 = (int(n) for n in match.groups())
    field = b"/ByteRange [%d %d %d %d]" % (start1, len1, start2 + gap, len2 - gap)
    data = signed[: match.start()] + field.ljust(len(match.group(0))) + signed[match.end() :]
    digest = hashlib.sha256(data[start1 : start1 + len1] + data[start2 + gap : start2 + len2]).digest()
    content = asyncio.run(pdf_signer(issued).async_sign(digest, "sha256", use_pades=True))
    hex_der = content.dump().hex().encode()
    slot = start2 - len1 - 2  # between "<" and ">"
    assert len(hex_der) <= slot
    return data[: len1 + 1] + hex_der.ljust(slot, b"0") + data[start2 - 1 :]
