"""Signed tree heads, the hub's seal (signing, verifying, its identity) and RFC 3161 time-stamps of heads."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from signer.keys import PemKey, SigningKey
from signer.path import PathValidator
from signer.policy import RevocationPolicy, TrustPolicy
from signer.timestamp import TimestampError, TimestampToken, verify_token
from storage.ledger._events import LedgerError, SealError, is_hex64
from storage.ledger._events import canonical_json as _canonical_json
from storage.ledger._events import format_time as _format_time
from storage.ledger._events import parse_time as _parse_time

#: Tolerated disagreement between the hub's clock and a TSA's when ordering a head and its time-stamp.
DEFAULT_TIME_SKEW = timedelta(minutes=5)
#: The seal certificate is what auditors pin; a long life keeps old heads checkable without re-pinning.
DEFAULT_SEAL_VALIDITY = timedelta(days=20 * 366)
SEAL_KEY_FILE = "hub-key.pem"
SEAL_CERT_FILE = "hub-cert.pem"

_STH_CONTEXT = b"lienthong-sth-v1\n"
_STH_FORMAT = "lienthong-sth-v1"

# XMLDSig signature methods a seal key may use (what ``SigningKey.algorithm`` returns).
_SIGNATURE_METHODS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512),
}

#: ``tsa(data) -> DER time-stamp token`` over SHA-256 of ``data`` (e.g. ``adapters.http_clients.request_timestamp``
#: wrapped to return ``.token_der``): storage stays free of HTTP, the caller owns the socket.
TimestampAuthority = Callable[[bytes], bytes]


# --- tree heads ---------------------------------------------------------------------------------------------


def tree_head_signed_bytes(size: int, root: bytes, time: datetime) -> bytes:
    """What a tree head's signature covers: a context line, then canonical JSON of size, root and time."""
    return _STH_CONTEXT + _canonical_json({"root": root.hex(), "size": size, "time": _format_time(time)})


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """The hub's signed statement "the log had ``size`` leaves with this ``root`` at ``time``".

    ``certificates``: the seal certificate first, then its issuers (DER). ``algorithm``: the XMLDSig signature
    method URI of ``signature``. ``timestamp``: an RFC 3161 token (DER) over SHA-256 of ``signature``, or None.
    """

    size: int
    root: bytes
    time: datetime
    algorithm: str
    signature: bytes
    certificates: tuple[bytes, ...]
    timestamp: bytes | None = None

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return tree_head_signed_bytes(self.size, self.root, self.time)

    @property
    def certificate(self) -> x509.Certificate:
        """The seal certificate that signed this head."""
        return x509.load_der_x509_certificate(self.certificates[0])

    def to_json(self) -> dict[str, Any]:
        """The stored JSON shape (binary fields in base64, the root in hex)."""
        return {
            "format": _STH_FORMAT,
            "size": self.size,
            "root": self.root.hex(),
            "time": _format_time(self.time),
            "algorithm": self.algorithm,
            "signature": base64.b64encode(self.signature).decode(),
            "certificates": [base64.b64encode(c).decode() for c in self.certificates],
            "timestamp": base64.b64encode(self.timestamp).decode() if self.timestamp is not None else None,
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON of ``to_json``."""
        return _canonical_json(self.to_json())

    @classmethod
    def from_json(cls, obj: object) -> SignedTreeHead:
        """Parse the stored JSON shape; ``LedgerError`` naming the field when it is malformed."""
        if not isinstance(obj, dict):
            raise LedgerError("a tree head must be a JSON object")
        expected = {"format", "size", "root", "time", "algorithm", "signature", "certificates", "timestamp"}
        if set(obj) != expected:
            raise LedgerError(f"tree head fields must be exactly {sorted(expected)}, got {sorted(obj)}")
        if obj["format"] != _STH_FORMAT:
            raise LedgerError(f"unsupported tree head format {obj['format']!r}")
        size = obj["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise LedgerError("tree head size must be a non-negative integer")
        root = obj["root"]
        if not isinstance(root, str) or not is_hex64(root):
            raise LedgerError("tree head root must be 64 lowercase hex digits")
        if not isinstance(obj["algorithm"], str):
            raise LedgerError("tree head algorithm must be a string")
        certificates = obj["certificates"]
        if not isinstance(certificates, list) or not certificates:
            raise LedgerError("a tree head needs the seal certificate")
        timestamp = obj["timestamp"]
        return cls(
            size=size,
            root=bytes.fromhex(root),
            time=_parse_time(obj["time"], "tree head time"),
            algorithm=obj["algorithm"],
            signature=_b64(obj["signature"], "tree head signature"),
            certificates=tuple(_b64(c, "tree head certificate") for c in certificates),
            timestamp=None if timestamp is None else _b64(timestamp, "tree head timestamp"),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedTreeHead:
        """Parse stored tree head bytes (which must be canonical)."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise LedgerError(f"not a JSON tree head: {exc}") from exc
        head = cls.from_json(obj)
        if head.to_bytes() != data:
            raise LedgerError("the tree head is not in canonical form")
        return head


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise LedgerError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LedgerError(f"{what} is not valid base64") from exc


def _chain_of(key: SigningKey) -> tuple[bytes, ...]:
    chain: Iterable[x509.Certificate] = getattr(key, "chain", ())
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in (key.certificate, *chain))


def sign_head(key: SigningKey, size: int, root: bytes, at: datetime, tsa: TimestampAuthority | None) -> SignedTreeHead:
    signature = key.sign(tree_head_signed_bytes(size, root, at))
    token = tsa(signature) if tsa is not None else None
    return SignedTreeHead(size, root, at.astimezone(UTC), key.algorithm, signature, _chain_of(key), token)


# --- seal verification --------------------------------------------------------------------------------------


def _verify_signature(cert: x509.Certificate, algorithm: str, signature: bytes, data: bytes) -> None:
    method = _SIGNATURE_METHODS.get(algorithm)
    if method is None:
        raise SealError(f"signature algorithm {algorithm!r} is not allowed")
    family, hash_class = method
    key = cert.public_key()
    try:
        if family == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_class())
            return
        if family == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                raise SealError("the signature has the wrong length for the seal key")
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_class()))
            return
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise SealError("the signature does not verify with the seal certificate's key") from exc
    raise SealError(f"a {type(key).__name__} cannot make {algorithm} signatures")


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _check_seal_chain(
    certificates: Sequence[bytes], anchors: Sequence[x509.Certificate], at: datetime
) -> x509.Certificate:
    """Return the seal certificate once it chains to ``anchors`` at ``at`` (SealError otherwise).

    A certificate with the same subject and key as an anchor is replaced by the anchor itself, so that its
    validity and extensions are the auditor's copy, not whatever bytes came with the seal.
    """
    if not anchors:
        raise SealError("no trust anchors given for the hub's seal certificate (e.g. --trust DIR/hub-cert.pem)")
    try:
        certs = [x509.load_der_x509_certificate(der) for der in certificates]
    except ValueError as exc:
        raise SealError(f"a seal certificate cannot be parsed: {exc}") from exc
    if not certs:
        raise SealError("no seal certificate")
    leaf = certs[0]
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for anchor in anchors:
        anchor_spki = anchor.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if anchor.subject == leaf.subject and anchor_spki == spki:
            leaf = anchor
            break
    policy = TrustPolicy(anchors=tuple(anchors), intermediates=tuple(certs[1:]), revocation=RevocationPolicy.NONE)
    result = PathValidator(policy).validate(leaf, at=at)
    if not result.passed:
        reason = result.subindication.value if result.subindication else result.indication.value
        raise SealError(
            f"the seal certificate {_describe(leaf)} is not trusted ({reason}): " + "; ".join(result.errors)
        )
    return leaf


def verify_sealed(
    data: bytes,
    *,
    signature: bytes,
    algorithm: str,
    certificates: Sequence[bytes],
    anchors: Sequence[x509.Certificate],
    at: datetime,
) -> x509.Certificate:
    """Check a hub seal signature over ``data``: the certificate chains to ``anchors`` at ``at`` and verifies it.

    Returns the seal certificate; raises ``SealError`` saying what failed.
    """
    cert = _check_seal_chain(certificates, anchors, at)
    _verify_signature(cert, algorithm, signature, data)
    return cert


def verify_tree_head_signature(
    sth: SignedTreeHead, anchors: Sequence[x509.Certificate], *, at: datetime | None = None
) -> x509.Certificate:
    """Check the head's signature and that its certificate chains to ``anchors`` at ``at`` (default: its time)."""
    return verify_sealed(
        sth.signed_bytes(),
        signature=sth.signature,
        algorithm=sth.algorithm,
        certificates=sth.certificates,
        anchors=anchors,
        at=at or sth.time,
    )


def verify_tree_head_timestamp(sth: SignedTreeHead, tsa_anchors: Sequence[x509.Certificate]) -> TimestampToken:
    """Check the head's RFC 3161 token: over SHA-256 of the signature, by a TSA chained to ``tsa_anchors``.

    The token must also not be older than the head's own time (beyond ``DEFAULT_TIME_SKEW``): a head cannot
    have been time-stamped before it was made.
    """
    if sth.timestamp is None:
        raise SealError("the tree head is not time-stamped")
    try:
        token = verify_token(sth.timestamp, digest=hashlib.sha256(sth.signature).digest(), anchors=tsa_anchors)
    except TimestampError as exc:
        raise SealError(f"time-stamp: {exc}") from exc
    if token.gen_time + DEFAULT_TIME_SKEW < sth.time:
        raise SealError(
            f"the time-stamp ({token.gen_time.isoformat()}) is older than the head it stamps ({sth.time.isoformat()})"
        )
    return token


def verify_tree_head(
    sth: SignedTreeHead,
    anchors: Sequence[x509.Certificate],
    *,
    at: datetime | None = None,
    tsa_anchors: Sequence[x509.Certificate] | None = None,
    require_timestamp: bool = False,
) -> TimestampToken | None:
    """Check a tree head's signature and chain, and its time-stamp when present (or required).

    ``tsa_anchors`` defaults to ``anchors``. Returns the verified token (None when there is none); raises
    ``SealError`` naming what failed.
    """
    verify_tree_head_signature(sth, anchors, at=at)
    if sth.timestamp is None and not require_timestamp:
        return None
    return verify_tree_head_timestamp(sth, anchors if tsa_anchors is None else tsa_anchors)


# --- the seal identity --------------------------------------------------------------------------------------


def create_seal_identity(directory: Path, *, now: datetime | None = None) -> PemKey:
    """Load the hub's seal key and certificate from ``directory``, creating them on first use.

    Creates ``hub-key.pem`` and a self-signed ``hub-cert.pem`` (``create_self_signed_identity``). The certificate
    is what auditors trust (``--trust hub-cert.pem``).
    """
    return create_self_signed_identity(
        directory / SEAL_KEY_FILE, directory / SEAL_CERT_FILE, common_name="lienthong hub seal", now=now
    )


def create_self_signed_identity(
    key_path: Path, cert_path: Path, *, common_name: str, now: datetime | None = None
) -> PemKey:
    """Load a key and its self-signed certificate from ``key_path``/``cert_path``, creating them on first use.

    Creates the key (P-256, PKCS#8, mode 0600) and a certificate named ``common_name`` plus a random suffix, valid
    for ``DEFAULT_SEAL_VALIDITY`` from ``now``. Refuses to continue when only one of the two files exists (never
    overwrites a key).
    """
    if key_path.exists() and cert_path.exists():
        return PemKey.load(key_path.read_bytes(), cert_path.read_bytes())
    if key_path.exists() or cert_path.exists():
        raise LedgerError(f"one of {key_path}/{cert_path.name} is missing; restore it from backup")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    when = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} {secrets.token_hex(4)}"),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(when - timedelta(days=1))  # tolerate clocks slightly behind this one
        .not_valid_after(when + DEFAULT_SEAL_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL: two processes starting on one folder must not both write a key; 0600: the key is a secret.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return PemKey(key, cert)
