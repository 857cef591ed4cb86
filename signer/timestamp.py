"""RFC 3161 time-stamps: build requests, verify responses and tokens. Pure: bytes in, results out.

A token is accepted only when every one of these holds, else :class:`TimestampError` says which failed:
the TSA granted it; the message imprint is the caller's digest (same hash); the nonce matches when one was
sent; it is CMS SignedData over a TSTInfo whose signed attributes carry the right content type and the
digest of the TSTInfo; the ESS signing-certificate attribute, when present, names the signer certificate;
the signature verifies (RSA PKCS#1 v1.5 or ECDSA, SHA-256 or stronger); the TSA certificate has the
critical extended key usage timeStamping; and it chains to one of the given ``anchors`` (see
``signer.path``), valid at the token's genTime (or at ``at`` when given). The TSA certificate's revocation
is not checked here: TSA certificates are long-lived and revocation data for them is the caller's concern.

CMS and TSP structures are parsed with asn1crypto; signatures are checked with cryptography.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from schemas.errors import HubError
from signer.path import PathValidator
from signer.policy import RevocationPolicy, TrustPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

__all__ = [
    "DEFAULT_TIMESTAMP_HASH",
    "TimestampError",
    "TimestampToken",
    "build_request",
    "verify_response",
    "verify_token",
]

#: SHA-256 is what every TSA supports and what the rest of the hub uses.
DEFAULT_TIMESTAMP_HASH = "sha256"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_GRANTED = frozenset({"granted", "granted_with_mods"})
_NAME_OVERRIDES = {NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier"}
_T = TypeVar("_T")


class TimestampError(HubError):
    """A time-stamp request could not be built, or a response or token is not acceptable (the message says why)."""


@dataclass(frozen=True, slots=True)
class TimestampToken:
    """A verified RFC 3161 token: when (``gen_time``), by whom, over which digest, and its DER for the archive."""

    gen_time: datetime
    serial: int
    tsa_subject: str
    token_der: bytes
    digest: bytes
    hash_algorithm: str
    policy: str
    nonce: int | None
    tsa_cert: x509.Certificate


def build_request(
    data_or_digest: bytes,
    *,
    hash: str = DEFAULT_TIMESTAMP_HASH,  # noqa: A002 - the RFC's word, and the brief's
    nonce: int | None,
    cert_req: bool = True,
    prehashed: bool = False,
) -> bytes:
    """Return a DER TimeStampReq for ``data_or_digest``.

    By default ``data_or_digest`` is the data and is hashed with ``hash``; with ``prehashed=True`` it is
    already the digest. ``nonce`` (the caller draws it, e.g. ``secrets.randbits(64)``) ties the answer to
    this request; ``cert_req`` asks the TSA to include its certificate.
    """
    algorithm = _hash_class(hash)
    if prehashed:
        if len(data_or_digest) != algorithm.digest_size:
            raise TimestampError(f"a {hash} digest is {algorithm.digest_size} bytes, got {len(data_or_digest)}")
        digest = data_or_digest
    else:
        digest = hashlib.new(hash, data_or_digest).digest()
    if nonce is not None and nonce < 0:
        raise TimestampError("the nonce must not be negative")
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": hash}, "hashed_message": digest},
            "nonce": nonce,
            "cert_req": cert_req,
        }
    )
    return bytes(request.dump())


def verify_response(
    resp_der: bytes,
    *,
    digest: bytes,
    anchors: Sequence[x509.Certificate],
    nonce: int | None = None,
    at: datetime | None = None,
    hash: str = DEFAULT_TIMESTAMP_HASH,  # noqa: A002 - the RFC's word
    certs: Sequence[x509.Certificate] = (),
) -> TimestampToken:
    """Verify a DER TimeStampResp for ``digest`` and return its token (see the module docstring for the checks).

    ``certs`` adds TSA and intermediate certificates for tokens issued without them (``cert_req=False``).
    """
    token_der = _guarded("time-stamp response", _token_from_response, resp_der)
    return verify_token(token_der, digest=digest, anchors=anchors, nonce=nonce, at=at, hash=hash, certs=certs)


def verify_token(
    token_der: bytes,
    *,
    digest: bytes,
    anchors: Sequence[x509.Certificate],
    nonce: int | None = None,
    at: datetime | None = None,
    hash: str = DEFAULT_TIMESTAMP_HASH,  # noqa: A002 - the RFC's word
    certs: Sequence[x509.Certificate] = (),
) -> TimestampToken:
    """Verify a DER time-stamp token (CMS ContentInfo) over ``digest``; raise TimestampError if not acceptable."""
    _hash_class(hash)
    parsed = _guarded("time-stamp token", _parse_token, token_der)

    if parsed.imprint_hash != hash:
        raise TimestampError(f"the token's message imprint uses {parsed.imprint_hash}, expected {hash}")
    if parsed.imprint != digest:
        raise TimestampError("the token's message imprint does not match the digest of the data")
    if nonce is not None and parsed.nonce != nonce:
        raise TimestampError(f"the token's nonce {parsed.nonce} is not the nonce sent ({nonce})")

    signer = _find_signer(parsed, certs)
    _check_signed_attributes(parsed, signer)
    _check_signature(parsed, signer)
    _check_tsa_certificate(signer)
    _check_chain(signer, [*parsed.certificates, *certs], anchors, at or parsed.gen_time)
    return TimestampToken(
        gen_time=parsed.gen_time,
        serial=parsed.serial,
        tsa_subject=_describe(signer),
        token_der=bytes(token_der),
        digest=parsed.imprint,
        hash_algorithm=parsed.imprint_hash,
        policy=parsed.policy,
        nonce=parsed.nonce,
        tsa_cert=signer,
    )


# --- private ------------------------------------------------------------------------------------------------


def _guarded(what: str, parse: Callable[[bytes], _T], der: bytes) -> _T:
    """Run ``parse``, turning whatever asn1crypto raises on hostile input into a TimestampError."""
    try:
        return parse(der)
    except TimestampError:
        raise
    except Exception as exc:
        raise TimestampError(f"malformed {what}: {exc}") from exc


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 TimeStampResp; asn1crypto's own marks the token mandatory, so a refusal would not parse."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _token_from_response(resp_der: bytes) -> bytes:
    response = _TimeStampResp.load(resp_der, strict=True)
    status = response["status"]
    granted = status["status"].native
    if granted not in _GRANTED:
        detail = "; ".join(str(x) for x in (status["status_string"].native, status["fail_info"].native) if x)
        suffix = f" ({detail})" if detail else ""
        raise TimestampError(f"the TSA did not grant the time-stamp: {granted}{suffix}")
    token = response["time_stamp_token"]
    if not isinstance(token, cms.ContentInfo) or token.native is None:
        raise TimestampError("the TSA granted the request but sent no token")
    return bytes(token.dump())


@dataclass(frozen=True, slots=True)
class _Parsed:
    tst_info_der: bytes
    imprint_hash: str
    imprint: bytes
    nonce: int | None
    gen_time: datetime
    serial: int
    policy: str
    certificates: tuple[x509.Certificate, ...]
    sid: Any  # asn1crypto SignerIdentifier
    digest_algorithm: str
    signature_algorithm: str
    signed_attrs_der: bytes
    attributes: dict[str, list[Any]]
    signature: bytes


def _parse_token(token_der: bytes) -> _Parsed:
    info = cms.ContentInfo.load(token_der, strict=True)
    if info["content_type"].native != "signed_data":
        raise TimestampError(f"the token is CMS {info['content_type'].native}, not signed data")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampError(f"the token signs {encap['content_type'].native}, not a TSTInfo")
    content = encap["content"]
    if content is None or isinstance(content, core.Void):
        raise TimestampError("the token carries no TSTInfo")
    tst_info_der = bytes(content.contents)
    tst = tsp.TSTInfo.load(tst_info_der, strict=True)
    imprint = tst["message_imprint"]
    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1:
        raise TimestampError(f"the token has {len(signer_infos)} signers, expected exactly one")
    signer_info = signer_infos[0]
    signed_attrs = signer_info["signed_attrs"]
    if not isinstance(signed_attrs, cms.CMSAttributes) or len(signed_attrs) == 0:
        raise TimestampError("the token has no signed attributes")
    attributes: dict[str, list[Any]] = {}
    for attribute in signed_attrs:
        attributes.setdefault(attribute["type"].native, []).extend(attribute["values"])
    certificates = [
        x509.load_der_x509_certificate(bytes(choice.chosen.dump()))
        for choice in signed["certificates"] or []
        if choice.name == "certificate"
    ]
    raw_attrs = bytes(signed_attrs.dump())
    return _Parsed(
        tst_info_der=tst_info_der,
        imprint_hash=imprint["hash_algorithm"]["algorithm"].native,
        imprint=bytes(imprint["hashed_message"].native),
        nonce=tst["nonce"].native,
        gen_time=tst["gen_time"].native,
        serial=int(tst["serial_number"].native),
        policy=tst["policy"].dotted,
        certificates=tuple(certificates),
        sid=signer_info["sid"],
        digest_algorithm=signer_info["digest_algorithm"]["algorithm"].native,
        signature_algorithm=signer_info["signature_algorithm"].signature_algo,
        # Signed over as a SET OF (tag 0x31), not with the [0] IMPLICIT tag it carries in SignerInfo.
        signed_attrs_der=b"\x31" + raw_attrs[1:],
        attributes=attributes,
        signature=bytes(signer_info["signature"].native),
    )


def _find_signer(parsed: _Parsed, extra: Sequence[x509.Certificate]) -> x509.Certificate:
    candidates = [*parsed.certificates, *extra]
    sid = parsed.sid
    for cert in candidates:
        if sid.name == "issuer_and_serial_number":
            issuer = sid.chosen["issuer"]
            serial = sid.chosen["serial_number"].native
            if cert.serial_number == serial and asn1_x509.Name.load(cert.issuer.public_bytes()) == issuer:
                return cert
        elif sid.name == "subject_key_identifier":
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == bytes(sid.chosen.native):
                return cert
    raise TimestampError("the TSA certificate is not in the token (request it with cert_req=True or pass it in certs=)")


def _check_signed_attributes(parsed: _Parsed, signer: x509.Certificate) -> None:
    content_types = parsed.attributes.get("content_type", [])
    if len(content_types) != 1 or content_types[0].native != "tst_info":
        raise TimestampError("the signed content-type attribute is missing or is not TSTInfo")
    digests = parsed.attributes.get("message_digest", [])
    if len(digests) != 1:
        raise TimestampError("the signed message-digest attribute is missing")
    algorithm = _signature_hash(parsed.digest_algorithm)
    expected = _digest(algorithm, parsed.tst_info_der)
    if bytes(digests[0].native) != expected:
        raise TimestampError("the signed message digest does not match the TSTInfo: the token was altered")
    cert_der = signer.public_bytes(serialization.Encoding.DER)
    for attribute in parsed.attributes.get("signing_certificate_v2", []):
        first = attribute["certs"][0]
        algo = first["hash_algorithm"]["algorithm"].native
        if bytes(first["cert_hash"].native) != hashlib.new(algo, cert_der).digest():
            raise TimestampError("the ESS signing-certificate attribute names another certificate than the signer")
    for attribute in parsed.attributes.get("signing_certificate", []):
        first = attribute["certs"][0]
        if bytes(first["cert_hash"].native) != hashlib.sha1(cert_der).digest():  # noqa: S324 - ESS v1 is SHA-1
            raise TimestampError("the ESS signing-certificate attribute names another certificate than the signer")


def _check_signature(parsed: _Parsed, signer: x509.Certificate) -> None:
    algorithm = _signature_hash(parsed.digest_algorithm)
    key = signer.public_key()
    try:
        if parsed.signature_algorithm == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(parsed.signature, parsed.signed_attrs_der, padding.PKCS1v15(), algorithm)
        elif parsed.signature_algorithm == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(parsed.signature, parsed.signed_attrs_der, ec.ECDSA(algorithm))
        else:
            raise TimestampError(
                f"unsupported token signature {parsed.signature_algorithm} with a {type(key).__name__}"
            )
    except InvalidSignature as exc:
        raise TimestampError(f"the token's signature does not verify with the key of {_describe(signer)}") from exc


def _check_tsa_certificate(signer: x509.Certificate) -> None:
    try:
        eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TimestampError(f"{_describe(signer)} is not a TSA certificate (no extended key usage)") from exc
    if ExtendedKeyUsageOID.TIME_STAMPING not in eku.value or not eku.critical:
        raise TimestampError(
            f"{_describe(signer)} is not a TSA certificate (RFC 3161 needs a critical timeStamping usage)"
        )


def _check_chain(
    signer: x509.Certificate,
    certificates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    at: datetime,
) -> None:
    if not anchors:
        raise TimestampError("no trust anchors given for the TSA")
    policy = TrustPolicy(anchors=tuple(anchors), intermediates=tuple(certificates), revocation=RevocationPolicy.NONE)
    result = PathValidator(policy).validate(signer, at=at)
    if not result.passed:
        reason = result.subindication.value if result.subindication else result.indication.value
        raise TimestampError(f"the TSA certificate is not trusted ({reason}): " + "; ".join(result.errors))


def _hash_class(name: str) -> hashes.HashAlgorithm:
    algorithm = _HASHES.get(name)
    if algorithm is None:
        raise TimestampError(f"hash {name!r} is not allowed for time-stamps (use one of {sorted(_HASHES)})")
    return algorithm()


def _signature_hash(name: str) -> hashes.HashAlgorithm:
    algorithm = _HASHES.get(name)
    if algorithm is None:
        raise TimestampError(f"the token is signed with {name}, which is too weak or unsupported")
    return algorithm()


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    context = hashes.Hash(algorithm)
    context.update(data)
    return context.finalize()


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string(_NAME_OVERRIDES)
