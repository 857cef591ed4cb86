"""Which OrganId a signing certificate names, read from its subject (pure: a certificate in, text out).

An agency certificate may name the agency it speaks for: in the X.520 ``organizationIdentifier`` attribute
(OID 2.5.4.97, made for organisation identifiers; the demo and test PKIs put it there), or else in an
``organizationalUnitName`` (OU) that has an OrganId's shape. The hub's directory decides which key may sign for
which OrganId; a certificate that names an OrganId must name the one the document claims too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.x509.oid import NameOID

from schemas._checks import organ_id_problem

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["ORGAN_ID_OID", "certificate_organ_id"]

#: Where an agency certificate carries its OrganId: X.520 organizationIdentifier.
ORGAN_ID_OID = NameOID.ORGANIZATION_IDENTIFIER


def certificate_organ_id(cert: x509.Certificate) -> str | None:
    """The OrganId ``cert``'s subject names, or None when it names none.

    The first organizationIdentifier, as written; else the first OU that is an OrganId with at least one dot
    (``000.00.00.G22``, ``H41.01``): a bare word such as ``IT`` is a department, not an agency.
    """
    subject = cert.subject
    identifiers = subject.get_attributes_for_oid(ORGAN_ID_OID)
    if identifiers:
        return _text(identifiers[0].value)
    for attribute in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME):
        unit = _text(attribute.value)
        if "." in unit and organ_id_problem(unit) is None:
            return unit
    return None


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()
