"""Reading trust material from files: anchors, intermediates and CRLs (PEM or DER, a file or a folder).

The one place where certificates enter the hub from disk, for ``lienthong verify``, ``lienthong up`` and the
audit commands alike. ``signer/`` never reads files; it gets the loaded objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography import x509

from schemas.errors import HubError
from signer.policy import RevocationPolicy, TrustPolicy

__all__ = ["CERT_SUFFIXES", "ConfigError", "load_certificates", "load_crl", "trust_policy"]

CERT_SUFFIXES = (".pem", ".crt", ".cer")


class ConfigError(HubError):
    """A setting or a file it points at is unusable; the message names it and says what to do."""


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM/DER file, or in the ``*.pem|*.crt|*.cer`` files of a folder."""
    try:
        is_dir = path.is_dir()
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in CERT_SUFFIXES) if is_dir else [path]
        certs: list[x509.Certificate] = []
        for file in files:
            data = file.read_bytes()
            if is_dir and b"-----BEGIN" in data and b"CERTIFICATE-----" not in data:
                continue  # a CRL or key sitting next to the anchors
            try:
                if b"-----BEGIN" in data:
                    certs.extend(x509.load_pem_x509_certificates(data))
                else:
                    certs.append(x509.load_der_x509_certificate(data))
            except ValueError as exc:
                raise ConfigError(f"{file}: not a certificate: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not certs:
        raise ConfigError(f"{path}: no certificates found")
    return certs


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """A CRL from a PEM or DER file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a CRL: {exc}") from exc


def trust_policy(
    *,
    anchors: Iterable[Path],
    intermediates: Iterable[Path] = (),
    crls: Iterable[Path] = (),
    revocation: RevocationPolicy = RevocationPolicy.REQUIRE,
    ocsp: bool = False,
    pins: Mapping[str, frozenset[str]] | None = None,
) -> TrustPolicy:
    """A ``TrustPolicy`` from files: configured anchors only, CRLs from files, OCSP only when asked for."""
    fetcher = None
    if ocsp:
        from adapters.http_clients import ocsp_fetcher  # noqa: PLC0415 - network code only when asked for

        fetcher = ocsp_fetcher()
    return TrustPolicy(
        anchors=tuple(c for p in anchors for c in load_certificates(p)),
        intermediates=tuple(c for p in intermediates for c in load_certificates(p)),
        crls=tuple(load_crl(p) for p in crls),
        revocation=revocation,
        ocsp=fetcher,
        pins=pins,
    )
