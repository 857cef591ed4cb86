"""Round trips of sign_document / Verifier, tampering, certificate outcomes and a mutation property."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from schemas.errors import InvalidDocument
from signer import _xmldsig, devpki
from signer.keys import PemKey, Pkcs11Key, Pkcs12Key, SigningKeyError
from signer.report import Indication, SubIndication
from signer.sign import sign_document
from signer.verify import Verifier, verify_document
from tests.support.pki_fixtures import FIXED_NOW
from tests.support.signing import key_of, organ_of, policy_for, signed_by, unsigned

DS = "{http://www.w3.org/2000/09/xmldsig#}"

# --- round trips ------------------------------------------------------------------------------------------


def test_rsa_round_trip_passes_with_every_field(pki, verifier):
    """An RSA-signed document verifies TOTAL_PASSED with signer, chain, revocation and algorithms filled."""
    data = signed_by(pki.agency_rsa)
    report = verifier.verify(data, at=FIXED_NOW)
    assert report.indication is Indication.TOTAL_PASSED, report.errors
    assert report.subindication is None
    assert report.signer is not None
    assert report.signer.organ_id == "000.00.00.G22"
    assert report.signer.spki_sha256 == devpki.spki_sha256(pki.agency_rsa.cert)
    assert len(report.chain) == 3
    assert report.chain_der[0] == pki.agency_rsa.cert.public_bytes(serialization.Encoding.DER)
    assert report.revocation
    assert report.algorithms == {
        "signature": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "digest": "http://www.w3.org/2001/04/xmlenc#sha256",
        "c14n": "http://www.w3.org/2001/10/xml-exc-c14n#",
    }
    import hashlib  # noqa: PLC0415

    assert report.signed_bytes_sha256 == hashlib.sha256(data).hexdigest()
    assert report.validation_time == FIXED_NOW


def test_ec_round_trip_passes(pki, verifier):
    """A P-256 signature (raw r||s) verifies TOTAL_PASSED and reports ecdsa-sha256."""
    report = verifier.verify(signed_by(pki.agency_ec), at=FIXED_NOW)
    assert report.indication is Indication.TOTAL_PASSED, report.errors
    assert report.algorithms["signature"].endswith("ecdsa-sha256")


def test_signature_is_last_child_of_header_with_default_namespace(pki):
    """The Signature is appended as the header's last child, unprefixed, with leaf then CA (no root)."""
    root = etree.fromstring(signed_by(pki.agency_rsa))
    header = root[0][0]
    assert header[-1].tag == DS + "Signature"
    assert header[-1].prefix is None
    certs = header[-1].findall(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    ders = [base64.b64decode(c.text or "") for c in certs]
    assert ders == [c.public_bytes(serialization.Encoding.DER) for c in (pki.agency_rsa.cert, pki.ca.cert)]


def test_lgsp_dialect_round_trip(pki, verifier):
    """A legacy LGSP EdXMLEnvelope document is signed in its EdXMLHeader and verifies."""
    doc = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<EdXMLEnvelope xmlns="http://www.go.vn/eDoc"><EdXMLHeader>'
        b"<MessageHeader><From><OrganId>000.00.00.G22</OrganId></From></MessageHeader></EdXMLHeader>"
        b"<EdXMLBody/></EdXMLEnvelope>"
    )
    data = sign_document(doc, key_of(pki.agency_rsa), chain=pki.agency_rsa.chain)
    assert etree.fromstring(data)[0][-1].tag == DS + "Signature"
    assert verifier.verify(data, at=FIXED_NOW).indication is Indication.TOTAL_PASSED


def test_pem_loading_and_pkcs12_round_trip(pki, verifier):
    """PemKey.load (encrypted PEM) and Pkcs12Key.load produce keys whose signatures verify."""
    assert pki.agency_rsa.key is not None
    encrypted = pki.agency_rsa.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    pem = PemKey.load(encrypted, pki.agency_rsa.cert_pem() + pki.agency_rsa.chain_pem(), b"secret")
    assert pem.chain == pki.agency_rsa.chain
    data = sign_document(unsigned(), pem, chain=pem.chain)
    assert verifier.verify(data, at=FIXED_NOW).passed
    p12 = pkcs12.serialize_key_and_certificates(
        b"agency",
        pki.agency_rsa.key,
        pki.agency_rsa.cert,
        [pki.ca.cert],
        serialization.BestAvailableEncryption(b"pw"),
    )
    key = Pkcs12Key.load(p12, b"pw")
    assert verifier.verify(sign_document(unsigned(), key, chain=key.chain), at=FIXED_NOW).passed


def test_key_sources_refuse_weak_or_mismatched_keys(pki):
    """RSA-1024 keys and a certificate that is not the key's are refused at load time."""
    with pytest.raises(SigningKeyError, match="too weak"):
        key_of(pki.weak_rsa1024)
    assert pki.agency_ec.key is not None
    with pytest.raises(SigningKeyError, match="not for this private key"):
        PemKey(pki.agency_ec.key, pki.agency_rsa.cert)


def test_pkcs11_round_trip_with_softhsm(pki, softhsm_token):
    """A key generated inside SoftHSM2 signs through PKCS#11 and the document verifies."""
    policy = policy_for(pki, pins=False)
    with Pkcs11Key.open(softhsm_token.uri, cert=softhsm_token.cert.cert) as key:
        data = sign_document(unsigned("000.00.00.H01"), key, chain=softhsm_token.cert.chain)
    report = Verifier(policy).verify(data, at=FIXED_NOW)
    assert report.indication is Indication.TOTAL_PASSED, report.errors
    assert report.signer is not None
    assert report.signer.spki_sha256 == devpki.spki_sha256(softhsm_token.cert.cert)


def test_refuses_to_sign_twice_or_without_header(pki):
    """Signing an already signed document or a non-edXML document raises InvalidDocument."""
    with pytest.raises(InvalidDocument, match="already signed"):
        sign_document(signed_by(pki.agency_rsa), key_of(pki.agency_rsa))
    with pytest.raises(InvalidDocument, match="edXMLHeader"):
        sign_document(
            b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope/></edXML>', key_of(pki.agency_rsa)
        )


def test_verify_document_convenience(pki):
    """verify_document builds a Verifier and returns the same verdict."""
    assert verify_document(signed_by(pki.agency_rsa), policy_for(pki), at=FIXED_NOW).passed


# --- tampering ---------------------------------------------------------------------------------------------


def _replace_text(data: bytes, path: str, new: str) -> bytes:
    root = etree.fromstring(data)
    node = root.find(path, {"e": "http://www.mic.gov.vn/TBT/QCVN_102_2016"})
    assert node is not None, path
    node.text = new
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (".//e:MessageHeader/e:Subject", "V/v a different subject"),
        (".//e:MessageHeader/e:To/e:OrganId", "000.00.00.H13"),
        (".//{*}Attachment/{*}ContentTransferEncoded", base64.b64encode(b"another file").decode()),
    ],
    ids=["text", "recipient", "attachment"],
)
def test_tampered_content_is_hash_failure(pki, verifier, path, value):
    """Changing signed text, a recipient or an attachment gives TOTAL_FAILED / HASH_FAILURE."""
    data = _replace_text(signed_by(pki.agency_rsa, attachment_bytes=300), path, value)
    report = verifier.verify(data, at=FIXED_NOW)
    assert (report.indication, report.subindication) == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)
    assert "digest" in report.errors[0]


def test_tampered_signature_value_is_sig_crypto_failure(pki, verifier):
    """Flipping a bit of SignatureValue gives TOTAL_FAILED / SIG_CRYPTO_FAILURE."""
    root = etree.fromstring(signed_by(pki.agency_rsa))
    value = root.find(f".//{DS}SignatureValue")
    assert value is not None
    raw = bytearray(base64.b64decode(value.text or ""))
    raw[10] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    report = verifier.verify(etree.tostring(root), at=FIXED_NOW)
    assert (report.indication, report.subindication) == (Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE)


# --- certificate outcomes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "indication", "sub"),
    [
        ("expired", Indication.TOTAL_FAILED, SubIndication.EXPIRED),
        ("not_yet_valid", Indication.TOTAL_FAILED, SubIndication.NOT_YET_VALID),
        ("revoked", Indication.TOTAL_FAILED, SubIndication.REVOKED),
        ("wrong_usage", Indication.INDETERMINATE, SubIndication.CHAIN_CONSTRAINTS_FAILURE),
        ("untrusted_leaf", Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND),
    ],
)
def test_certificate_outcomes(pki, verifier, name, indication, sub):
    """Expired, not-yet-valid, revoked, wrong-usage and untrusted signers get the path validator's verdict."""
    issued = getattr(pki, name)
    report = verifier.verify(signed_by(issued), at=FIXED_NOW)
    assert (report.indication, report.subindication) == (indication, sub), report.errors


def test_revoked_later_passes_before_revocation(pki, verifier):
    """A certificate revoked after the validation time still passes at that time."""
    assert verifier.verify(signed_by(pki.revoked_later), at=FIXED_NOW).passed


def test_not_pinned_organ_id_is_sig_constraints_failure(pki, verifier):
    """A valid signer speaking for another agency's OrganId is INDETERMINATE / SIG_CONSTRAINTS_FAILURE."""
    data = sign_document(unsigned("000.00.00.H41"), key_of(pki.agency_rsa), chain=pki.agency_rsa.chain)
    report = verifier.verify(data, at=FIXED_NOW)
    assert (report.indication, report.subindication) == (
        Indication.INDETERMINATE,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    )
    assert "000.00.00.H41" in report.errors[0]
    assert devpki.spki_sha256(pki.agency_rsa.cert) in report.errors[0]


def test_no_directory_is_a_warning(pki):
    """With pins=None the verdict passes and a warning says no directory was applied."""
    report = Verifier(policy_for(pki, pins=False)).verify(signed_by(pki.agency_rsa), at=FIXED_NOW)
    assert report.passed
    assert any("directory" in w for w in report.warnings)


def test_missing_revocation_data_is_try_later(pki):
    """Under the default REQUIRE policy and no CRL, the verdict is INDETERMINATE / TRY_LATER."""
    report = Verifier(policy_for(pki, crls=())).verify(signed_by(pki.agency_rsa), at=FIXED_NOW)
    assert (report.indication, report.subindication) == (Indication.INDETERMINATE, SubIndication.TRY_LATER)


def test_default_clock_is_used_without_at(pki):
    """Without at=, the injected clock gives the validation time."""
    later = FIXED_NOW + timedelta(days=3)
    report = Verifier(policy_for(pki), clock=lambda: later).verify(signed_by(pki.agency_rsa))
    assert report.validation_time == later


# --- property: mutations never pass and never raise ---------------------------------------------------------


@pytest.fixture(scope="module")
def signed_small(pki) -> bytes:
    """One signed document to mutate."""
    return signed_by(pki.agency_rsa)


def _c14n(data: bytes) -> bytes | None:
    """The signed node set in c14n form: the document without its signature (and without comments)."""
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except (etree.XMLSyntaxError, ValueError):
        return None
    signatures = root.findall(f".//{DS}Signature")
    if len(signatures) != 1:
        return None
    with _xmldsig.detached(signatures[0]):  # the enveloped-signature transform, as the verifier applies it
        return etree.tostring(root.getroottree(), method="c14n", exclusive=True, with_comments=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_mutations_never_pass_and_never_raise(verifier, signed_small, data):
    """Random byte edits give a report (never an exception) that passes only if c14n is unchanged."""
    doc = bytearray(signed_small)
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        pos = data.draw(st.integers(0, len(doc) - 1))
        if kind == "flip":
            doc[pos] = data.draw(st.integers(0, 255))
        elif kind == "delete":
            del doc[pos]
        else:
            doc[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    mutated = bytes(doc)
    report = verifier.verify(mutated, at=FIXED_NOW)
    if report.passed:
        assert _c14n(mutated) == _c14n(signed_small)


# --- the bytes signing writes -----------------------------------------------------------------------------


def test_signing_changes_no_byte_but_adds_the_signature(pki):
    """Signing a UTF-8 document inserts the Signature before the header's end tag; every other byte stays."""
    issued = next(i for i in pki.named().values() if devpki.organ_id_of(i.cert) and i.key is not None)
    original = unsigned(organ_of(issued))
    signed = sign_document(original, key_of(issued), chain=issued.chain)
    start = signed.index(b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">')
    end = signed.index(b"</Signature>") + len(b"</Signature>")
    assert signed[:start] + signed[end:] == original
    assert signed[end:].lstrip().startswith(b"</edXML:edXMLHeader>")


def test_signing_a_utf16_document_falls_back_to_utf8(pki):
    """A UTF-16 document is re-serialised as UTF-8 once, then signed, and verifies."""
    issued = next(i for i in pki.named().values() if devpki.organ_id_of(i.cert) and i.key is not None)
    text = unsigned(organ_of(issued)).decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'")
    signed = sign_document(text.encode("utf-16"), key_of(issued), chain=issued.chain)
    assert signed.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert verify_document(signed, policy_for(pki), at=FIXED_NOW).indication is Indication.TOTAL_PASSED
