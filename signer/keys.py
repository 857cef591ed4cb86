"""Key sources for signing: PEM files' bytes, PKCS#12 bundles and PKCS#11 tokens (HSMs).

Every source yields a ``SigningKey``: the certificate, the XMLDSig signature method URI, and ``sign(data)``
returning the XMLDSig ``SignatureValue`` bytes (PKCS#1 v1.5 for RSA, raw ``r||s`` for ECDSA). Keys are
refused when they are too weak to produce a signature the verifier would accept (RSA < 2048 bits, curves
other than P-256/P-384) or when the certificate does not match the key.

The callers own the bytes: nothing here reads files or the environment. ``Pkcs11Key.open`` loads the
PKCS#11 module named in the URI, which is the one unavoidable exception (the key never leaves the token).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12

from schemas.errors import HubError
from signer._xmldsig import ECDSA_SHA256, ECDSA_SHA384, RSA_SHA256

__all__ = [
    "MIN_RSA_BITS",
    "PemKey",
    "Pkcs11Key",
    "Pkcs12Key",
    "SigningKey",
    "SigningKeyError",
    "parse_pkcs11_uri",
]

#: The verifier refuses smaller RSA keys, so the signer refuses to make signatures with them.
MIN_RSA_BITS = 2048

_EC_METHODS: dict[str, tuple[str, hashes.HashAlgorithm, int]] = {
    "secp256r1": (ECDSA_SHA256, hashes.SHA256(), 32),
    "secp384r1": (ECDSA_SHA384, hashes.SHA384(), 48),
}


class SigningKeyError(HubError):
    """A key source cannot be used: wrong password, weak key, key and certificate do not match, no token."""


@runtime_checkable
class SigningKey(Protocol):
    """A private key able to produce XMLDSig signature values, with its certificate."""

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's certificate (goes first in KeyInfo/X509Data)."""
        ...

    @property
    def algorithm(self) -> str:
        """The XMLDSig SignatureMethod URI this key signs with."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the XMLDSig SignatureValue over ``data`` (the canonical SignedInfo)."""
        ...


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _method_for(public_key: object) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise SigningKeyError(f"RSA-{public_key.key_size} is too weak; at least {MIN_RSA_BITS} bits")
        return RSA_SHA256
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _EC_METHODS:
            raise SigningKeyError(f"curve {public_key.curve.name} is not supported (P-256 or P-384)")
        return _EC_METHODS[public_key.curve.name][0]
    raise SigningKeyError(f"unsupported key type {type(public_key).__name__} (RSA or ECDSA only)")


@dataclass(frozen=True, eq=False)
class PemKey:
    """An in-memory private key (from PEM or PKCS#12) and its certificate; ``chain``: issuers to include."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    algorithm: str = field(init=False)

    def __post_init__(self) -> None:
        public = self.private_key.public_key()
        cert_key = self.certificate.public_key()
        if not isinstance(cert_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or _spki(cert_key) != _spki(public):
            raise SigningKeyError("the certificate is not for this private key")
        object.__setattr__(self, "algorithm", _method_for(public))

    @classmethod
    def load(cls, key_pem: bytes, cert_pem: bytes, password: bytes | None = None) -> PemKey:
        """Load a PEM private key (PKCS#8 or traditional, optionally encrypted) and its PEM certificate.

        Further certificates after the first in ``cert_pem`` become ``chain``.
        """
        try:
            key = serialization.load_pem_private_key(key_pem, password=password)
            certs = x509.load_pem_x509_certificates(cert_pem)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"cannot load the key or certificate: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SigningKeyError(f"unsupported key type {type(key).__name__} (RSA or ECDSA only)")
        return cls(key, certs[0], tuple(certs[1:]))

    def sign(self, data: bytes) -> bytes:
        """PKCS#1 v1.5 / SHA-256 for RSA; raw ``r||s`` ECDSA as XMLDSig wants it."""
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        _, hash_algorithm, size = _EC_METHODS[key.curve.name]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_algorithm)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class Pkcs12Key(PemKey):
    """A key, its certificate and chain from a PKCS#12 (.p12/.pfx) bundle."""

    @classmethod
    def load(  # type: ignore[override]
        cls, p12_bytes: bytes, password: bytes | None
    ) -> Pkcs12Key:
        """Open a PKCS#12 bundle; its additional certificates become ``chain``."""
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(p12_bytes, password)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"cannot open the PKCS#12 bundle: {exc}") from exc
        if key is None or cert is None:
            raise SigningKeyError("the PKCS#12 bundle lacks a private key or its certificate")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SigningKeyError(f"unsupported key type {type(key).__name__} (RSA or ECDSA only)")
        return cls(key, cert, tuple(extra))


def parse_pkcs11_uri(uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """Split an RFC 7512 ``pkcs11:`` URI into (path attributes, query attributes), percent-decoded.

    ``id`` stays percent-decoded as a latin-1 string of its bytes; use ``.encode("latin-1")`` to get them.
    """
    if not uri.startswith("pkcs11:"):
        raise SigningKeyError("a PKCS#11 URI starts with 'pkcs11:'")
    rest = uri[len("pkcs11:") :]
    path_part, _, query_part = rest.partition("?")

    def split(text: str, sep: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in filter(None, text.split(sep)):
            name, eq, value = item.partition("=")
            if not eq:
                raise SigningKeyError(f"PKCS#11 URI attribute {name!r} has no value")
            out[name] = unquote(value, encoding="latin-1")
        return out

    return split(path_part, ";"), split(query_part, "&")


class Pkcs11Key:
    """A private key that stays inside a PKCS#11 token; signing happens in the token.

    Open with :meth:`open`; close with :meth:`close` (or use as a context manager). Not thread-safe and not
    fork-safe: one ``Pkcs11Key`` per process.
    """

    def __init__(self, session: Any, private_key: Any, certificate: x509.Certificate) -> None:
        self._session = session
        self._key = private_key
        self._certificate = certificate
        self._algorithm = _method_for(certificate.public_key())
        self.chain: tuple[x509.Certificate, ...] = ()

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's certificate."""
        return self._certificate

    @property
    def algorithm(self) -> str:
        """The SignatureMethod URI (from the certificate's key)."""
        return self._algorithm

    @classmethod
    def open(  # noqa: C901 - URI fields map one by one onto token look-ups
        cls, uri: str, *, cert: x509.Certificate | None = None, module: str | None = None
    ) -> Pkcs11Key:
        """Open the token and private key named by an RFC 7512 URI.

        The URI's ``module-path`` (or ``module``) names the PKCS#11 library, ``pin-value`` the user PIN; the
        path attributes ``token``, ``serial``, ``object`` (label) and ``id`` select the key. The certificate
        is         ``cert`` if given, else the token's certificate object with the same label/id.
        """
        import pkcs11  # noqa: PLC0415 - optional dependency (extra "hsm"), needed only here
        from pkcs11 import Attribute, ObjectClass  # noqa: PLC0415

        path, query = parse_pkcs11_uri(uri)
        module_path = module or query.get("module-path")
        if not module_path:
            raise SigningKeyError("the PKCS#11 URI needs module-path=... (the token's library)")
        token_filter: dict[str, str] = {}
        if "token" in path:
            token_filter["token_label"] = path["token"]
        if "serial" in path:
            token_filter["token_serial"] = path["serial"]
        try:
            library = pkcs11.lib(module_path)
            token = library.get_token(**token_filter)
            session = token.open(user_pin=query.get("pin-value"))
        except pkcs11.PKCS11Error as exc:
            raise SigningKeyError(f"cannot open the PKCS#11 token: {type(exc).__name__} {exc}") from exc
        except RuntimeError as exc:  # python-pkcs11 raises RuntimeError for a library it cannot load
            raise SigningKeyError(f"cannot load PKCS#11 module {module_path}: {exc}") from exc
        selector: dict[Any, Any] = {}
        if "object" in path:
            selector[Attribute.LABEL] = path["object"]
        if "id" in path:
            selector[Attribute.ID] = path["id"].encode("latin-1")
        try:
            keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, **selector}))
            if len(keys) != 1:
                msg = f"the PKCS#11 URI matches {len(keys)} private keys; exactly one needed"
                raise SigningKeyError(msg)  # noqa: TRY301
            if cert is None:
                certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, **selector}))
                if len(certs) != 1:
                    raise SigningKeyError(  # noqa: TRY301
                        f"found {len(certs)} certificates with the key's label/id on the token; pass cert="
                    )
                cert = x509.load_der_x509_certificate(bytes(certs[0][Attribute.VALUE]))
            return cls(session, keys[0], cert)
        except BaseException:
            session.close()
            raise

    def sign(self, data: bytes) -> bytes:
        """Sign inside the token (PKCS#1 v1.5 with SHA-256; ECDSA over a host-side hash, raw ``r||s``)."""
        from pkcs11 import Mechanism  # noqa: PLC0415

        if self._algorithm == RSA_SHA256:
            return bytes(self._key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
        name = "sha256" if self._algorithm == ECDSA_SHA256 else "sha384"
        # CKM_ECDSA signs a precomputed hash and returns r||s, exactly XMLDSig's encoding.
        return bytes(self._key.sign(hashlib.new(name, data).digest(), mechanism=Mechanism.ECDSA))

    def close(self) -> None:
        """Close the token session."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
