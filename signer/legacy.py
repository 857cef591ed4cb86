"""Legacy XMLDSig algorithms, quarantined: SHA-1 and MD5.

Public edXML samples still carry rsa-sha1/sha1. The verifier computes them (so that a broken signature is
still reported as broken) but never lets them reach TOTAL_PASSED: a valid legacy signature is INDETERMINATE /
CRYPTO_CONSTRAINTS_FAILURE with an error that says which legacy algorithm was met. Nothing signs with them.
"""

from __future__ import annotations

__all__ = [
    "DSA_SHA1",
    "ECDSA_SHA1",
    "LEGACY_DIGEST_METHODS",
    "LEGACY_SIGNATURE_METHODS",
    "MD5",
    "RSA_MD5",
    "RSA_SHA1",
    "SHA1",
    "legacy_reason",
]

RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
ECDSA_SHA1 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
RSA_MD5 = "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"
DSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#dsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
MD5 = "http://www.w3.org/2001/04/xmldsig-more#md5"

#: Signature methods computed only to tell "broken" from "legacy": URI -> (key family, hash name).
LEGACY_SIGNATURE_METHODS: dict[str, tuple[str, str]] = {
    RSA_SHA1: ("rsa", "sha1"),
    ECDSA_SHA1: ("ec", "sha1"),
    RSA_MD5: ("rsa", "md5"),
}
#: Digest methods computed only to tell "tampered" from "legacy": URI -> hashlib name.
LEGACY_DIGEST_METHODS: dict[str, str] = {SHA1: "sha1", MD5: "md5"}

_NAMES = {"sha1": "SHA-1", "md5": "MD5"}


def legacy_reason(signature_method: str, digest_method: str) -> str | None:
    """Why these algorithms are legacy ("legacy SHA-1 ..."), or None when neither is."""
    hashes = []
    if signature_method in LEGACY_SIGNATURE_METHODS:
        hashes.append((LEGACY_SIGNATURE_METHODS[signature_method][1], "signature method", signature_method))
    if digest_method in LEGACY_DIGEST_METHODS:
        hashes.append((LEGACY_DIGEST_METHODS[digest_method], "digest method", digest_method))
    if not hashes:
        return None
    parts = [f"{what} {uri}" for _, what, uri in hashes]
    worst = "md5" if any(name == "md5" for name, _, _ in hashes) else "sha1"
    return (
        f"legacy {_NAMES[worst]} ({'; '.join(parts)}) is not allowed: collisions are practical, "
        "so the signature cannot be relied on; ask the sender to re-sign with SHA-256"
    )
