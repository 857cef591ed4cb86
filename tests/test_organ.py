"""Which OrganId a signing certificate names (signer.organ): organizationIdentifier first, else an OrganId-shaped OU."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signer import devpki
from signer.organ import ORGAN_ID_OID, certificate_organ_id

_KEY = ec.generate_private_key(ec.SECP256R1())
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def certificate(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Certificate:
    """A self-signed certificate whose subject is CN=Test plus ``attributes``."""
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Test"), *(x509.NameAttribute(o, v) for o, v in attributes)]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(_NOW)
        .not_valid_after(_NOW + timedelta(days=1))
        .sign(_KEY, hashes.SHA256())
    )


def test_organization_identifier_is_read_as_written() -> None:
    """The organizationIdentifier (2.5.4.97) is the OrganId, whatever its text."""
    assert certificate_organ_id(certificate((ORGAN_ID_OID, "000.00.00.G22"))) == "000.00.00.G22"
    assert certificate_organ_id(certificate((ORGAN_ID_OID, "G22.01-x"))) == "G22.01-x"


def test_organization_identifier_wins_over_the_ou() -> None:
    """With both, the organizationIdentifier is the one the certificate names."""
    cert = certificate((NameOID.ORGANIZATIONAL_UNIT_NAME, "000.01.00.H41"), (ORGAN_ID_OID, "000.00.00.H41"))
    assert certificate_organ_id(cert) == "000.00.00.H41"


@pytest.mark.parametrize("unit", ["000.01.00.H41", "H41.01"])
def test_an_organ_id_shaped_ou_is_the_organ_id(unit: str) -> None:
    """Without organizationIdentifier, an OU with an OrganId's dotted shape names the agency."""
    assert certificate_organ_id(certificate((NameOID.ORGANIZATIONAL_UNIT_NAME, unit))) == unit


def test_the_first_organ_id_shaped_ou_counts() -> None:
    """A department OU before the agency's OrganId OU is skipped."""
    cert = certificate(
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Văn phòng"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "000.02.00.H41")
    )
    assert certificate_organ_id(cert) == "000.02.00.H41"


@pytest.mark.parametrize("unit", ["IT", "Phòng Hành chính", "123.45.67.ABC"])
def test_a_department_ou_names_no_organ_id(unit: str) -> None:
    """An OU that is a word, a Vietnamese department name or a malformed legacy code names no agency."""
    assert certificate_organ_id(certificate((NameOID.ORGANIZATIONAL_UNIT_NAME, unit))) is None


def test_no_attribute_names_no_organ_id() -> None:
    """A subject with neither attribute names no OrganId (the directory's pin alone decides)."""
    assert certificate_organ_id(certificate()) is None


def test_devpki_reads_organ_ids_with_the_same_function() -> None:
    """The test PKI's reader is signer.organ's, so tests and the hub agree on what a certificate names."""
    assert devpki.organ_id_of is certificate_organ_id
