import hashlib
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from signer import devpki
from tests.support import require_tool
from tests.support.pki_fixtures import AGENCY_EC_ORGAN_ID, AGENCY_RSA_ORGAN_ID, FIXED_NOW, NOT_AFTER, NOT_BEFORE

WINDOW = {"not_before": NOT_BEFORE, "not_after": NOT_AFTER}


def ext(cert, kind):
    """Return the extension of class ``kind`` of ``cert``."""
    return cert.extensions.get_extension_for_class(kind)


def test_root_is_a_self_signed_ca_with_an_empty_chain(pki):
    """A root is self-signed, a CA allowed to sign certificates and CRLs, and has no issuers."""
    root = pki.root.cert
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    assert ext(root, x509.BasicConstraints).value.ca
    assert ext(root, x509.BasicConstraints).critical
    usage = ext(root, x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert pki.root.chain == ()


def test_chain_lists_issuers_nearest_first_root_last(pki):
    """Issued.chain runs from the direct issuer to the root, and chain_pem holds the same certificates."""
    assert pki.agency_rsa.chain == (pki.ca.cert, pki.root.cert)
    assert x509.load_pem_x509_certificates(pki.agency_rsa.chain_pem()) == [pki.ca.cert, pki.root.cert]
    pki.agency_rsa.cert.verify_directly_issued_by(pki.ca.cert)
    pki.ca.cert.verify_directly_issued_by(pki.root.cert)


def test_intermediate_ca_has_path_length_zero_and_linked_key_identifiers(pki):
    """The issuing CA may issue only leaves, and its AKI names the root's SKI."""
    assert ext(pki.ca.cert, x509.BasicConstraints).value.path_length == 0
    aki = ext(pki.ca.cert, x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ext(pki.root.cert, x509.SubjectKeyIdentifier).value.digest


def test_agency_leaf_carries_its_organ_id_and_signing_usage(pki):
    """An agency leaf has its OrganId in organizationIdentifier and digitalSignature + nonRepudiation."""
    cert = pki.agency_rsa.cert
    assert devpki.organ_id_of(cert) == AGENCY_RSA_ORGAN_ID
    assert devpki.organ_id_of(pki.agency_ec.cert) == AGENCY_EC_ORGAN_ID
    assert devpki.organ_id_of(pki.root.cert) is None
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.content_commitment
    assert not usage.value.key_encipherment
    assert not ext(cert, x509.BasicConstraints).value.ca


def test_key_types_give_the_promised_keys(pki):
    """Key type "rsa" is RSA-2048, "ec" is P-256 and "rsa1024" is RSA-1024."""
    rsa_key = pki.agency_rsa.cert.public_key()
    ec_key = pki.agency_ec.cert.public_key()
    weak_key = pki.weak_rsa1024.cert.public_key()
    assert isinstance(rsa_key, rsa.RSAPublicKey)
    assert rsa_key.key_size == 2048
    assert isinstance(ec_key, ec.EllipticCurvePublicKey)
    assert ec_key.curve.name == "secp256r1"
    assert isinstance(weak_key, rsa.RSAPublicKey)
    assert weak_key.key_size == 1024


def test_wrong_usage_leaf_can_only_encipher(pki):
    """key_usage="encipher" gives keyEncipherment and no signing bits."""
    usage = ext(pki.wrong_usage.cert, x509.KeyUsage).value
    assert usage.key_encipherment
    assert not usage.digital_signature
    assert not usage.content_commitment


def test_unknown_key_type_and_usage_are_refused(pki):
    """Typos in key_type, key_usage or signature_hash raise ValueError instead of issuing something else."""
    with pytest.raises(ValueError, match="key_type"):
        devpki.make_leaf(pki.ca, "x", key_type="dsa", **WINDOW)
    with pytest.raises(ValueError, match="key_usage"):
        devpki.make_leaf(pki.ca, "x", public_key=pki.agency_rsa.cert.public_key(), key_usage="sign", **WINDOW)
    with pytest.raises(ValueError, match="signature_hash"):
        devpki.make_leaf(pki.ca, "x", public_key=pki.agency_rsa.cert.public_key(), signature_hash="md5", **WINDOW)


def test_leaf_for_an_existing_public_key_has_no_private_key(pki):
    """With public_key= the certificate is for that key and Issued.key is None; key_pem() then refuses."""
    public = pki.agency_ec.cert.public_key()
    issued = devpki.make_leaf(pki.ca, "HSM-held", public_key=public, **WINDOW)
    assert issued.key is None
    assert issued.cert.public_key() == public
    with pytest.raises(ValueError, match="HSM"):
        issued.key_pem()


def test_key_pem_round_trips_to_the_certificate_key(pki):
    """key_pem() is an unencrypted PKCS#8 key matching the certificate."""
    key = serialization.load_pem_private_key(pki.agency_rsa.key_pem(), password=None)
    assert key.public_key() == pki.agency_rsa.cert.public_key()
    assert x509.load_pem_x509_certificate(pki.agency_rsa.cert_pem()) == pki.agency_rsa.cert


def test_urls_become_aia_and_crl_distribution_points(pki):
    """ocsp_url and crl_url appear as AIA OCSP and CRL distribution point URIs."""
    leaf = devpki.make_leaf(
        pki.ca,
        "With URLs",
        public_key=pki.agency_rsa.cert.public_key(),
        ocsp_url="http://127.0.0.1:1/ocsp",
        crl_url="http://127.0.0.1:1/ca.crl",
        **WINDOW,
    )
    aia = ext(leaf.cert, x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, "http://127.0.0.1:1/ocsp")
    ]
    points = ext(leaf.cert, x509.CRLDistributionPoints).value
    assert points[0].full_name[0].value == "http://127.0.0.1:1/ca.crl"


def test_tsa_has_critical_time_stamping_usage(pki):
    """The TSA certificate's extended key usage is timeStamping only, and critical (RFC 3161, 2.3)."""
    eku = ext(pki.tsa.cert, x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_ocsp_signer_has_ocsp_signing_usage_and_no_check(pki):
    """The delegated OCSP responder has EKU OCSPSigning and id-pkix-ocsp-nocheck."""
    assert ExtendedKeyUsageOID.OCSP_SIGNING in ext(pki.ocsp_signer.cert, x509.ExtendedKeyUsage).value
    assert ext(pki.ocsp_signer.cert, x509.OCSPNoCheck)


def test_crl_lists_revoked_serials_and_is_signed_by_the_ca(pki):
    """make_crl lists each (serial, time) and its signature verifies with the issuer's key."""
    crl = pki.crl
    assert crl.is_signature_valid(pki.ca.cert.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(pki.revoked.cert.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc.year == 2026
    assert crl.get_revoked_certificate_by_serial_number(pki.agency_rsa.cert.serial_number) is None
    assert crl.last_update_utc < FIXED_NOW < crl.next_update_utc


def test_sha1_signed_leaf_is_signed_with_sha1_and_verifies(pki):
    """signature_hash="sha1" yields a genuine SHA-1 signature by the CA (for weak-crypto tests)."""
    cert = pki.sha1_signed.cert
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA1)
    ca_key = pki.ca.cert.public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey)
    ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - checking a SHA-1 signature


def test_spki_sha256_is_the_digest_of_the_der_public_key(pki):
    """spki_sha256 is the hex SHA-256 of the DER SubjectPublicKeyInfo."""
    der = pki.agency_rsa.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert devpki.spki_sha256(pki.agency_rsa.cert) == hashlib.sha256(der).hexdigest()
    assert devpki.spki_sha256(pki.agency_rsa.cert) != devpki.spki_sha256(pki.agency_ec.cert)


@settings(max_examples=25, deadline=None)
@given(
    organ_id=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
)
def test_any_organ_id_round_trips_through_the_subject(pki, organ_id):
    """Whatever OrganId text is put in a certificate, organ_id_of reads the same text back."""
    issued = devpki.make_leaf(pki.ca, "Agency", organ_id=organ_id, public_key=pki.agency_ec.cert.public_key(), **WINDOW)
    assert devpki.organ_id_of(issued.cert) == organ_id


@pytest.mark.servers
def test_openssl_accepts_the_agency_chain(pki_dir):
    """OpenSSL verifies an agency leaf against root.pem with ca.pem as intermediate, at FIXED_NOW."""
    openssl = require_tool("openssl")
    result = subprocess.run(
        [
            openssl,
            "verify",
            "-attime",
            str(int(FIXED_NOW.timestamp())),
            "-purpose",
            "any",
            "-CAfile",
            str(pki_dir / "root.pem"),
            "-untrusted",
            str(pki_dir / "ca.pem"),
            str(pki_dir / "agency-rsa.pem"),
            str(pki_dir / "agency-ec.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": OK") == 2


@pytest.mark.servers
def test_openssl_rejects_the_untrusted_leaf(pki_dir):
    """OpenSSL, like our validator, finds no path from the untrusted leaf to root.pem."""
    openssl = require_tool("openssl")
    result = subprocess.run(
        [
            openssl,
            "verify",
            "-attime",
            str(int(FIXED_NOW.timestamp())),
            "-CAfile",
            str(pki_dir / "root.pem"),
            "-untrusted",
            str(pki_dir / "untrusted-root.pem"),
            str(pki_dir / "untrusted-leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


def test_pki_dir_holds_the_documented_files(pki_dir):
    """pki_dir writes the certificate, key, chain and CRL files its docstring lists."""
    for name in (
        "root.pem",
        "ca.pem",
        "ca.key",
        "chain.pem",
        "agency-rsa.pem",
        "agency-rsa.key",
        "agency-ec.pem",
        "agency-ec.key",
        "revoked.pem",
        "crl.pem",
        "crl.der",
        "root-crl.pem",
        "untrusted-root.pem",
        "untrusted-leaf.pem",
        "tsa.pem",
        "ocsp-signer.pem",
    ):
        assert (pki_dir / name).is_file(), name
    crl = x509.load_pem_x509_crl((pki_dir / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(
        x509.load_pem_x509_certificate((pki_dir / "revoked.pem").read_bytes()).serial_number
    )
