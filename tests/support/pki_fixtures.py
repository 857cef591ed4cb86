"""The test PKI as pytest fixtures: ``pki`` (objects) and ``pki_dir`` (the same as PEM files).

Every certificate is valid 2025-01-01..2030-01-01 unless its name says otherwise; tests validate at
``FIXED_NOW`` (2026-06-01T00:00:00Z), passing ``at=FIXED_NOW``, so that no outcome depends on the wall clock.

Files written by ``pki_dir`` (``<name>.pem`` = certificate, ``<name>.key`` = PKCS#8 private key):

============================  ===========================================================================
``root.pem``                  the trust anchor (RSA, self-signed)
``ca.pem`` / ``ca.key``       the issuing CA (signed by root)
``chain.pem``                 ca.pem + root.pem (issuers of every agency leaf, nearest first)
``agency-rsa.*``              RSA-2048 leaf, OrganId 000.00.00.G22
``agency-ec.*``               P-256 leaf, OrganId 000.00.00.H41
``expired.*``                 leaf valid 2020-01-01..2021-01-01
``not-yet-valid.*``           leaf valid 2027-01-01..2030-01-01
``wrong-usage.*``             leaf with keyEncipherment only
``revoked.*``                 leaf revoked on 2026-01-01 (listed in crl.pem)
``revoked-later.*``           leaf revoked on 2027-01-01, after FIXED_NOW (listed in crl.pem)
``weak-rsa1024.*``            RSA-1024 leaf
``sha1-signed.*``             leaf whose certificate is signed with SHA-1
``untrusted-root.pem``        a root nobody trusts; ``untrusted-leaf.*`` is issued by it
``tsa.*``                     time-stamping authority (EKU timeStamping), issued by ca
``ocsp-signer.*``             delegated OCSP responder (EKU OCSPSigning), issued by ca
``crl.pem`` / ``crl.der``     CRL of ca: thisUpdate FIXED_NOW - 1 day, nextUpdate FIXED_NOW + 30 days
``root-crl.pem``              empty CRL of root (so that ca itself has revocation data)
============================  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization

from signer import devpki

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography import x509

__all__ = [
    "AGENCY_EC_ORGAN_ID",
    "AGENCY_RSA_ORGAN_ID",
    "FIXED_NOW",
    "NOT_AFTER",
    "NOT_BEFORE",
    "REVOKED_AT",
    "REVOKED_LATER_AT",
    "TestPki",
    "build_test_pki",
    "pki",
    "pki_dir",
]

NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2030, 1, 1, tzinfo=UTC)
FIXED_NOW = datetime(2026, 6, 1, tzinfo=UTC)
REVOKED_AT = datetime(2026, 1, 1, tzinfo=UTC)
REVOKED_LATER_AT = datetime(2027, 1, 1, tzinfo=UTC)

AGENCY_RSA_ORGAN_ID = "000.00.00.G22"
AGENCY_EC_ORGAN_ID = "000.00.00.H41"


@dataclass(frozen=True)
class TestPki:
    """Every certificate the tests need, with keys; see the module docstring for what each one is."""

    __test__ = False  # not a test class, whatever its name says

    root: devpki.Issued
    ca: devpki.Issued
    agency_rsa: devpki.Issued
    agency_ec: devpki.Issued
    expired: devpki.Issued
    not_yet_valid: devpki.Issued
    wrong_usage: devpki.Issued
    revoked: devpki.Issued
    revoked_later: devpki.Issued
    weak_rsa1024: devpki.Issued
    sha1_signed: devpki.Issued
    untrusted_root: devpki.Issued
    untrusted_leaf: devpki.Issued
    tsa: devpki.Issued
    ocsp_signer: devpki.Issued
    crl: x509.CertificateRevocationList
    root_crl: x509.CertificateRevocationList

    def named(self) -> dict[str, devpki.Issued]:
        """Return the issued certificates by their file name in ``pki_dir``."""
        return {
            "root": self.root,
            "ca": self.ca,
            "agency-rsa": self.agency_rsa,
            "agency-ec": self.agency_ec,
            "expired": self.expired,
            "not-yet-valid": self.not_yet_valid,
            "wrong-usage": self.wrong_usage,
            "revoked": self.revoked,
            "revoked-later": self.revoked_later,
            "weak-rsa1024": self.weak_rsa1024,
            "sha1-signed": self.sha1_signed,
            "untrusted-root": self.untrusted_root,
            "untrusted-leaf": self.untrusted_leaf,
            "tsa": self.tsa,
            "ocsp-signer": self.ocsp_signer,
        }


def build_test_pki() -> TestPki:
    """Build the whole test PKI (a second or so: RSA key generation dominates)."""
    window = {"not_before": NOT_BEFORE, "not_after": NOT_AFTER}
    root = devpki.make_root("lienthong Test Root CA", **window)
    ca = devpki.make_ca(root, "lienthong Test Issuing CA", **window)

    def leaf(name: str, **kwargs: object) -> devpki.Issued:
        args: dict[str, object] = {**window, **kwargs}
        return devpki.make_leaf(ca, name, **args)  # type: ignore[arg-type]

    revoked = leaf("Revoked Agency", organ_id="000.00.00.R01")
    revoked_later = leaf("Revoked Later Agency", organ_id="000.00.00.R02")
    untrusted_root = devpki.make_root("Untrusted Root CA", **window)
    return TestPki(
        root=root,
        ca=ca,
        agency_rsa=leaf("Van phong Bo A", organ_id=AGENCY_RSA_ORGAN_ID),
        agency_ec=leaf("So B", organ_id=AGENCY_EC_ORGAN_ID, key_type="ec"),
        expired=devpki.make_leaf(
            ca,
            "Expired Agency",
            organ_id="000.00.00.E01",
            not_before=datetime(2020, 1, 1, tzinfo=UTC),
            not_after=datetime(2021, 1, 1, tzinfo=UTC),
        ),
        not_yet_valid=devpki.make_leaf(
            ca,
            "Future Agency",
            organ_id="000.00.00.F01",
            not_before=datetime(2027, 1, 1, tzinfo=UTC),
            not_after=NOT_AFTER,
        ),
        wrong_usage=leaf("Encipher Only Agency", organ_id="000.00.00.W01", key_usage="encipher"),
        revoked=revoked,
        revoked_later=revoked_later,
        weak_rsa1024=leaf("Weak Key Agency", organ_id="000.00.00.K01", key_type="rsa1024"),
        sha1_signed=leaf("SHA1 Agency", organ_id="000.00.00.S01", signature_hash="sha1"),
        untrusted_root=untrusted_root,
        untrusted_leaf=devpki.make_leaf(untrusted_root, "Impostor Agency", organ_id=AGENCY_RSA_ORGAN_ID, **window),
        tsa=devpki.make_tsa(ca, "lienthong Test TSA", **window),
        ocsp_signer=devpki.make_ocsp_signer(ca, "lienthong Test OCSP Responder", **window),
        crl=devpki.make_crl(
            ca,
            [(revoked.cert.serial_number, REVOKED_AT), (revoked_later.cert.serial_number, REVOKED_LATER_AT)],
            this_update=FIXED_NOW - timedelta(days=1),
            next_update=FIXED_NOW + timedelta(days=30),
        ),
        root_crl=devpki.make_crl(
            root, [], this_update=FIXED_NOW - timedelta(days=1), next_update=FIXED_NOW + timedelta(days=30)
        ),
    )


@pytest.fixture(scope="session")
def pki() -> TestPki:
    """Build the test PKI once per session."""
    return build_test_pki()


@pytest.fixture(scope="session")
def pki_dir(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write every certificate, key and CRL of ``pki`` into a directory (names in the module docstring)."""
    directory = tmp_path_factory.mktemp("pki")
    for name, issued in pki.named().items():
        (directory / f"{name}.pem").write_bytes(issued.cert_pem())
        if issued.key is not None:
            (directory / f"{name}.key").write_bytes(issued.key_pem())
    (directory / "chain.pem").write_bytes(pki.agency_rsa.chain_pem())
    (directory / "crl.pem").write_bytes(pki.crl.public_bytes(serialization.Encoding.PEM))
    (directory / "crl.der").write_bytes(pki.crl.public_bytes(serialization.Encoding.DER))
    (directory / "root-crl.pem").write_bytes(pki.root_crl.public_bytes(serialization.Encoding.PEM))
    return directory
