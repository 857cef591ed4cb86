"""Signing helpers shared by the signer tests: unsigned documents, keys and the test trust policy."""

from __future__ import annotations

import pytest

from schemas import build_document
from schemas.examples import example_edoc
from signer import devpki
from signer.keys import PemKey
from signer.policy import RevocationPolicy, TrustPolicy
from signer.sign import sign_document
from signer.verify import Verifier
from tests.support.pki_fixtures import FIXED_NOW, TestPki


def unsigned(sender: str = "000.00.00.G22", *, attachment_bytes: int = 0) -> bytes:
    """A valid unsigned edXML document from ``sender``."""
    return build_document(example_edoc(sender=sender, attachment_bytes=attachment_bytes))


def key_of(issued: devpki.Issued) -> PemKey:
    """A PemKey for a devpki certificate."""
    assert issued.key is not None
    return PemKey(issued.key, issued.cert)


def organ_of(issued: devpki.Issued) -> str:
    """The OrganId in a devpki certificate."""
    organ = devpki.organ_id_of(issued.cert)
    assert organ is not None
    return organ


def signed_by(issued: devpki.Issued, *, attachment_bytes: int = 0) -> bytes:
    """A document from the certificate's own OrganId, signed with its key and chain."""
    return sign_document(
        unsigned(organ_of(issued), attachment_bytes=attachment_bytes), key_of(issued), chain=issued.chain
    )


def policy_for(pki: TestPki, *, pins: bool = True, **kwargs: object) -> TrustPolicy:
    """The test policy: the test root, both CRLs, revocation required, every agency leaf pinned."""
    pin_map = None
    if pins:
        pin_map = {}
        for issued in pki.named().values():
            organ = devpki.organ_id_of(issued.cert)
            if organ is not None and issued.cert.issuer == pki.ca.cert.subject:
                pin_map[organ] = frozenset({devpki.spki_sha256(issued.cert)})
    args: dict[str, object] = {
        "anchors": (pki.root.cert,),
        "crls": (pki.crl, pki.root_crl),
        "revocation": RevocationPolicy.REQUIRE,
        "pins": pin_map,
        **kwargs,
    }
    return TrustPolicy(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def verifier(pki: TestPki) -> Verifier:
    """One Verifier for the module (its caches are part of what is tested)."""
    return Verifier(policy_for(pki), clock=lambda: FIXED_NOW)
