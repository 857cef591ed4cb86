"""Certificate path building and validation, with revocation, for signing certificates.

Outcomes follow ETSI EN 319 102-1 (as refined by the project's brief):

=============================================================  ==============================================
no path from the leaf to a configured anchor                    INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND
wrong key usage, issuer not a CA, path too long, unknown        INDETERMINATE / CHAIN_CONSTRAINTS_FAILURE
critical extension
RSA < 2048 bits, unlisted curve, SHA-1/MD5-signed certificate   INDETERMINATE / CRYPTO_CONSTRAINTS_FAILURE
a certificate expired / not yet valid at ``at``                 TOTAL_FAILED / EXPIRED, NOT_YET_VALID
revoked at or before ``at``                                     TOTAL_FAILED / REVOKED
``RevocationPolicy.REQUIRE`` and no current CRL/OCSP answer     INDETERMINATE / TRY_LATER
=============================================================  ==============================================

Only ``policy.anchors`` are trusted; the OS store and certifi are never consulted. Certificates from the
document (``extra``) and ``policy.intermediates`` only help to build the path. No I/O happens here: OCSP goes
through the injected ``policy.ocsp`` callable, and time through ``at=`` and the injected ``clock`` (used for
cache lifetimes and to reject OCSP answers dated in the future).

Caches (one validator per process; not thread-safe): the time-independent part of a path (building,
signatures, constraints) is cached by leaf + extra certificates, and revocation answers by (issuer key,
serial), both for ``policy.cache_ttl`` by ``clock``. Validity periods and the meaning of a revocation answer
are re-checked against ``at`` on every call, so a cached path costs a few look-ups and date comparisons.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)

from signer.policy import RevocationPolicy, TrustPolicy
from signer.report import Indication, RevocationEvidence, SubIndication

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_MAX_PATH_LENGTH",
    "DEFAULT_NEGATIVE_TTL",
    "DEFAULT_NO_NEXT_UPDATE_TTL",
    "MIN_RSA_BITS",
    "MISSING_ISSUER",
    "UNTRUSTED_ROOT",
    "PathResult",
    "PathValidator",
    "untrusted_roots",
]

#: How a path error that lacks an issuer's certificate begins (callers add how to supply it, e.g. a CLI option).
MISSING_ISSUER = "the chain needs the certificate of"

#: How a path error about a root that is not trusted begins; ``untrusted_roots`` reads the roots back.
UNTRUSTED_ROOT = "the chain ends at"
_UNTRUSTED_ROOT_END = ", a self-signed certificate that is not a trust anchor"

#: No agency chain is longer; a longer one is a loop, an attack or a misconfiguration.
DEFAULT_MAX_PATH_LENGTH = 8
#: OCSP answers dated further in the future than this (by ``clock``) are rejected as bogus.
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
#: Entries per cache; bounded so that a flood of distinct certificates cannot exhaust memory.
DEFAULT_CACHE_SIZE = 10_000
#: A failed revocation look-up is not retried for this long: a dead responder must not stall every document.
DEFAULT_NEGATIVE_TTL = timedelta(seconds=30)
#: An answer without nextUpdate (``openssl ocsp`` gives none) promises nothing: reused only this long.
DEFAULT_NO_NEXT_UPDATE_TTL = timedelta(minutes=5)
#: RSA keys below this are breakable (ETSI TS 119 312).
MIN_RSA_BITS = 2048

_ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_ALLOWED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
# Critical extensions this validator understands; any other critical extension fails the path (RFC 5280, 4.2).
_HANDLED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CERTIFICATE_POLICIES,
    }
)
# CRL extensions that change a CRL's scope (partial or delta CRLs): such CRLs are not used.
_SCOPING_CRL_EXTENSIONS = frozenset({ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.DELTA_CRL_INDICATOR})
_NAME_OVERRIDES = {NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier"}

_K = TypeVar("_K")
_V = TypeVar("_V")
_E = TypeVar("_E", bound=x509.ExtensionType)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PathResult:
    """The verdict on one signing certificate at one instant.

    ``chain`` runs leaf first, anchor last (empty when no path was found); ``revocation`` holds one answer per
    certificate checked; ``errors`` and ``warnings`` name each certificate by subject and say what was wrong.
    """

    indication: Indication
    subindication: SubIndication | None
    errors: tuple[str, ...]
    chain: tuple[x509.Certificate, ...]
    revocation: tuple[RevocationEvidence, ...]
    warnings: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Say whether the path is TOTAL_PASSED."""
        return self.indication is Indication.TOTAL_PASSED


# --- cached, time-independent facts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Failure:
    indication: Indication
    subindication: SubIndication
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Link:
    """A certificate of the path that needs revocation data, and its issuer."""

    cert: x509.Certificate
    issuer: x509.Certificate
    subject: str
    issuer_subject: str
    key: tuple[bytes, int]  # (SHA-256 of the issuer's SPKI, serial): the revocation cache key


@dataclass(frozen=True, slots=True)
class _Structure:
    chain: tuple[x509.Certificate, ...]
    windows: tuple[tuple[str, datetime, datetime], ...]  # (subject, notBefore, notAfter) per chain entry
    links: tuple[_Link, ...]
    failure: _Failure | None


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one CRL or OCSP response said about one certificate; interpreted against ``at`` on each use."""

    source: str
    status: str
    revoked_at: datetime | None
    this_update: datetime
    next_update: datetime | None
    produced_at: datetime | None
    responder: str
    der: bytes


class _RejectedError(Exception):
    """A revocation source was unusable (bad signature, stale, no matching entry...)."""


class PathValidator:
    """Build and validate certificate paths to ``policy.anchors``, checking revocation as ``policy`` says.

    One validator per process: it keeps the caches that make repeated validations cheap.
    """

    def __init__(
        self,
        policy: TrustPolicy,
        *,
        clock: Callable[[], datetime] = _utc_now,
        max_path_length: int = DEFAULT_MAX_PATH_LENGTH,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._max_path_length = max_path_length
        self._cache_size = cache_size
        self._anchors: dict[x509.Name, list[x509.Certificate]] = {}
        for anchor in policy.anchors:
            self._anchors.setdefault(anchor.subject, []).append(anchor)
        self._anchor_ids = {_identity(a) for a in policy.anchors}
        self._intermediates: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in policy.intermediates:
            self._intermediates.setdefault(cert.subject, []).append(cert)
        self._crls: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
        for crl in policy.crls:
            self._crls.setdefault(crl.issuer, []).append(crl)
        self._crl_signature_ok: dict[tuple[int, bytes], bool] = {}
        self._structures: dict[tuple[x509.Certificate, tuple[x509.Certificate, ...]], tuple[datetime, _Structure]]
        self._structures = {}
        self._answers: dict[tuple[bytes, int], tuple[datetime, _Answer, RevocationEvidence]] = {}
        self._ocsp_misses: dict[tuple[bytes, int], tuple[datetime, tuple[str, ...]]] = {}

    # --- public ------------------------------------------------------------------------------------------

    def validate(self, leaf: x509.Certificate, extra: Sequence[x509.Certificate] = (), *, at: datetime) -> PathResult:
        """Validate ``leaf`` at instant ``at``, building its path through ``extra`` and the policy.

        ``at`` is the time the signature must be judged at (now for live traffic, the signing or receipt time
        for an auditor); a naive ``at`` is taken as UTC.
        """
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        structure = self._structure(leaf, tuple(extra))
        if structure.failure is not None:
            failure = structure.failure
            return PathResult(failure.indication, failure.subindication, failure.errors, structure.chain, (), ())
        timing = _check_validity(structure.windows, at)
        if timing is not None:
            return PathResult(timing.indication, timing.subindication, timing.errors, structure.chain, (), ())
        return self._check_revocation(structure, at)

    # --- structure (cached) ------------------------------------------------------------------------------

    def _structure(self, leaf: x509.Certificate, extra: tuple[x509.Certificate, ...]) -> _Structure:
        key = (leaf, extra)
        now = self._clock()
        hit = self._structures.get(key)
        if hit is not None and now < hit[0]:
            return hit[1]
        structure = self._build(leaf, extra)
        _store(self._structures, key, (now + self._policy.cache_ttl, structure), self._cache_size)
        return structure

    def _build(self, leaf: x509.Certificate, extra: tuple[x509.Certificate, ...]) -> _Structure:
        pool: dict[x509.Name, list[x509.Certificate]] = {}
        for source in (extra, self._policy.intermediates):
            for cert in source:
                pool.setdefault(cert.subject, []).append(cert)
        problems: list[str] = []
        chain = self._extend((leaf,), pool, problems)
        if chain is None:
            errors = [f"no certificate chain from {_describe(leaf)} to a trust anchor"]
            errors.extend(dict.fromkeys(problems))  # de-duplicated, in order
            failure = _Failure(Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, tuple(errors))
            return _Structure((), (), (), failure)
        windows = tuple((_describe(c), c.not_valid_before_utc, c.not_valid_after_utc) for c in chain)
        links = tuple(
            _Link(cert, issuer, windows[i][0], windows[i + 1][0], (_spki_digest(issuer), cert.serial_number))
            for i, (cert, issuer) in enumerate(itertools.pairwise(chain))
        )
        return _Structure(chain, windows, links, _check_constraints(chain))

    def _extend(
        self,
        path: tuple[x509.Certificate, ...],
        pool: dict[x509.Name, list[x509.Certificate]],
        problems: list[str],
    ) -> tuple[x509.Certificate, ...] | None:
        current = path[-1]
        if _identity(current) in self._anchor_ids:
            return path
        if len(path) >= self._max_path_length:
            problems.append(f"path from {_describe(path[0])} is longer than {self._max_path_length} certificates")
            return None
        if current.issuer == current.subject:
            problems.append(f"{UNTRUSTED_ROOT} {_describe(current)}{_UNTRUSTED_ROOT_END}")
            return None
        anchors = self._anchors.get(current.issuer, [])
        others = pool.get(current.issuer, [])
        if not anchors and not others:
            problems.append(
                f"{MISSING_ISSUER} {_name(current.issuer)}, the issuer of {_describe(current)}: it is not a trust "
                "anchor, and neither the document's KeyInfo nor the intermediate certificates supplied hold it"
            )
            return None
        seen = {_identity(c) for c in path}
        # Anchors first: the shortest path to what we trust, and an anchor is never replaced by a look-alike.
        for candidate in [*anchors, *others]:
            if _identity(candidate) in seen:
                continue
            if not _key_ids_match(current, candidate) or not _signed_by(current, candidate):
                problems.append(
                    f"the signature on {_describe(current)} does not verify with the key of {_describe(candidate)}"
                )
                continue
            found = self._extend((*path, candidate), pool, problems)
            if found is not None:
                return found
        return None

    # --- revocation --------------------------------------------------------------------------------------

    def _check_revocation(self, structure: _Structure, at: datetime) -> PathResult:
        policy = self._policy.revocation
        chain = structure.chain
        if policy is RevocationPolicy.NONE:
            warning = "revocation not checked (revocation policy is NONE)"
            return PathResult(Indication.TOTAL_PASSED, None, (), chain, (), (warning,))
        evidence: list[RevocationEvidence] = []
        warnings: list[str] = []
        revoked: list[str] = []
        missing: list[str] = []
        for link in structure.links:
            answer, found, notes = self._answer(link, at)
            if answer is None or found is None:
                hint = (
                    f"no current revocation information for {link.subject}: supply a current CRL from "
                    f"{link.issuer_subject} (--crl) or enable OCSP (--ocsp)"
                )
                missing.append("; ".join([hint, *notes]))
                continue
            evidence.append(found)
            if answer.status == "revoked" and answer.revoked_at is not None:
                if answer.revoked_at <= at:
                    revoked.append(
                        f"{link.subject} was revoked on {answer.revoked_at.isoformat()} "
                        f"({answer.source} from {answer.responder})"
                    )
                else:
                    warnings.append(
                        f"{link.subject} was revoked on {answer.revoked_at.isoformat()}, after the "
                        f"validation time {at.isoformat()}"
                    )
        if revoked:
            return PathResult(
                Indication.TOTAL_FAILED,
                SubIndication.REVOKED,
                tuple(revoked),
                chain,
                tuple(evidence),
                tuple(warnings),
            )
        if missing and policy is RevocationPolicy.REQUIRE:
            return PathResult(
                Indication.INDETERMINATE,
                SubIndication.TRY_LATER,
                tuple(missing),
                chain,
                tuple(evidence),
                tuple(warnings),
            )
        warnings.extend(missing)
        return PathResult(Indication.TOTAL_PASSED, None, (), chain, tuple(evidence), tuple(warnings))

    def _answer(self, link: _Link, at: datetime) -> tuple[_Answer | None, RevocationEvidence | None, tuple[str, ...]]:
        """Return (answer usable at ``at``, its evidence, notes on what failed when there is none)."""
        now = self._clock()
        hit = self._answers.get(link.key)
        if hit is not None and now < hit[0] and _current(hit[1], at):
            return hit[1], hit[2], ()
        notes: list[str] = []
        answer = self._from_crls(link, at, notes)
        if answer is None:
            # CRLs are local and cheap; only the network look-up is skipped after a recent failure.
            miss = self._ocsp_misses.get(link.key)
            if miss is not None and now < miss[0]:
                notes.extend(miss[1])
            else:
                ocsp_notes: list[str] = []
                answer = self._from_ocsp(link, at, ocsp_notes)
                notes.extend(ocsp_notes)
                if answer is None and ocsp_notes:
                    expires = now + min(DEFAULT_NEGATIVE_TTL, self._policy.cache_ttl)
                    _store(self._ocsp_misses, link.key, (expires, tuple(ocsp_notes)), self._cache_size)
        if answer is None:
            return None, None, tuple(notes)
        evidence = _evidence(link, answer)
        ttl = self._policy.cache_ttl
        if answer.next_update is None:
            ttl = min(ttl, DEFAULT_NO_NEXT_UPDATE_TTL)
        entry = (now + ttl, answer, replace(evidence, cached=True))
        _store(self._answers, link.key, entry, self._cache_size)
        self._ocsp_misses.pop(link.key, None)
        return answer, evidence, ()

    def _from_crls(self, link: _Link, at: datetime, notes: list[str]) -> _Answer | None:
        for crl in self._crls.get(link.issuer.subject, []):
            try:
                return self._read_crl(crl, link, at)
            except _RejectedError as exc:
                notes.append(f"CRL of {link.issuer_subject} not used: {exc}")
        return None

    def _read_crl(self, crl: x509.CertificateRevocationList, link: _Link, at: datetime) -> _Answer:
        cache_key = (id(crl), link.key[0])
        ok = self._crl_signature_ok.get(cache_key)
        if ok is None:
            issuer_key = link.issuer.public_key()
            ok = (
                isinstance(issuer_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
                and _hash_allowed(crl.signature_hash_algorithm)
                and crl.is_signature_valid(issuer_key)
                and _may_sign_crls(link.issuer)
            )
            self._crl_signature_ok[cache_key] = ok
        if not ok:
            raise _RejectedError(
                f"its signature does not verify with the key of {link.issuer_subject} (or the key may "
                "not sign CRLs, or the hash is too weak)"
            )
        scoping = [e.oid.dotted_string for e in crl.extensions if e.oid in _SCOPING_CRL_EXTENSIONS]
        if scoping:
            raise _RejectedError(f"partial or delta CRLs are not supported ({', '.join(scoping)})")
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc
        entry = crl.get_revoked_certificate_by_serial_number(link.cert.serial_number)
        return _fresh(
            _Answer(
                source="crl",
                status="good" if entry is None else "revoked",
                revoked_at=None if entry is None else entry.revocation_date_utc,
                this_update=this_update,
                next_update=next_update,
                produced_at=this_update,
                responder=link.issuer_subject,
                der=crl.public_bytes(serialization.Encoding.DER),
            ),
            at,
        )

    def _from_ocsp(self, link: _Link, at: datetime, notes: list[str]) -> _Answer | None:
        fetch = self._policy.ocsp
        if fetch is None:
            return None
        urls = _ocsp_urls(link.cert)
        if not urls:
            notes.append(f"{link.subject} names no OCSP responder")
            return None
        # SHA-1 in the CertID only identifies the certificate (no signature relies on it) and every responder
        # supports it; RFC 6960 responders must.
        request = ocsp.OCSPRequestBuilder().add_certificate(link.cert, link.issuer, hashes.SHA1()).build()  # noqa: S303
        request_der = request.public_bytes(serialization.Encoding.DER)
        for url in urls:
            try:
                response_der = fetch(url, request_der)
            except Exception as exc:  # noqa: BLE001 - any failure of the injected fetcher means "no answer"
                notes.append(f"OCSP responder {url} for {link.subject} failed: {exc}")
                continue
            try:
                return self._read_ocsp(response_der, link, at, url)
            except _RejectedError as exc:
                notes.append(f"OCSP response from {url} for {link.subject} rejected: {exc}")
        return None

    def _read_ocsp(self, der: bytes, link: _Link, at: datetime, url: str) -> _Answer:
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError as exc:
            raise _RejectedError(f"not a DER OCSP response ({exc})") from exc
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _RejectedError(f"responder status {response.response_status.name}")
        signer = _ocsp_signer(response, link.issuer)
        if not _response_signed_by(response, signer):
            raise _RejectedError(f"its signature does not verify with the key of {_describe(signer)}")
        single = _matching_single(response, link)
        this_update = single.this_update_utc
        if this_update > self._clock() + DEFAULT_CLOCK_SKEW:
            raise _RejectedError(f"thisUpdate {this_update.isoformat()} is in the future")
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.UNKNOWN:
            raise _RejectedError(f"the responder does not know {link.subject} (status unknown)")
        revoked = status is ocsp.OCSPCertStatus.REVOKED
        answer = _Answer(
            source="ocsp",
            status="revoked" if revoked else "good",
            revoked_at=single.revocation_time_utc if revoked else None,
            this_update=this_update,
            next_update=single.next_update_utc,
            produced_at=response.produced_at_utc,
            responder=f"{url} ({_describe(signer)})",
            der=der,
        )
        return _fresh(answer, at)


# --- pure helpers -------------------------------------------------------------------------------------------


def _store(cache: dict[_K, _V], key: _K, value: _V, limit: int) -> None:
    """Insert, evicting the oldest entries first when full (dicts keep insertion order)."""
    cache.pop(key, None)
    while len(cache) >= limit:
        del cache[next(iter(cache))]
    cache[key] = value


def untrusted_roots(errors: Iterable[str]) -> list[str]:
    """The subjects of the untrusted roots that path ``errors`` (or texts quoting them) name, in order, once each."""
    pattern = re.compile(re.escape(UNTRUSTED_ROOT) + r" (.+?)" + re.escape(_UNTRUSTED_ROOT_END))
    return list(dict.fromkeys(m.group(1) for error in errors for m in pattern.finditer(error)))


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string(_NAME_OVERRIDES)


def _name(name: x509.Name) -> str:
    return name.rfc4514_string(_NAME_OVERRIDES)


def _identity(cert: x509.Certificate) -> tuple[x509.Name, bytes]:
    """Subject + public key: a re-issued anchor (new validity, same key) is the same anchor."""
    return cert.subject, _spki_digest(cert)


def _spki_digest(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def _key_ids_match(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Skip an issuer whose SKI contradicts the child's AKI (both optional)."""
    try:
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return True
    return aki is None or aki == ski


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Check the child's signature with the issuer's key (RSA PKCS#1 v1.5 or PSS, ECDSA)."""
    try:
        return _verify(
            issuer.public_key(),
            child.signature,
            child.tbs_certificate_bytes,
            child.signature_hash_algorithm,
            child.signature_algorithm_parameters,
        )
    except (UnsupportedAlgorithm, ValueError):
        return False


def _verify(
    key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    parameters: object,
) -> bool:
    if hash_algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey) and isinstance(parameters, padding.PKCS1v15 | padding.PSS):
            key.verify(signature, data, parameters, hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(parameters, ec.ECDSA):
            key.verify(signature, data, parameters)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _hash_allowed(algorithm: hashes.HashAlgorithm | None) -> bool:
    return isinstance(algorithm, _ALLOWED_HASHES)


def _key_problem(cert: x509.Certificate) -> str | None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"{_describe(cert)} has an RSA-{key.key_size} key (at least {MIN_RSA_BITS} bits required)"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _ALLOWED_CURVES:
            return f"{_describe(cert)} has a key on curve {key.curve.name}, which is not allowed"
        return None
    return f"{_describe(cert)} has a {type(key).__name__} key, which is not allowed"


def _hash_problem(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if _hash_allowed(algorithm):
        return None
    name = algorithm.name.upper() if algorithm is not None else cert.signature_algorithm_oid.dotted_string
    return f"{_describe(cert)} is signed with {name}, which is too weak (SHA-256 or stronger required)"


def _check_constraints(chain: tuple[x509.Certificate, ...]) -> _Failure | None:
    """Chain constraints (key usage, CA flags, path length, critical extensions) then crypto constraints."""
    constraint_errors: list[str] = []
    leaf = chain[0]
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not (usage.digital_signature or usage.content_commitment):
        constraint_errors.append(
            f"{_describe(leaf)} may not sign documents: its KeyUsage has neither digitalSignature nor nonRepudiation"
        )
    for depth, issuer in enumerate(chain[1:]):
        constraints = _extension(issuer, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            constraint_errors.append(f"{_describe(issuer)} issued a certificate but is not a CA (BasicConstraints)")
        elif constraints.path_length is not None and depth > constraints.path_length:
            constraint_errors.append(
                f"{_describe(issuer)} allows {constraints.path_length} intermediate CAs below it, the path has {depth}"
            )
        ca_usage = _extension(issuer, x509.KeyUsage)
        if ca_usage is None or not ca_usage.key_cert_sign:
            constraint_errors.append(f"{_describe(issuer)} may not sign certificates: its KeyUsage lacks keyCertSign")
    for cert in chain[:-1]:  # the anchor's extensions are configuration, not claims to check
        unknown = [e.oid.dotted_string for e in cert.extensions if e.critical and e.oid not in _HANDLED_CRITICAL]
        if unknown:
            constraint_errors.append(f"{_describe(cert)} has unsupported critical extensions: {', '.join(unknown)}")
    if constraint_errors:
        return _Failure(Indication.INDETERMINATE, SubIndication.CHAIN_CONSTRAINTS_FAILURE, tuple(constraint_errors))
    crypto_errors = [p for p in map(_key_problem, chain) if p is not None]
    crypto_errors += [p for p in map(_hash_problem, chain[:-1]) if p is not None]
    if crypto_errors:
        return _Failure(Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, tuple(crypto_errors))
    return None


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_validity(windows: tuple[tuple[str, datetime, datetime], ...], at: datetime) -> _Failure | None:
    expired = [
        f"{s} expired on {after.isoformat()} (validation time {at.isoformat()})"
        for s, _, after in windows
        if at > after
    ]
    if expired:
        return _Failure(Indication.TOTAL_FAILED, SubIndication.EXPIRED, tuple(expired))
    early = [
        f"{s} is not valid before {before.isoformat()} (validation time {at.isoformat()})"
        for s, before, _ in windows
        if at < before
    ]
    if early:
        return _Failure(Indication.TOTAL_FAILED, SubIndication.NOT_YET_VALID, tuple(early))
    return None


def _may_sign_crls(issuer: x509.Certificate) -> bool:
    usage = _extension(issuer, x509.KeyUsage)
    return usage is None or usage.crl_sign


def _current(answer: _Answer, at: datetime) -> bool:
    """Say whether ``answer`` may be relied on at ``at``.

    A revocation that happened by ``at`` is proven by any signed answer however old (revocation is final);
    a "good" needs an answer whose nextUpdate is not before ``at``.
    """
    if answer.status == "revoked" and answer.revoked_at is not None and answer.revoked_at <= at:
        return True
    return answer.next_update is None or at <= answer.next_update


def _fresh(answer: _Answer, at: datetime) -> _Answer:
    if not _current(answer, at):
        assert answer.next_update is not None  # _current is True without a nextUpdate
        raise _RejectedError(f"stale at {at.isoformat()} (nextUpdate {answer.next_update.isoformat()})")
    return answer


def _ocsp_urls(cert: x509.Certificate) -> list[str]:
    aia = _extension(cert, x509.AuthorityInformationAccess)
    if aia is None:
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
    """Find who signed ``response``: the CA itself, or a delegated responder it certified for OCSPSigning."""
    for candidate in (issuer, *response.certificates):
        if not _is_responder(response, candidate):
            continue
        if _identity(candidate) == _identity(issuer):
            return issuer
        if candidate.issuer != issuer.subject or not _signed_by(candidate, issuer):
            raise _RejectedError(f"responder {_describe(candidate)} is not certified by {_describe(issuer)}")
        eku = _extension(candidate, x509.ExtendedKeyUsage)
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise _RejectedError(f"responder {_describe(candidate)} lacks the OCSPSigning extended key usage")
        produced = response.produced_at_utc
        if not candidate.not_valid_before_utc <= produced <= candidate.not_valid_after_utc:
            raise _RejectedError(f"responder {_describe(candidate)} was not valid when the response was produced")
        problem = _key_problem(candidate) or _hash_problem(candidate)
        if problem is not None:
            raise _RejectedError(problem)
        return candidate
    raise _RejectedError(f"signed by neither {_describe(issuer)} nor a responder certificate it issued")


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    key_hash = x509.SubjectKeyIdentifier.from_public_key(_public_key(cert)).digest  # SHA-1 of the key bits
    return response.responder_key_hash == key_hash


def _public_key(cert: x509.Certificate) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise _RejectedError(f"{_describe(cert)} has an unsupported {type(key).__name__} key")
    return key


def _response_signed_by(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    try:
        algorithm = response.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return False
    if algorithm is None or not _hash_allowed(algorithm):
        raise _RejectedError("it is signed with a hash weaker than SHA-256")
    if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
        raise _RejectedError("RSASSA-PSS signed responses are not supported")
    key = _public_key(signer)
    parameters: object = padding.PKCS1v15() if isinstance(key, rsa.RSAPublicKey) else ec.ECDSA(algorithm)
    return _verify(key, response.signature, response.tbs_response_bytes, algorithm, parameters)


def _matching_single(response: ocsp.OCSPResponse, link: _Link) -> ocsp.OCSPSingleResponse:
    """Return the single response whose CertID is ``link``'s (hashes recomputed per its algorithm)."""
    expected: dict[str, tuple[bytes, bytes]] = {}
    for single in response.responses:
        if single.serial_number != link.cert.serial_number:
            continue
        algorithm = single.hash_algorithm
        if algorithm.name not in expected:
            try:
                probe = ocsp.OCSPRequestBuilder().add_certificate(link.cert, link.issuer, algorithm).build()
            except (UnsupportedAlgorithm, ValueError, TypeError):
                continue
            expected[algorithm.name] = (probe.issuer_name_hash, probe.issuer_key_hash)
        if (single.issuer_name_hash, single.issuer_key_hash) == expected[algorithm.name]:
            return single
    raise _RejectedError(f"it has no status for {link.subject} (serial {link.cert.serial_number:x})")


def _evidence(link: _Link, answer: _Answer) -> RevocationEvidence:
    return RevocationEvidence(
        cert_subject=link.subject,
        source=answer.source,
        status=answer.status,
        produced_at=answer.produced_at,
        this_update=answer.this_update,
        next_update=answer.next_update,
        revoked_at=answer.revoked_at,
        responder=answer.responder,
        der=answer.der,
    )
