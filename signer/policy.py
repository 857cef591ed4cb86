"""The trust policy: everything verification may rely on, frozen and passed explicitly."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography import x509

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_DIGEST_ALGORITHMS",
    "DEFAULT_SIGNATURE_ALGORITHMS",
    "OcspFetcher",
    "RevocationPolicy",
    "TrustPolicy",
]

# XMLDSig algorithm URIs accepted for TOTAL_PASSED. SHA-1 and MD5 are never here (see signer.legacy).
DEFAULT_SIGNATURE_ALGORITHMS: frozenset[str] = frozenset(
    {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    }
)
DEFAULT_DIGEST_ALGORITHMS: frozenset[str] = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
#: Revocation answers and validated chains are reused this long: an hour bounds how stale a "good" can be
#: while keeping the per-document cost near one public-key operation.
DEFAULT_CACHE_TTL = timedelta(hours=1)

#: ``fetch(url, der_request) -> der_response``; the signer stays free of I/O, the caller owns the socket.
OcspFetcher = Callable[[str, bytes], bytes]


class RevocationPolicy(enum.StrEnum):
    """What to do when revocation data is missing (a revoked certificate always fails)."""

    #: Every non-anchor certificate needs a current CRL or OCSP answer, else INDETERMINATE / TRY_LATER.
    REQUIRE = "require"
    #: Use what is available; missing data is a warning, not a failure.
    IF_AVAILABLE = "if-available"
    #: Do not check revocation at all (an explicit operator choice, reported as a warning).
    NONE = "none"


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Anchors, intermediates, revocation sources and rules, algorithms and OrganId pins.

    Only ``anchors`` are trusted; nothing from the OS store or certifi is ever consulted.
    ``pins`` maps a From/OrganId to the SHA-256 (hex) of the SubjectPublicKeyInfo of each certificate allowed
    to sign for it; ``None`` means "no directory" and is reported as a warning on every report.
    """

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    revocation: RevocationPolicy = RevocationPolicy.REQUIRE
    ocsp: OcspFetcher | None = None
    signature_algorithms: frozenset[str] = DEFAULT_SIGNATURE_ALGORITHMS
    digest_algorithms: frozenset[str] = DEFAULT_DIGEST_ALGORITHMS
    pins: Mapping[str, frozenset[str]] | None = None
    cache_ttl: timedelta = field(default=DEFAULT_CACHE_TTL)
