"""A throwaway PKI for tests and the demo: roots, CAs, agency leaves, a TSA, an OCSP signer and CRLs.

Pure: objects in, objects out, no disk or network. Nothing here is meant for production keys.

Subjects look like ``C=VN, O=<issuer's organisation>, CN=<common name>``; an agency leaf also carries its
OrganId (e.g. ``000.00.00.G22``) in the ``organizationIdentifier`` attribute (OID 2.5.4.97, the X.520
attribute made for organisation identifiers), read back with :func:`organ_id_of` (``signer.organ``'s reader).

Certificates carry the extensions real ones do: BasicConstraints (critical), KeyUsage (critical), SKI/AKI,
and, when asked, AIA with an OCSP URL and a CRL distribution point.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from signer.organ import ORGAN_ID_OID
from signer.organ import certificate_organ_id as organ_id_of

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = [
    "ORGAN_ID_OID",
    "Issued",
    "PrivateKey",
    "PublicKey",
    "make_ca",
    "make_crl",
    "make_leaf",
    "make_ocsp_signer",
    "make_root",
    "make_tsa",
    "organ_id_of",
    "spki_sha256",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_ORGANISATION = "lienthong test PKI"
_KEY_TYPES = ("rsa", "ec", "rsa1024")


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key (``None`` when the key lives in an HSM) and its issuers.

    ``chain`` lists the issuers nearest first, root last (the root included); a root's chain is empty.
    """

    cert: x509.Certificate
    key: PrivateKey | None
    chain: tuple[x509.Certificate, ...]

    def cert_pem(self) -> bytes:
        """Return the certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM (test keys only)."""
        if self.key is None:
            raise ValueError(f"no private key for {self.cert.subject.rfc4514_string()} (it lives in an HSM)")
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def chain_pem(self) -> bytes:
        """Return the issuers as concatenated PEM, nearest first, root last."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


def spki_sha256(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate's DER SubjectPublicKeyInfo: the pin the agency directory lists."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def make_root(
    common_name: str, *, key_type: str = "rsa", not_before: datetime, not_after: datetime
) -> Issued:
    """Make a self-signed root CA (no path length limit)."""
    key = _new_key(key_type)
    name = _name(common_name)
    builder = _base(name, name, key.public_key(), not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    )
    return Issued(cert=builder.sign(key, _hash_for(key)), key=key, chain=())


def make_ca(
    issuer: Issued,
    common_name: str,
    *,
    key_type: str = "rsa",
    not_before: datetime,
    not_after: datetime,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
) -> Issued:
    """Make an intermediate (issuing) CA signed by ``issuer``; the URLs say where its own status is found."""
    key = _new_key(key_type)
    builder = _base(_name(common_name), issuer.cert.subject, key.public_key(), not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    builder = _issuer_extensions(builder, issuer, ocsp_url, crl_url)
    return _issue(builder, issuer, key)


def make_leaf(
    issuer: Issued,
    common_name: str,
    *,
    organ_id: str | None = None,
    key_type: str = "rsa",
    public_key: PublicKey | None = None,
    not_before: datetime,
    not_after: datetime,
    key_usage: str = "signing",
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    signature_hash: str = "sha256",
) -> Issued:
    """Make an end-entity certificate for an agency's signing key.

    ``key_type``: "rsa" (RSA-2048), "ec" (P-256) or "rsa1024" (only for weak-key tests). With ``public_key``
    the certificate is issued for an existing key (e.g. one inside an HSM) and ``Issued.key`` is None.
    ``key_usage``: "signing" (digitalSignature + nonRepudiation) or "encipher" (keyEncipherment only, for the
    wrong-key-usage test). ``signature_hash="sha1"`` makes a SHA-1-signed certificate for weak-crypto tests.
    """
    key: PrivateKey | None = None
    if public_key is None:
        key = _new_key(key_type)
        public_key = key.public_key()
    subject = _name(common_name, organ_id=organ_id)
    builder = _base(subject, issuer.cert.subject, public_key, not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if key_usage == "signing":
        usage = _key_usage(digital_signature=True, content_commitment=True)
    elif key_usage == "encipher":
        usage = _key_usage(key_encipherment=True)
    else:
        raise ValueError(f"key_usage must be 'signing' or 'encipher', not {key_usage!r}")
    builder = builder.add_extension(usage, critical=True)
    builder = _issuer_extensions(builder, issuer, ocsp_url, crl_url)
    issued = _issue(builder, issuer, key)
    if signature_hash == "sha256":
        return issued
    if signature_hash == "sha1":
        return Issued(cert=_resign_sha1(issued.cert, issuer), key=key, chain=issued.chain)
    raise ValueError(f"signature_hash must be 'sha256' or 'sha1', not {signature_hash!r}")


def make_tsa(issuer: Issued, common_name: str, *, not_before: datetime, not_after: datetime) -> Issued:
    """Make a time-stamping authority certificate: EKU timeStamping, critical as RFC 3161 asks."""
    key = _new_key("rsa")
    builder = _base(_name(common_name), issuer.cert.subject, key.public_key(), not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    usage = _key_usage(digital_signature=True, content_commitment=True)
    builder = builder.add_extension(usage, critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    builder = _issuer_extensions(builder, issuer, None, None)
    return _issue(builder, issuer, key)


def make_ocsp_signer(
    issuer: Issued, common_name: str, *, not_before: datetime, not_after: datetime
) -> Issued:
    """Make a delegated OCSP responder certificate: EKU OCSPSigning and id-pkix-ocsp-nocheck."""
    key = _new_key("rsa")
    builder = _base(_name(common_name), issuer.cert.subject, key.public_key(), not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(_key_usage(digital_signature=True), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    builder = _issuer_extensions(builder, issuer, None, None)
    return _issue(builder, issuer, key)


def make_crl(
    issuer: Issued,
    revoked: Sequence[tuple[int, datetime]],
    *,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    """Make a CRL signed by ``issuer`` listing ``(serial, revocation time)`` pairs."""
    key = _require_key(issuer)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(int(this_update.timestamp())), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial, when in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(key, _hash_for(key))


# --- private helpers ---------------------------------------------------------------------------------------


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - weak on purpose, for the weak-key tests
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key_type must be one of {_KEY_TYPES}, not {key_type!r}")


def _hash_for(_key: PrivateKey) -> hashes.SHA256:
    return hashes.SHA256()


def _name(common_name: str, *, organ_id: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANISATION),
    ]
    if organ_id is not None:
        attrs.append(x509.NameAttribute(ORGAN_ID_OID, organ_id))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _base(
    subject: x509.Name, issuer: x509.Name, public_key: PublicKey, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_key_usage() -> x509.KeyUsage:
    # digitalSignature too, so that a CA may sign its own OCSP responses.
    return _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True)


def _issuer_extensions(
    builder: x509.CertificateBuilder, issuer: Issued, ocsp_url: str | None, crl_url: str | None
) -> x509.CertificateBuilder:
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(_issuer_public_key(issuer)), critical=False
    )
    if ocsp_url is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            ),
            critical=False,
        )
    if crl_url is not None:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            critical=False,
        )
    return builder


def _issuer_public_key(issuer: Issued) -> PublicKey:
    key = issuer.cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise TypeError(f"unsupported issuer key type {type(key).__name__}")
    return key


def _require_key(issuer: Issued) -> PrivateKey:
    if issuer.key is None:
        raise ValueError(f"{issuer.cert.subject.rfc4514_string()} has no private key to sign with")
    return issuer.key


def _issue(builder: x509.CertificateBuilder, issuer: Issued, key: PrivateKey | None) -> Issued:
    signing_key = _require_key(issuer)
    cert = builder.sign(signing_key, _hash_for(signing_key))
    return Issued(cert=cert, key=key, chain=(issuer.cert, *issuer.chain))


def _resign_sha1(cert: x509.Certificate, issuer: Issued) -> x509.Certificate:
    # cryptography refuses to build SHA-1 certificates, so rewrite the algorithm and re-sign the TBS by hand.
    signing_key = _require_key(issuer)
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    if isinstance(signing_key, rsa.RSAPrivateKey):
        algorithm = {"algorithm": "sha1_rsa"}
        tbs = parsed["tbs_certificate"]
        tbs["signature"] = algorithm
        tbs_der = tbs.dump(force=True)
        signature = signing_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the point
    else:
        algorithm = {"algorithm": "sha1_ecdsa"}
        tbs = parsed["tbs_certificate"]
        tbs["signature"] = algorithm
        tbs_der = tbs.dump(force=True)
        signature = signing_key.sign(tbs_der, ec.ECDSA(hashes.SHA1()))  # noqa: S303 - the point
    rebuilt = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    )
    return x509.load_der_x509_certificate(rebuilt.dump())
