"""Verify a signed edXML document like a trust service, fast.

A narrow verifier: parse once (``schemas._safe.parse_xml``), check the profile (one enveloped signature, last
child of the header of the root being processed, one ``Reference URI=""``), canonicalise once, hash, one
public-key operation, then the certificate path (``signer.path.PathValidator``, cached) and the directory pin
of the sender's ``From/OrganId``. Untrusted input never raises: every outcome is a ``VerificationReport``.

Order of verdicts (the first failing step decides the indication; every error is reported):
profile → FORMAT_FAILURE; digest → HASH_FAILURE; signature value → SIG_CRYPTO_FAILURE (all TOTAL_FAILED);
legacy or disallowed algorithms, weak keys → INDETERMINATE / CRYPTO_CONSTRAINTS_FAILURE (a TOTAL_FAILED
path result still wins); the path result; the pin → INDETERMINATE / SIG_CONSTRAINTS_FAILURE.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from schemas._names import DSIG_NS
from schemas._parse import STREAM_THRESHOLD_BYTES
from schemas._reader import element_path
from schemas._safe import DEFAULT_MAX_BYTES, parse_xml
from schemas._stream import Scan, memory_chunks, scan
from schemas.errors import InvalidDocument
from signer import _xmldsig, legacy
from signer._stream_c14n import DigestConfig, ReferenceDigest
from signer.organ import certificate_organ_id
from signer.path import PathValidator
from signer.pdf import PdfVerifier
from signer.report import Indication, RevocationEvidence, SignerInfo, SubIndication, VerificationReport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from schemas.model import Attachment
    from signer.policy import TrustPolicy

__all__ = ["DEFAULT_CERT_CACHE_SIZE", "Verifier", "verify_document"]

#: Decoded certificates kept per Verifier: agencies number in the thousands, certificates per agency few.
DEFAULT_CERT_CACHE_SIZE = 4096

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha1": hashes.SHA1,
    "md5": hashes.MD5,
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Cert:
    """A decoded certificate with what verification asks of it repeatedly."""

    cert: x509.Certificate
    der: bytes
    public_key: object
    spki_sha256: str
    cert_sha256: str
    subject: str
    organ_id: str | None  # the OrganId the certificate itself names (signer.organ)


class _Failure(Exception):
    """Stop verification with this indication."""

    def __init__(self, indication: Indication, sub: SubIndication, error: str) -> None:
        self.indication = indication
        self.sub = sub
        super().__init__(error)


def _signer_info(entry: _Cert, organ_id: str | None) -> SignerInfo:
    cert = entry.cert
    return SignerInfo(
        subject=entry.subject,
        organ_id=organ_id,
        cert_organ_id=entry.organ_id,
        spki_sha256=entry.spki_sha256,
        cert_sha256=entry.cert_sha256,
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


class Verifier:
    """Verify edXML signatures under one ``TrustPolicy``; reuse one instance (it caches certificates, paths).

    ``clock`` gives "now" when ``verify`` is called without ``at``; inject a fixed one in tests. ``max_bytes``
    caps the documents it reads (the hub's ``max_document_bytes``). ``pdf`` judges the signatures of PDF
    attachments under the same policy, sharing this verifier's path cache (``with_pdfs``).
    """

    def __init__(
        self, policy: TrustPolicy, *, clock: Callable[[], datetime] = _utc_now, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self._policy = policy
        self._max_bytes = max_bytes
        self._clock = clock
        self._paths = PathValidator(policy, clock=clock)
        self.pdf = PdfVerifier(policy, paths=self._paths, clock=clock)
        self._certs: dict[str, _Cert] = {}
        self._chain_info: dict[x509.Certificate, tuple[str, bytes]] = {}

    @property
    def policy(self) -> TrustPolicy:
        """The trust policy every verification applies."""
        return self._policy

    def verify(
        self, data: bytes, *, at: datetime | None = None, attachments: Iterable[Attachment] | None = None
    ) -> VerificationReport:
        """Verify ``data`` (the exact bytes received) at instant ``at`` (default: the clock's now).

        Documents over ``STREAM_THRESHOLD_BYTES`` take ``verify_stream``'s path (same verdicts, bounded memory).
        With ``attachments`` (the parsed document's), the report also carries the verdict on every PDF among them.
        """
        if attachments is not None:
            report = self.verify(data, at=at)
            assert report.validation_time is not None
            return self.with_pdfs(report, attachments, at=report.validation_time)
        if isinstance(data, bytes | bytearray) and STREAM_THRESHOLD_BYTES < len(data) <= self._max_bytes:
            whole = bytes(data)
            return self.verify_stream(lambda: memory_chunks(whole), at=at, size=len(whole))
        when = at if at is not None else self._clock()
        try:
            whole_sha256 = hashlib.sha256(data).hexdigest()
        except TypeError:
            whole_sha256 = ""
        state = _State(when, whole_sha256)
        return self._report(state, lambda: self._verify(data, state))

    def verify_stream(
        self, open_chunks: Callable[[], Iterable[bytes]], *, at: datetime | None = None, size: int | None = None
    ) -> VerificationReport:
        """Verify a document read as chunks of bytes, in memory that does not grow with its attachments.

        ``open_chunks`` returns a fresh iterator over the document's bytes (a file, an S3 object); it is called
        once, or twice when the signature follows megabytes of text it must digest. ``size``, when known, refuses
        an oversized document before reading. The verdicts and errors are those of ``verify``.
        """
        state = _State(at if at is not None else self._clock(), "")
        return self._report(state, lambda: self._verify_stream(open_chunks, size, state))

    def with_pdfs(
        self, report: VerificationReport, attachments: Iterable[Attachment], *, at: datetime
    ) -> VerificationReport:
        """``report`` with the verdict on each PDF among ``attachments`` (``signer.pdf``), judged at ``at``."""
        return dataclasses.replace(report, pdfs=self.pdf.verify_attachments(attachments, at=at))

    def _report(self, state: _State, run: Callable[[], None]) -> VerificationReport:
        try:
            run()
        except _Failure as failure:
            state.fail(failure.indication, failure.sub, str(failure))
        except InvalidDocument as exc:
            state.fail(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, *(str(p) for p in exc.problems))
        except _xmldsig.ProfileError as exc:
            state.fail(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, str(exc.problem))
        except (etree.LxmlError, ValueError, TypeError, UnicodeError) as exc:
            state.fail(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                f"the document cannot be processed: {type(exc).__name__}: {exc}",
            )
        return state.report()

    # -- the steps ---------------------------------------------------------------------------------------

    def _verify(self, data: bytes, state: _State) -> None:
        root = parse_xml(data, max_bytes=self._max_bytes)

        def whole_digest(hash_name: str, exclusive: bool, prefixes: tuple[str, ...]) -> bytes:
            with _xmldsig.detached(parsed.element):
                canonical = _xmldsig.canonical_document(root, exclusive=exclusive, prefixes=prefixes)
            return _xmldsig.digest(hash_name, canonical)

        parsed = _xmldsig.parse_signature(root)
        self._check(parsed, whole_digest, state)

    def verify_scanned(
        self,
        skeleton: Scan,
        sink: ReferenceDigest,
        open_chunks: Callable[[], Iterable[bytes]],
        *,
        at: datetime | None = None,
        size: int | None = None,
    ) -> VerificationReport:
        """``verify_stream`` of a document already read by ``scan`` with ``sink`` (a ``ReferenceDigest()``).

        The caller parsed it in that same pass. ``open_chunks`` is read only when the Signature came after more text
        than the sink holds (the digest is then taken in a second pass).
        """
        state = _State(at if at is not None else self._clock(), "")
        return self._report(state, lambda: self._verify_skeleton(skeleton, sink, open_chunks, size, state))

    def _verify_stream(self, open_chunks: Callable[[], Iterable[bytes]], size: int | None, state: _State) -> None:
        sink = ReferenceDigest()
        try:
            skeleton = scan(open_chunks(), max_bytes=self._max_bytes, size=size, sink=sink)
        except InvalidDocument as exc:
            if exc.reason != "TOO_LARGE":  # the report names the bytes it refused, as verify's does
                state.whole_sha256 = _sha256(open_chunks())
            raise
        self._verify_skeleton(skeleton, sink, open_chunks, size, state)

    def _verify_skeleton(
        self,
        skeleton: Scan,
        sink: ReferenceDigest,
        open_chunks: Callable[[], Iterable[bytes]],
        size: int | None,
        state: _State,
    ) -> None:
        state.whole_sha256 = skeleton.sha256
        root = skeleton.root
        assert root is not None

        def streamed_digest(hash_name: str, exclusive: bool, prefixes: tuple[str, ...]) -> bytes:
            wanted = DigestConfig(exclusive=exclusive, prefixes=prefixes, hash_name=hash_name)
            if sink.config == wanted and sink.digest is not None:
                return sink.digest
            # The Signature came after too much text to hold (or was read differently): digest in a second pass.
            again = ReferenceDigest(wanted)
            second = scan(open_chunks(), max_bytes=self._max_bytes, size=size, sink=again, build=False)
            if second.sha256 != skeleton.sha256:
                raise _xmldsig.ProfileError("", "the document changed while it was being read")
            assert again.digest is not None
            return again.digest

        self._check(_xmldsig.parse_signature(root), streamed_digest, state)

    def _check(
        self,
        parsed: _xmldsig.ParsedSignature,
        reference_digest: Callable[[str, bool, tuple[str, ...]], bytes],
        state: _State,
    ) -> None:
        state.organ_id = _xmldsig.from_organ_id(parsed.header)
        sig_method, digest_method = parsed.signature_method, parsed.digest_method
        state.algorithms = {"signature": sig_method, "digest": digest_method, "c14n": parsed.c14n_method}
        if parsed.reference_c14n != parsed.c14n_method:
            state.algorithms["reference_c14n"] = parsed.reference_c14n

        digest_name = _xmldsig.DIGEST_METHODS.get(digest_method)
        method = _xmldsig.SIGNATURE_METHODS.get(sig_method)
        if digest_name is None or method is None:
            unknown = digest_method if digest_name is None else sig_method
            raise _Failure(
                Indication.INDETERMINATE,
                SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                f"unsupported algorithm {unknown!r}",
            )

        # SignedInfo first, in document context (inclusive c14n sees the ancestors' namespaces).
        signed_info = _xmldsig.canonical_element(
            parsed.signed_info,
            exclusive=parsed.c14n_method == _xmldsig.EXC_C14N,
            prefixes=parsed.c14n_prefixes,
        )
        computed = reference_digest(digest_name, parsed.reference_exclusive, parsed.reference_prefixes)
        if not hmac.compare_digest(computed, parsed.digest_value):
            raise _Failure(
                Indication.TOTAL_FAILED,
                SubIndication.HASH_FAILURE,
                f"{element_path(parsed.signed_info)}/Reference: "
                "the digest does not match the document "
                "(the signed content was changed)",
            )

        certs = [self._cert(text) for text in parsed.certificates]
        leaf = self._signing_cert(certs, method, parsed.signature_value, signed_info, state)
        state.leaf = leaf
        if parsed.key_value is not None:
            _check_key_value(parsed.key_value, leaf)

        self._crypto_constraints(sig_method, digest_method, state)
        extra = [c.cert for c in certs if c is not leaf]
        self._path(leaf, extra, state)
        self._pin(leaf, state)

    def _cert(self, text: str) -> _Cert:
        cached = self._certs.get(text)
        if cached is not None:
            return cached
        der = _xmldsig.b64decode(text, "KeyInfo/X509Data/X509Certificate")
        try:
            cert = x509.load_der_x509_certificate(der)
            public_key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise _xmldsig.ProfileError("KeyInfo/X509Data/X509Certificate", f"not a certificate: {exc}") from exc
        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        entry = _Cert(
            cert,
            der,
            public_key,
            hashlib.sha256(spki).hexdigest(),
            hashlib.sha256(der).hexdigest(),
            cert.subject.rfc4514_string(),
            certificate_organ_id(cert),
        )
        if len(self._certs) >= DEFAULT_CERT_CACHE_SIZE:
            self._certs.clear()
        self._certs[text] = entry
        return entry

    def _described(self, cert: x509.Certificate) -> tuple[str, bytes]:
        """(subject, DER) of a chain certificate, cached: path results repeat the same few certificates."""
        found = self._chain_info.get(cert)
        if found is None:
            if len(self._chain_info) >= DEFAULT_CERT_CACHE_SIZE:
                self._chain_info.clear()
            found = (cert.subject.rfc4514_string(), cert.public_bytes(serialization.Encoding.DER))
            self._chain_info[cert] = found
        return found

    def _signing_cert(
        self, certs: list[_Cert], method: tuple[str, str], value: bytes, signed_info: bytes, state: _State
    ) -> _Cert:
        """Find the certificate whose key verifies the signature; the one that issued no other goes first."""
        if len(certs) == 1:
            ordered = certs
        else:
            issuers = {c.cert.issuer for c in certs if c.cert.issuer != c.cert.subject}
            ordered = sorted(certs, key=lambda c: c.cert.subject in issuers)
        for entry in ordered:
            if _signature_ok(entry.public_key, method, value, signed_info):
                return entry
        state.leaf = ordered[0]
        raise _Failure(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CRYPTO_FAILURE,
            "SignatureValue: the signature does not verify with the key of any certificate in KeyInfo",
        )

    def _crypto_constraints(self, sig_method: str, digest_method: str, state: _State) -> None:
        reason = legacy.legacy_reason(sig_method, digest_method)
        if reason is not None:  # reached only when the digest and the signature value did verify: say so
            state.add(
                Indication.INDETERMINATE,
                SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                f"the digest and the signature value are mathematically valid, but {reason}",
            )
        for uri, allowed, what in (
            (sig_method, self._policy.signature_algorithms, "signature"),
            (digest_method, self._policy.digest_algorithms, "digest"),
        ):
            if uri not in allowed and reason is None:
                state.add(
                    Indication.INDETERMINATE,
                    SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                    f"{what} algorithm {uri} is not allowed by the trust policy",
                )
        # Key sizes and curves of every certificate, the leaf included, are the path validator's to judge.

    def _path(self, leaf: _Cert, extra: list[x509.Certificate], state: _State) -> None:
        try:
            result = self._paths.validate(leaf.cert, extra, at=state.when)
        except Exception as exc:  # noqa: BLE001 - untrusted certificates must never escape as an exception
            state.add(
                Indication.INDETERMINATE,
                SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                f"certificate path validation failed: {type(exc).__name__}: {exc}",
            )
            return
        state.chain = tuple(self._described(c) for c in result.chain)
        state.revocation = tuple(result.revocation)
        state.warnings.extend(result.warnings)
        indication = Indication(result.indication)
        if indication is not Indication.TOTAL_PASSED:
            sub = SubIndication(result.subindication) if result.subindication else None
            state.add(indication, sub, *(result.errors or ("the certificate path is not valid",)), path=True)

    def _pin(self, leaf: _Cert, state: _State) -> None:
        pins = self._policy.pins
        if pins is None:
            state.warnings.append("no agency directory: the signer's key is not checked against From/OrganId")
            return
        organ_id = state.organ_id
        if organ_id is None:
            state.add(
                Indication.INDETERMINATE,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                "MessageHeader/From/OrganId is missing: the signer cannot be checked against the directory",
            )
            return
        if leaf.spki_sha256 not in pins.get(organ_id, ()):
            state.add(
                Indication.INDETERMINATE,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"the signer's key (SPKI SHA-256 {leaf.spki_sha256}) is not listed in the directory for "
                f"From/OrganId {organ_id}",
            )


def _sha256(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _signature_ok(public_key: object, method: tuple[str, str], value: bytes, data: bytes) -> bool:
    family, hash_name = method
    hash_algorithm = _HASHES[hash_name]()
    try:
        if family == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, data, padding.PKCS1v15(), hash_algorithm)
            return True
        if family == "ec" and isinstance(public_key, ec.EllipticCurvePublicKey):
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big"))
            public_key.verify(der, data, ec.ECDSA(hash_algorithm))
            return True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return False


def _check_key_value(key_value: etree._Element, leaf: _Cert) -> None:
    """Refuse a KeyValue that is not exactly the certificate's key (a reader must not see two keys)."""
    ds = "{" + DSIG_NS + "}"
    path = element_path(key_value)
    kids = [c for c in key_value if isinstance(c.tag, str)]
    key = leaf.public_key
    if len(kids) != 1:
        raise _xmldsig.ProfileError(path, "KeyValue must hold exactly one key")
    kind = kids[0]
    if kind.tag == ds + "RSAKeyValue" and isinstance(key, rsa.RSAPublicKey):
        modulus = kind.find(ds + "Modulus")
        exponent = kind.find(ds + "Exponent")
        if modulus is None or exponent is None:
            raise _xmldsig.ProfileError(path, "RSAKeyValue needs Modulus and Exponent")
        numbers = key.public_numbers()
        n = int.from_bytes(_xmldsig.b64decode(modulus.text, path + "/RSAKeyValue/Modulus"), "big")
        e = int.from_bytes(_xmldsig.b64decode(exponent.text, path + "/RSAKeyValue/Exponent"), "big")
        if (n, e) == (numbers.n, numbers.e):
            return
    elif kind.tag == "{" + _xmldsig.DSIG11_NS + "}ECKeyValue" and isinstance(key, ec.EllipticCurvePublicKey):
        point = kind.find("{" + _xmldsig.DSIG11_NS + "}PublicKey")
        if point is None:
            raise _xmldsig.ProfileError(path, "ECKeyValue needs PublicKey")
        encoded = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        if _xmldsig.b64decode(point.text, path + "/ECKeyValue/PublicKey") == encoded:
            return
    raise _xmldsig.ProfileError(path, "KeyValue does not match the signing certificate's key")


class _State:
    """What one verification has found so far; turns into the report."""

    def __init__(self, when: datetime, whole_sha256: str) -> None:
        self.when = when
        self.whole_sha256 = whole_sha256
        self.indication = Indication.TOTAL_PASSED
        self.sub: SubIndication | None = None
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.algorithms: dict[str, str] = {}
        self.organ_id: str | None = None
        self.leaf: _Cert | None = None
        self.chain: tuple[tuple[str, bytes], ...] = ()
        self.revocation: tuple[RevocationEvidence, ...] = ()

    def fail(self, indication: Indication, sub: SubIndication, *errors: str) -> None:
        """Record a decisive failure: it sets the verdict, whatever was found before."""
        self.indication, self.sub = indication, sub
        self.errors.extend(errors)

    def add(self, indication: Indication, sub: SubIndication | None, *errors: str, path: bool = False) -> None:
        """Record a finding: the first one decides, except that TOTAL_FAILED from the path wins."""
        self.errors.extend(errors)
        if self.indication is Indication.TOTAL_PASSED or (
            path and indication is Indication.TOTAL_FAILED and self.indication is not Indication.TOTAL_FAILED
        ):
            self.indication, self.sub = indication, sub

    def report(self) -> VerificationReport:
        """Freeze what was found into the report."""
        leaf = self.leaf
        chain = self.chain
        return VerificationReport(
            indication=self.indication,
            subindication=self.sub,
            errors=tuple(self.errors),
            signer=_signer_info(leaf, self.organ_id) if leaf is not None else None,
            chain=tuple(subject for subject, _ in chain),
            chain_der=tuple(der for _, der in chain),
            revocation=self.revocation,
            algorithms=self.algorithms,
            signed_bytes_sha256=self.whole_sha256,
            validation_time=self.when,
            warnings=tuple(self.warnings),
        )


def verify_document(data: bytes, policy: TrustPolicy, *, at: datetime | None = None) -> VerificationReport:
    """Verify one document under ``policy`` (builds a fresh ``Verifier``: reuse one for many documents)."""
    return Verifier(policy).verify(data, at=at)
