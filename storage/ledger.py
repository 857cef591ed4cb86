"""The hub's append-only Merkle ledger: events, segments in object storage, signed and time-stamped tree heads.

Every step of the hub leaves one ``LedgerEvent`` (received, verified, rejected, archived, delivered, status
relayed). Its canonical bytes (sorted-key JSON, no spaces, UTF-8) are one leaf of an RFC 9162 Merkle tree
(``storage.merkle``). Periodically the hub seals the log: a ``SignedTreeHead`` (size, root, time) signed with
the hub's seal key and, when a TSA is configured, RFC 3161 time-stamped (one token for the whole batch).

Persistence (keys under ``ledger/``):

* ``ledger/segments/<first leaf, 12 digits>-<count>.jsonl``: immutable, create-only objects holding one
  canonical event per line. Together they are contiguous from leaf 0; a reader rebuilds the tree from them.
* ``ledger/heads/<size, 12 digits>.json``: one signed tree head per sealed size.

One writer at a time. In the pipeline the writer is the consumer of the one-partition ``lienthong.ledger``
topic: it appends, calls ``flush()`` (or ``seal()``), and only then commits its Kafka offset, so that events
lost with a crashed writer's buffer are consumed again; ``append`` is idempotent for that replay. Readers
(``lienthong audit export``, ``lienthong ledger verify``) open the stored log read-only and never write.
A ``Ledger`` is not thread-safe.

Memory: the tree keeps every leaf and complete-subtree hash (64 bytes per leaf) so that a root or a proof
costs O(log² n) hashes, plus an index from SHA-256 and DocumentId to leaf numbers. Ten million events fit in
about 2 GB; beyond that, start a new log per period (as Certificate Transparency shards by year).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import enum
import hashlib
import json
import os
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from schemas.errors import HubError
from signer.keys import PemKey, SigningKey
from signer.path import PathValidator
from signer.policy import RevocationPolicy, TrustPolicy
from signer.timestamp import TimestampError, TimestampToken, verify_token
from storage import merkle
from storage.objectstore import ObjectExists, ObjectNotFound, ObjectStore, StoreUnavailable

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_SEAL_VALIDITY",
    "DEFAULT_SEGMENT_EVENTS",
    "DEFAULT_TIME_SKEW",
    "HEADS_PREFIX",
    "HUB_ACTOR",
    "SEAL_CERT_FILE",
    "SEAL_KEY_FILE",
    "SEGMENTS_PREFIX",
    "EventKind",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerEvent",
    "LogProblem",
    "LogReport",
    "SealError",
    "SignedTreeHead",
    "TimestampAuthority",
    "create_seal_identity",
    "head_key",
    "segment_key",
    "verify_log",
    "verify_sealed",
    "verify_tree_head",
    "verify_tree_head_signature",
    "verify_tree_head_timestamp",
]

#: Events per segment object: ~300 KB at ~300 B/event, and 50 puts/s at 50,000 events/s, far below the
#: ~900 small puts/s an rclone S3 serves, while a crash loses at most one unflushed segment to replay.
DEFAULT_SEGMENT_EVENTS = 1024
#: Events kept in memory while the store is down before ``append`` refuses more (backpressure, ~30 MB).
DEFAULT_MAX_BUFFERED = 100_000
#: Tolerated disagreement between the hub's clock and a TSA's when ordering a head and its time-stamp.
DEFAULT_TIME_SKEW = timedelta(minutes=5)
#: The seal certificate is what auditors pin; a long life keeps old heads checkable without re-pinning.
DEFAULT_SEAL_VALIDITY = timedelta(days=20 * 366)

SEGMENTS_PREFIX = "ledger/segments/"
HEADS_PREFIX = "ledger/heads/"
SEAL_KEY_FILE = "hub-key.pem"
SEAL_CERT_FILE = "hub-cert.pem"
#: The actor of events the hub itself performs.
HUB_ACTOR = "hub"

_EVENT_VERSION = 1
_STH_CONTEXT = b"lienthong-sth-v1\n"
_STH_FORMAT = "lienthong-sth-v1"
_INDEX_DIGITS = 12
_SEGMENT_NAME = re.compile(r"^(\d{12})-([1-9]\d*)\.jsonl$")
_HEAD_NAME = re.compile(r"^(\d{12})\.json$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MAX_SEGMENT_BYTES = 64 * 1024 * 1024  # far above DEFAULT_SEGMENT_EVENTS lines; refuses absurd objects
_MAX_HEAD_BYTES = 1024 * 1024
_SEGMENT_CACHE = 8  # segments kept decoded for event look-ups (export reads a few events of one document)

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


class LedgerError(HubError):
    """The ledger cannot do what was asked (bad event, bad argument, another writer)."""


class LedgerCorrupt(LedgerError):
    """The stored log is not what the hub wrote; ``where`` names the object, head or leaf."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class SealError(HubError):
    """A seal (tree head or bundle manifest signature, or its time-stamp) does not verify; the message says why."""


# --- events -------------------------------------------------------------------------------------------------


class EventKind(enum.StrEnum):
    """What happened to a document at the hub."""

    RECEIVED = "received"
    VERIFIED = "verified"
    REJECTED = "rejected"
    ARCHIVED = "archived"
    DELIVERED = "delivered"
    STATUS_RELAYED = "status_relayed"


def _format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: object, what: str) -> datetime:
    if not isinstance(text, str):
        raise LedgerError(f"{what}: a time must be a string")
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise LedgerError(f"{what}: {text!r} is not a UTC time like 2026-06-01T00:00:00.000000Z") from exc


def _canonical_json(obj: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: one byte string per value, so that hashes are reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One hub event about one document; its canonical bytes (``to_bytes``) are a Merkle leaf.

    ``sha256`` is the hex SHA-256 of the document's original bytes; ``document_id`` its DocumentId (empty when
    the input could not be parsed); ``actor`` the OrganId that acted (sender, reporter) or ``"hub"``; ``time``
    an aware instant (stored in UTC to the microsecond); ``verdict`` the outcome (an indication, reason code or
    status code); ``detail`` extra string facts (recipient, report hash...).
    """

    kind: EventKind
    sha256: str
    document_id: str
    actor: str
    time: datetime
    verdict: str
    detail: Mapping[str, str] = field(default_factory=dict)
    # The canonical bytes, computed once: the ledger hashes, indexes and stores the same bytes.
    _canonical: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            kind = EventKind(self.kind)
        except ValueError as exc:
            raise LedgerError(f"unknown event kind {self.kind!r}") from exc
        if not isinstance(self.sha256, str) or not _HEX64.match(self.sha256):
            raise LedgerError(f"sha256 must be 64 lowercase hex digits, not {self.sha256!r}")
        for name in ("document_id", "actor", "verdict"):
            if not isinstance(getattr(self, name), str):
                raise LedgerError(f"{name} must be a string")
        if not self.actor:
            raise LedgerError("an event needs an actor (an OrganId or 'hub')")
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise LedgerError("an event time must be an aware datetime")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.detail.items()):
            raise LedgerError("event detail maps strings to strings")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "detail", MappingProxyType(dict(sorted(self.detail.items()))))

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (what ``to_bytes`` serialises)."""
        return {
            "v": _EVENT_VERSION,
            "kind": self.kind.value,
            "sha256": self.sha256,
            "doc_id": self.document_id,
            "actor": self.actor,
            "time": _format_time(self.time),
            "verdict": self.verdict,
            "detail": dict(self.detail),
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes: the Merkle leaf."""
        if self._canonical is None:
            object.__setattr__(self, "_canonical", _canonical_json(self.to_json()))
        assert self._canonical is not None  # set just above
        return self._canonical

    def leaf_hash(self) -> bytes:
        """The RFC 9162 leaf hash of ``to_bytes()``."""
        return merkle.leaf_hash(self.to_bytes())

    @classmethod
    def from_json(cls, obj: object) -> LedgerEvent:
        """Rebuild an event from its JSON object; ``LedgerError`` if any field is missing, extra or wrong."""
        if not isinstance(obj, dict):
            raise LedgerError("an event must be a JSON object")
        expected = {"v", "kind", "sha256", "doc_id", "actor", "time", "verdict", "detail"}
        if set(obj) != expected:
            raise LedgerError(f"event fields must be exactly {sorted(expected)}, got {sorted(obj)}")
        if obj["v"] != _EVENT_VERSION:
            raise LedgerError(f"unsupported event version {obj['v']!r}")
        detail = obj["detail"]
        if not isinstance(detail, dict):
            raise LedgerError("event detail must be an object")
        return cls(
            kind=obj["kind"],
            sha256=obj["sha256"],
            document_id=obj["doc_id"],
            actor=obj["actor"],
            time=_parse_time(obj["time"], "event time"),
            verdict=obj["verdict"],
            detail=detail,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LedgerEvent:
        """Parse canonical event bytes; non-canonical bytes are refused (a leaf has exactly one encoding)."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise LedgerError(f"not a JSON event: {exc}") from exc
        event = cls.from_json(obj)
        if event.to_bytes() != data:
            raise LedgerError("the event is not in canonical form (sorted keys, no spaces, UTF-8)")
        return event


# --- the Merkle tree with cached subtrees ---------------------------------------------------------------------


class _Tree:
    """Leaf hashes plus every complete aligned subtree hash, so roots and proofs cost O(log² n).

    ``_levels[k]`` holds, 32 bytes each, the hashes of the complete subtrees of ``2**k`` leaves starting at
    multiples of ``2**k``. The algorithms are RFC 9162's (as in ``storage.merkle``), with subtree hashes looked
    up instead of recomputed: in the RFC's recursion every left part is such a complete aligned subtree.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    def __len__(self) -> int:
        return len(self._levels[0]) // 32

    def append(self, leaf_hash: bytes) -> None:
        self._levels[0] += leaf_hash
        index = len(self) - 1
        level = 0
        while index & 1:
            below = self._levels[level]
            parent = merkle.node_hash(bytes(below[-64:-32]), bytes(below[-32:]))
            level += 1
            index >>= 1
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += parent

    def leaf(self, index: int) -> bytes:
        return bytes(self._levels[0][index * 32 : index * 32 + 32])

    def _range(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for 0 ≤ lo < hi ≤ len."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            offset = (lo >> level) * 32
            return bytes(self._levels[level][offset : offset + 32])
        k = 1 << ((n - 1).bit_length() - 1)
        return merkle.node_hash(self._range(lo, lo + k), self._range(lo + k, hi))

    def root(self, size: int) -> bytes:
        return merkle.EMPTY_ROOT if size == 0 else self._range(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        proof: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if index < lo + k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo += k
        proof.reverse()  # the RFC lists the path from the leaf up
        return proof

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        proof: list[bytes] = []
        lo, hi, m, complete = 0, new, old, True
        while m != hi - lo:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if m <= k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            proof.append(self._range(lo, hi))
        proof.reverse()
        return proof


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
        if not isinstance(root, str) or not _HEX64.match(root):
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


def _sign_head(key: SigningKey, size: int, root: bytes, at: datetime, tsa: TimestampAuthority | None) -> SignedTreeHead:
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

    Creates ``hub-key.pem`` (P-256, PKCS#8, mode 0600) and a self-signed ``hub-cert.pem`` valid for
    ``DEFAULT_SEAL_VALIDITY`` from ``now``. The certificate is what auditors trust (``--trust hub-cert.pem``).
    Refuses to continue when only one of the two files exists (never overwrites a key).
    """
    key_path, cert_path = directory / SEAL_KEY_FILE, directory / SEAL_CERT_FILE
    if key_path.exists() and cert_path.exists():
        return PemKey.load(key_path.read_bytes(), cert_path.read_bytes())
    if key_path.exists() or cert_path.exists():
        raise LedgerError(f"{directory}: one of {SEAL_KEY_FILE}/{SEAL_CERT_FILE} is missing; restore it from backup")
    directory.mkdir(parents=True, exist_ok=True)
    when = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"lienthong hub seal {secrets.token_hex(4)}"),
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
    # O_EXCL: two hubs starting on one folder must not both write a key; 0600: the key is a secret.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return PemKey(key, cert)


# --- keys of stored objects ---------------------------------------------------------------------------------


def segment_key(first: int, count: int, prefix: str = SEGMENTS_PREFIX) -> str:
    """The object key of the segment holding leaves ``first .. first+count-1``."""
    return f"{prefix}{first:0{_INDEX_DIGITS}d}-{count}.jsonl"


def head_key(size: int, prefix: str = HEADS_PREFIX) -> str:
    """The object key of the tree head at ``size``."""
    return f"{prefix}{size:0{_INDEX_DIGITS}d}.json"


@dataclass(frozen=True, slots=True)
class _Segment:
    first: int
    count: int
    key: str


def _list_segments(store: ObjectStore) -> list[_Segment]:
    """The stored segments in order; LedgerCorrupt for a name that is not a segment's."""
    segments: list[_Segment] = []
    for key in store.list(SEGMENTS_PREFIX):
        match = _SEGMENT_NAME.match(key[len(SEGMENTS_PREFIX) :])
        if match is None:
            raise LedgerCorrupt(key, "not a ledger segment name (<first leaf, 12 digits>-<count>.jsonl)")
        segments.append(_Segment(int(match.group(1)), int(match.group(2)), key))
    segments.sort(key=lambda s: s.first)
    return segments


def _list_heads(store: ObjectStore) -> list[int]:
    sizes: list[int] = []
    for key in store.list(HEADS_PREFIX):
        match = _HEAD_NAME.match(key[len(HEADS_PREFIX) :])
        if match is None:
            raise LedgerCorrupt(key, "not a tree head name (<size, 12 digits>.json)")
        sizes.append(int(match.group(1)))
    return sorted(sizes)


def _segment_lines(segment: _Segment, data: bytes) -> list[bytes]:
    """A segment's lines; LedgerCorrupt when its size, ending or line count is not what its name says."""
    if len(data) > _MAX_SEGMENT_BYTES:
        raise LedgerCorrupt(segment.key, f"larger than {_MAX_SEGMENT_BYTES} bytes")
    if not data.endswith(b"\n"):
        raise LedgerCorrupt(segment.key, "does not end with a newline (truncated?)")
    lines = data[:-1].split(b"\n")
    if len(lines) != segment.count:
        raise LedgerCorrupt(segment.key, f"holds {len(lines)} events, its name says {segment.count}")
    return lines


def _line_where(segment: _Segment, number: int) -> str:
    return f"{segment.key} line {number + 1} (leaf {segment.first + number})"


def _parse_segment(segment: _Segment, data: bytes) -> list[LedgerEvent]:
    """Decode a segment's events fully (canonical form included); LedgerCorrupt naming the key and line."""
    events: list[LedgerEvent] = []
    for number, line in enumerate(_segment_lines(segment, data)):
        try:
            events.append(LedgerEvent.from_bytes(line))
        except LedgerError as exc:
            raise LedgerCorrupt(_line_where(segment, number), str(exc)) from exc
    return events


def _segment_refs(segment: _Segment, data: bytes) -> list[tuple[bytes, str, str]]:
    """(line, sha256, DocumentId) per event: what rebuilding the tree and its index needs, parsed lightly.

    Opening a log must be fast; the newest head's root check catches a change in the sealed part, and
    ``verify_log`` checks every event in full.
    """
    out: list[tuple[bytes, str, str]] = []
    for number, line in enumerate(_segment_lines(segment, data)):
        try:
            obj = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise LedgerCorrupt(_line_where(segment, number), f"not a JSON event: {exc}") from exc
        sha256 = obj.get("sha256") if isinstance(obj, dict) else None
        doc_id = obj.get("doc_id") if isinstance(obj, dict) else None
        if not isinstance(sha256, str) or not _HEX64.match(sha256) or not isinstance(doc_id, str):
            raise LedgerCorrupt(_line_where(segment, number), "not a ledger event (sha256, doc_id)")
        out.append((line, sha256, doc_id))
    return out


def _read_head(store: ObjectStore, size: int) -> SignedTreeHead:
    key = head_key(size)
    data = store.get(key)
    if len(data) > _MAX_HEAD_BYTES:
        raise LedgerCorrupt(key, f"larger than {_MAX_HEAD_BYTES} bytes")
    try:
        head = SignedTreeHead.from_bytes(data)
    except LedgerError as exc:
        raise LedgerCorrupt(key, str(exc)) from exc
    if head.size != size:
        raise LedgerCorrupt(key, f"names size {head.size}, its key says {size}")
    return head


# --- the ledger ---------------------------------------------------------------------------------------------


class Ledger:
    """The append-only event log over an ``ObjectStore``; construct with ``Ledger.open(store)``.

    Opening rebuilds the tree from the stored segments (checking that they are contiguous and parse, and that
    the newest tree head's root matches), so a restarted writer continues exactly where the last one stopped.
    Appended events are in the tree at once and buffered for storage: ``flush()`` writes them as one
    create-only segment object per ``segment_events`` (automatically when that many are waiting); a failed
    write leaves them buffered for the next flush and nothing partial in the store. ``seal`` flushes, then
    signs the tree head of everything stored.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        segment_events: int = DEFAULT_SEGMENT_EVENTS,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        if segment_events < 1 or max_buffered < segment_events:
            raise LedgerError("need 1 ≤ segment_events ≤ max_buffered")
        self._store = store
        self._segment_events = segment_events
        self._max_buffered = max_buffered
        self._tree = _Tree()
        self._refs: dict[str, list[int]] = {}
        self._segments: list[_Segment] = []
        self._segment_firsts: list[int] = []
        self._stored = 0
        self._pending: list[bytes] = []
        # A segment whose write was attempted but not confirmed: retried byte for byte before anything else,
        # so that a write that landed without our knowing can never overlap a later, differently cut one.
        self._inflight: tuple[str, bytes, int] | None = None
        self._auto_flush_at = segment_events
        self._heads: list[int] = []
        self._cache: OrderedDict[str, list[bytes]] = OrderedDict()
        self._load()

    @classmethod
    def open(
        cls,
        store: ObjectStore,
        *,
        segment_events: int = DEFAULT_SEGMENT_EVENTS,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> Ledger:
        """Open the log stored in ``store`` (empty if there is none); LedgerCorrupt if it is inconsistent."""
        return cls(store, segment_events=segment_events, max_buffered=max_buffered)

    def _load(self) -> None:
        for segment in _list_segments(self._store):
            if segment.first != self._stored:
                raise LedgerCorrupt(
                    segment.key, f"starts at leaf {segment.first}, but the segments before end at {self._stored}"
                )
            for line, sha256, doc_id in _segment_refs(segment, self._store.get(segment.key)):
                self._add(merkle.leaf_hash(line), sha256, doc_id)
            self._add_segment(segment)
        self._heads = _list_heads(self._store)
        if self._heads:
            head = _read_head(self._store, self._heads[-1])
            if head.size > self._stored:
                raise LedgerCorrupt(head_key(head.size), f"signs {head.size} leaves, the segments hold {self._stored}")
            if head.root != self._tree.root(head.size):
                raise LedgerCorrupt(head_key(head.size), "its root does not match the stored segments")

    def _add(self, leaf_hash: bytes, sha256: str, document_id: str) -> int:
        index = len(self._tree)
        self._tree.append(leaf_hash)
        self._refs.setdefault(sha256, []).append(index)
        if document_id:
            self._refs.setdefault(document_id, []).append(index)
        return index

    def _add_segment(self, segment: _Segment) -> None:
        self._segments.append(segment)
        self._segment_firsts.append(segment.first)
        self._stored += segment.count

    # --- reading --------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Events in the log, stored or buffered."""
        return len(self._tree)

    @property
    def stored_size(self) -> int:
        """Events written to the store (a prefix of the log)."""
        return self._stored

    @property
    def pending(self) -> int:
        """Events buffered and not yet stored."""
        return len(self._tree) - self._stored

    def root(self, size: int | None = None) -> bytes:
        """The Merkle root of the first ``size`` events (default: all)."""
        size = self.size if size is None else size
        self._check_size(size)
        return self._tree.root(size)

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash of event ``index``."""
        self._check_index(index, self.size)
        return self._tree.leaf(index)

    def contains(self, event: LedgerEvent) -> bool:
        """Whether this exact event is already in the log."""
        return self.index_of(event) is not None

    def index_of(self, event: LedgerEvent) -> int | None:
        """The index of this exact event in the log, or None."""
        return self._find(event.sha256, event.leaf_hash())

    def _find(self, sha256: str, leaf_hash: bytes) -> int | None:
        for index in self._refs.get(sha256, ()):
            if self._tree.leaf(index) == leaf_hash:
                return index
        return None

    def event(self, index: int) -> LedgerEvent:
        """Event ``index``, read back from its segment (or the buffer) and checked against its leaf hash."""
        self._check_index(index, self.size)
        if index >= self._stored:
            data = self._pending[index - self._stored]
            where = f"buffered leaf {index}"
        else:
            segment = self._segments[bisect.bisect_right(self._segment_firsts, index) - 1]
            data = self._segment_lines(segment)[index - segment.first]
            where = f"{segment.key} (leaf {index})"
        if merkle.leaf_hash(data) != self._tree.leaf(index):
            raise LedgerCorrupt(where, "changed in the store since the ledger was opened")
        return LedgerEvent.from_bytes(data)

    def _segment_lines(self, segment: _Segment) -> list[bytes]:
        lines = self._cache.get(segment.key)
        if lines is None:
            lines = _segment_lines(segment, self._store.get(segment.key))
            self._cache[segment.key] = lines
            while len(self._cache) > _SEGMENT_CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(segment.key)
        return lines

    def events_for(self, ref: str) -> list[tuple[int, LedgerEvent]]:
        """Every (index, event) naming ``ref``: a document's SHA-256 (hex) or its DocumentId, in log order."""
        return [(index, self.event(index)) for index in sorted(set(self._refs.get(ref, ())))]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 audit path of leaf ``index`` in the tree of ``size`` (default: the whole log)."""
        size = self.size if size is None else size
        self._check_size(size)
        self._check_index(index, size)
        return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``old`` is a prefix of the tree of ``new`` (default: all)."""
        new = self.size if new is None else new
        self._check_size(new)
        if not 0 < old <= new:
            raise LedgerError(f"no consistency proof from size {old} to {new}")
        return self._tree.consistency_proof(old, new)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise LedgerError(f"size {size} is outside the log (0..{self.size})")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise LedgerError(f"leaf {index} is not in a tree of {size}")

    # --- heads ----------------------------------------------------------------------------------------------

    @property
    def head_sizes(self) -> list[int]:
        """Sizes of the stored tree heads, ascending."""
        return list(self._heads)

    def head(self, size: int | None = None) -> SignedTreeHead | None:
        """The stored tree head at ``size`` (default: the newest), or None when there is none."""
        if not self._heads:
            return None
        size = self._heads[-1] if size is None else size
        try:
            return _read_head(self._store, size)
        except ObjectNotFound:
            return None

    def covering_head(self, index: int) -> SignedTreeHead | None:
        """The newest stored head that includes leaf ``index``, or None if none does yet."""
        self._refresh_heads()
        if not self._heads or self._heads[-1] <= index:
            return None
        return self.head(self._heads[-1])

    def _refresh_heads(self) -> None:
        # A reader beside a running hub sees heads sealed after it opened the log (never past its leaves).
        self._heads = [size for size in _list_heads(self._store) if size <= self.size]

    # --- writing --------------------------------------------------------------------------------------------

    def append(self, event: LedgerEvent) -> int:
        """Add ``event`` and return its index; an event already in the log returns its index, adding nothing.

        The event is in the tree at once and stored by the next flush (automatic every ``segment_events``).
        Raises ``StoreUnavailable`` without adding anything when ``max_buffered`` events already wait for a
        store that still does not answer.
        """
        data = event.to_bytes()
        leaf = merkle.leaf_hash(data)
        existing = self._find(event.sha256, leaf)
        if existing is not None:
            return existing
        if self.pending >= self._max_buffered:
            self.flush()  # raises StoreUnavailable while the store is down: the caller backs off
        index = self._add(leaf, event.sha256, event.document_id)
        self._pending.append(data)
        if self.pending >= self._auto_flush_at:
            try:
                self.flush()
            except StoreUnavailable:
                # The events stay buffered and the caller's explicit flush() reports the failure; a store that is
                # down is tried again only after another segment's worth of events, not on every append.
                self._auto_flush_at = self.pending + self._segment_events
        return index

    def append_many(self, events: Iterable[LedgerEvent]) -> list[int]:
        """Append each event in order; their indices."""
        return [self.append(event) for event in events]

    def flush(self) -> int:
        """Write buffered events as segments; returns how many were written.

        Raises ``StoreUnavailable`` if the store fails: what was written stays written, the rest stays
        buffered for the next call, and no segment is ever half-visible (each is one create-only object).
        """
        written = 0
        while self._inflight is not None or self._pending:
            if self._inflight is None:
                count = min(len(self._pending), self._segment_events)
                body = b"".join(line + b"\n" for line in self._pending[:count])
                self._inflight = (segment_key(self._stored, count), body, count)
            key, body, count = self._inflight
            self._put_segment(key, body)
            self._inflight = None
            self._add_segment(_Segment(self._stored, count, key))
            del self._pending[:count]
            written += count
        self._auto_flush_at = self._segment_events
        return written

    def _put_segment(self, key: str, body: bytes) -> None:
        try:
            self._store.put(key, body, metadata={"ledger-object": "segment"})
        except ObjectExists:
            # An earlier attempt may have landed although we saw an error: identical bytes are that write.
            if self._store.get(key) != body:
                raise LedgerCorrupt(
                    key, "already stored with other events: is a second ledger writer running?"
                ) from None

    def seal(self, key: SigningKey, *, at: datetime, tsa: TimestampAuthority | None = None) -> SignedTreeHead:
        """Flush, then sign (and time-stamp, with ``tsa``) the tree head of every stored event, and store it.

        When the newest head already covers every event, it is returned unchanged (sealing an idle log is a
        no-op). ``at`` (aware) is the head's time; it may not go back before the previous head's.
        """
        if at.tzinfo is None:
            raise LedgerError("the seal time must be an aware datetime")
        self.flush()
        size = self._stored
        previous = self.head()
        if previous is not None:
            if previous.size == size:
                return previous
            if at < previous.time:
                raise LedgerError(
                    f"seal time {at.isoformat()} is before the previous head's {previous.time.isoformat()}"
                )
        head = _sign_head(key, size, self._tree.root(size), at, tsa)
        try:
            self._store.put(head_key(size), head.to_bytes(), metadata={"ledger-object": "tree-head"})
        except ObjectExists:
            head = _read_head(self._store, size)  # a write we could not confirm landed: that one stands
        self._heads.append(size)
        return head


# --- verifying the whole stored log -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogProblem:
    """The first inconsistency found: ``where`` (segment key and line, head key, leaf range) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class LogReport:
    """What ``verify_log`` checked and the first inconsistency, if any (``ok`` when there is none)."""

    size: int
    segments: int
    heads: int
    timestamped: int
    root: bytes
    problem: LogProblem | None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every segment and head checked out."""
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        """A JSON object for ``lienthong ledger verify --json``."""
        return {
            "ok": self.ok,
            "size": self.size,
            "segments": self.segments,
            "heads": self.heads,
            "timestamped_heads": self.timestamped,
            "root": self.root.hex(),
            "problem": {"where": self.problem.where, "message": self.problem.message} if self.problem else None,
            "warnings": list(self.warnings),
        }

    def to_text(self) -> str:
        """A few lines a person can read."""
        lines = [
            (
                f"ledger: {self.size} events in {self.segments} segments, {self.heads} signed tree heads "
                f"({self.timestamped} time-stamped), root {self.root.hex()}"
            ),
        ]
        lines.extend(f"warning: {w}" for w in self.warnings)
        lines.append(
            "OK: every segment and tree head is consistent" if self.problem is None else f"FAILED at {self.problem}"
        )
        return "\n".join(lines)


class _Stop(Exception):
    """Control flow inside verify_log: carries the first problem out; never escapes."""

    def __init__(self, where: str, message: str) -> None:
        self.problem = LogProblem(where, message)

    @classmethod
    def of(cls, exc: LedgerCorrupt) -> _Stop:
        return cls(exc.where, str(exc).removeprefix(f"{exc.where}: "))


class _LogCheck:
    """One pass of ``verify_log`` over a store: segments first, then heads in size order."""

    def __init__(
        self,
        store: ObjectStore,
        anchors: Sequence[x509.Certificate],
        tsa_anchors: Sequence[x509.Certificate] | None,
    ) -> None:
        self.store = store
        self.anchors = anchors
        self.tsa_anchors = tsa_anchors
        self.tree = _Tree()
        self.segments: list[_Segment] = []
        self.heads = 0
        self.timestamped = 0
        self.warnings: list[str] = []

    def report(self, problem: LogProblem | None) -> LogReport:
        tree = self.tree
        return LogReport(
            len(tree),
            len(self.segments),
            self.heads,
            self.timestamped,
            tree.root(len(tree)),
            problem,
            tuple(self.warnings),
        )

    def check_segments(self) -> None:
        try:
            found = _list_segments(self.store)
        except LedgerCorrupt as exc:
            raise _Stop.of(exc) from exc
        for segment in found:
            if segment.first != len(self.tree):
                where = f"starts at leaf {segment.first}; the segments before end at leaf {len(self.tree)}"
                raise _Stop(segment.key, where)
            try:
                events = _parse_segment(segment, self.store.get(segment.key))
            except LedgerCorrupt as exc:
                raise _Stop.of(exc) from exc
            for event in events:
                self.tree.append(event.leaf_hash())
            self.segments.append(segment)

    def check_heads(self, *, up_to: int | None = None) -> None:
        try:
            sizes = _list_heads(self.store)
        except LedgerCorrupt as exc:
            raise _Stop.of(exc) from exc
        if up_to is not None:
            sizes = [size for size in sizes if size <= up_to]
        previous: SignedTreeHead | None = None
        for size in sizes:
            head = self.read_head(size)
            self.check_root(head, previous)
            if previous is not None:
                self.check_order(head, previous)
            self.check_timestamp(head)
            self.heads += 1
            previous = head

    def read_head(self, size: int) -> SignedTreeHead:
        key = head_key(size)
        try:
            head = _read_head(self.store, size)
        except LedgerCorrupt as exc:
            raise _Stop.of(exc) from exc
        try:
            verify_tree_head_signature(head, self.anchors)
        except SealError as exc:
            raise _Stop(key, f"signature: {exc}") from exc
        return head

    def check_root(self, head: SignedTreeHead, previous: SignedTreeHead | None) -> None:
        key, tree = head_key(head.size), self.tree
        if head.size > len(tree):
            raise _Stop(key, f"signs {head.size} leaves but the segments hold only {len(tree)} (segments missing)")
        if head.root != tree.root(head.size):
            since = previous.size if previous is not None else 0
            keys = [s.key for s in self.segments if s.first < head.size and s.first + s.count > since]
            raise _Stop(
                f"{key} / leaves {since}..{head.size - 1}",
                "the stored events do not hash to the signed root: an event in "
                f"{', '.join(keys) or 'these leaves'} was changed, added or removed after the head was signed",
            )

    def check_order(self, head: SignedTreeHead, previous: SignedTreeHead) -> None:
        key = head_key(head.size)
        if head.time < previous.time:
            raise _Stop(
                key, f"its time {head.time.isoformat()} is before the previous head's {previous.time.isoformat()}"
            )
        if previous.size == 0:
            return
        proof = self.tree.consistency_proof(previous.size, head.size)
        try:
            merkle.verify_consistency(previous.size, head.size, previous.root, head.root, proof)
        except merkle.ProofError as exc:
            raise _Stop(key, f"not consistent with the head at size {previous.size}: {exc}") from exc

    def check_timestamp(self, head: SignedTreeHead) -> None:
        if head.timestamp is None:
            return
        key = head_key(head.size)
        if self.tsa_anchors is not None and len(self.tsa_anchors) == 0:
            self.warnings.append(f"{key}: time-stamp not checked (no TSA trust anchor given)")
            return
        try:
            verify_tree_head_timestamp(head, self.anchors if self.tsa_anchors is None else self.tsa_anchors)
        except SealError as exc:
            raise _Stop(key, str(exc)) from exc
        self.timestamped += 1


def verify_log(
    store: ObjectStore,
    anchors: Sequence[x509.Certificate],
    *,
    tsa_anchors: Sequence[x509.Certificate] | None = None,
) -> LogReport:
    """Check the whole stored log and report the first inconsistency.

    Segments must be contiguous from leaf 0, parse, and hold canonical events; every tree head must be
    signed by a seal certificate chaining to ``anchors`` at its time, sign the root recomputed from the
    segments at its size, not go back in time, and be consistent (RFC 9162 proof) with the head before it;
    a time-stamp, when present, must verify against ``tsa_anchors`` (default ``anchors``; pass ``()`` to skip
    time-stamps with a warning). Store failures propagate as ``StoreUnavailable``.
    """
    check = _LogCheck(store, anchors, tsa_anchors)
    try:
        check.check_segments()
    except _Stop as stop:
        # The log is readable up to the broken segment: a head within that prefix that is itself wrong is an
        # earlier inconsistency, so it is reported first.
        try:
            check.check_heads(up_to=len(check.tree))
        except _Stop as earlier:
            return check.report(earlier.problem)
        return check.report(stop.problem)
    try:
        check.check_heads()
    except _Stop as stop:
        return check.report(stop.problem)
    return check.report(None)
