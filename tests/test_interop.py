"""Interoperability: xmlsec1 signs and verifies our way, and a differential against signxml's strictest mode."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from signxml import SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm

from signer.legacy import RSA_SHA1, SHA1
from signer.report import Indication, SubIndication
from tests.support import require_tool
from tests.support.pki_fixtures import FIXED_NOW, TestPki
from tests.support.signing import organ_of, signed_by, unsigned
from tests.test_attacks import VECTORS, Vector

pytestmark = pytest.mark.servers

TEMPLATE = (
    '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>'
    '<CanonicalizationMethod Algorithm="{c14n}"/>'
    '<SignatureMethod Algorithm="{method}"/>'
    '<Reference URI=""><Transforms>'
    '<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    '<Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms>'
    '<DigestMethod Algorithm="{digest}"/><DigestValue/></Reference>'
    "</SignedInfo><SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>"
)
RSA = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
#: Inclusive C14N 1.0 for SignedInfo, as xmlsec1's own templates and many public samples use it.
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """Point OpenSSL's default trust store at an empty directory: only --trusted-pem counts."""
    empty = tmp_path / "empty-trust"
    empty.mkdir(exist_ok=True)
    (empty / "none.pem").write_bytes(b"")
    return {**os.environ, "SSL_CERT_FILE": str(empty / "none.pem"), "SSL_CERT_DIR": str(empty)}


def xmlsec1_sign(  # noqa: PLR0917 - a test helper read positionally at every call
    tmp_path: Path,
    pki_dir: Path,
    name: str,
    organ_id: str,
    method: str,
    out: Path,
    *,
    digest: str = SHA256,
    c14n: str = EXC_C14N,
) -> None:
    """Sign an unsigned document with the xmlsec1 CLI from a template placed as the header's last child."""
    tool = require_tool("xmlsec1")
    doc = unsigned(organ_id).decode()
    closing = "</edXML:edXMLHeader>"
    template = tmp_path / f"{out.stem}-template.xml"
    signature = TEMPLATE.format(method=method, digest=digest, c14n=c14n)
    template.write_text(doc.replace(closing, signature + closing, 1), encoding="utf-8")
    keys = f"{pki_dir / (name + '.key')},{pki_dir / (name + '.pem')},{pki_dir / 'ca.pem'}"
    subprocess.run(
        [tool, "--sign", "--privkey-pem", keys, "--output", str(out), str(template)],
        check=True,
        capture_output=True,
        env=_isolated_env(tmp_path),
        timeout=60,
    )


@pytest.mark.parametrize(("name", "method"), [("agency-rsa", RSA), ("agency-ec", ECDSA)])
def test_xmlsec1_signed_documents_verify_here(pki, pki_dir, tmp_path, verifier, name, method):  # noqa: PLR0917
    """Documents signed by the xmlsec1 CLI (RSA and ECDSA) are TOTAL_PASSED here."""
    issued = pki.agency_rsa if name == "agency-rsa" else pki.agency_ec
    out = tmp_path / f"{name}.xml"
    xmlsec1_sign(tmp_path, pki_dir, name, organ_of(issued), method, out)
    report = verifier.verify(out.read_bytes(), at=FIXED_NOW)
    assert report.indication is Indication.TOTAL_PASSED, report.errors


@pytest.mark.parametrize("c14n", [EXC_C14N, C14N])
def test_xmlsec1_rsa_sha1_is_legacy_not_broken(pki, pki_dir, tmp_path, verifier, c14n):
    """An rsa-sha1/sha1 document signed by xmlsec1 is INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE, its crypto valid."""
    out = tmp_path / "rsa-sha1.xml"
    xmlsec1_sign(tmp_path, pki_dir, "agency-rsa", organ_of(pki.agency_rsa), RSA_SHA1, out, digest=SHA1, c14n=c14n)
    assert _xmlsec1_verify(tmp_path, pki_dir, out.read_bytes())  # the signature is sound: xmlsec1 accepts it
    report = verifier.verify(out.read_bytes(), at=FIXED_NOW)
    assert (report.indication, report.subindication) == (
        Indication.INDETERMINATE,
        SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    )
    expected = (
        "the digest and the signature value are mathematically valid, but legacy SHA-1 "
        f"(signature method {RSA_SHA1}; digest method {SHA1}) is not allowed: collisions are practical, so the "
        "signature cannot be relied on; ask the sender to re-sign with SHA-256"
    )
    assert report.errors == (expected,)


def test_xmlsec1_inclusive_c14n_signed_info_verifies_here(pki, pki_dir, tmp_path, verifier):
    """An rsa-sha256 document whose SignedInfo xmlsec1 canonicalised with inclusive C14N 1.0 is TOTAL_PASSED."""
    out = tmp_path / "inclusive.xml"
    xmlsec1_sign(tmp_path, pki_dir, "agency-rsa", organ_of(pki.agency_rsa), RSA, out, c14n=C14N)
    report = verifier.verify(out.read_bytes(), at=FIXED_NOW)
    assert report.indication is Indication.TOTAL_PASSED, report.errors


def _xmlsec1_verify(tmp_path: Path, pki_dir: Path, data: bytes, trusted: str = "root.pem") -> bool:
    tool = require_tool("xmlsec1")
    path = tmp_path / "to-verify.xml"
    path.write_bytes(data)
    result = subprocess.run(
        [
            tool,
            "--verify",
            "--trusted-pem",
            str(pki_dir / trusted),
            "--untrusted-pem",
            str(pki_dir / "ca.pem"),
            "--verification-time",
            FIXED_NOW.strftime("%Y-%m-%d %H:%M:%S"),
            str(path),
        ],
        check=False,
        capture_output=True,
        env=_isolated_env(tmp_path),
        timeout=60,
    )
    return result.returncode == 0


@pytest.mark.parametrize("name", ["agency_rsa", "agency_ec"])
def test_documents_signed_here_verify_with_xmlsec1(pki, pki_dir, tmp_path, name):
    """xmlsec1 --verify, trusting only the test root, accepts documents signed here (RSA and ECDSA)."""
    assert _xmlsec1_verify(tmp_path, pki_dir, signed_by(getattr(pki, name)))


def test_xmlsec1_rejects_ours_under_another_root(pki, pki_dir, tmp_path):
    """The isolated xmlsec1 really checks trust: with another root as anchor it refuses."""
    assert not _xmlsec1_verify(tmp_path, pki_dir, signed_by(pki.agency_rsa), trusted="untrusted-root.pem")


# --- differential against signxml ---------------------------------------------------------------------------

STRICT = SignatureConfiguration(
    require_x509=True,
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    verification_time=FIXED_NOW,
    default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
)


def _signxml_accepts(data: bytes, pki: TestPki) -> bool:
    try:
        XMLVerifier().verify(data, x509_cert=pki.agency_rsa.cert, expect_config=STRICT)
    except Exception:  # noqa: BLE001 - any refusal counts as "not accepted"
        return False
    return True


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_signxml_differential(pki, verifier, vector: Vector):
    """Lienthong and strict signxml agree on every vector, or the vector names why they may not."""
    ours = verifier.verify(vector.build(pki), at=FIXED_NOW).passed
    theirs = _signxml_accepts(vector.build(pki), pki)
    if ours != theirs:
        assert vector.signxml_differs, f"{vector.name}: lienthong {ours}, signxml {theirs}, and no reason given"
        assert theirs, "lienthong must never be the more permissive one"
