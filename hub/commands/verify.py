"""``lienthong verify FILE|DIR...``: verify signed edXML documents against explicit trust anchors.

Exit 0 only when every document is TOTAL_PASSED. ``--json`` prints one JSON object per file and line.
Nothing is trusted implicitly: anchors come from ``--trust`` only; revocation defaults to ``require``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from hub.commands._common import emit_json, expand_files
from signer.policy import RevocationPolicy, TrustPolicy
from signer.report import Indication, SubIndication, VerificationReport
from signer.verify import Verifier

__all__ = ["TRY_LATER_HINT", "load_directory_pins", "register", "run"]

#: Added to a TRY_LATER verdict: the default policy wants revocation data the user did not give.
TRY_LATER_HINT = (
    "no revocation data: pass --crl FILE (the issuer's CRL), --ocsp (ask the CA's OCSP responder), "
    "or --revocation none to skip the check deliberately"
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CERT_SUFFIXES = (".pem", ".crt", ".cer")


class ConfigError(Exception):
    """The command line points at unusable trust material (exit 2)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``verify`` sub-command."""
    parser = subparsers.add_parser(
        "verify",
        help="verify signed edXML documents (XMLDSig, certificate path, revocation, directory pins)",
        description="Exit 0 only when every document is TOTAL_PASSED.",
    )
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR", type=Path, help="documents, or dirs of *.xml")
    parser.add_argument("--trust", required=True, action="append", type=Path, metavar="PEM|DIR", help="trust anchors")
    parser.add_argument("--untrusted", action="append", default=[], type=Path, metavar="PEM", help="intermediate CAs")
    parser.add_argument("--crl", action="append", default=[], type=Path, metavar="FILE", help="CRL (PEM/DER)")
    parser.add_argument("--ocsp", action="store_true", help="ask the OCSP responders named in certificates")
    parser.add_argument("--at", metavar="ISO-8601", help="validation time (default: now)")
    parser.add_argument("--directory", type=Path, metavar="FILE", help="agency directory YAML (pins each From/OrganId)")
    parser.add_argument(
        "--revocation",
        choices=[p.value for p in RevocationPolicy],
        default=RevocationPolicy.REQUIRE.value,
        help="when revocation data is missing: require (default) fails, if-available warns, none skips",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=run)


def _load_certs(path: Path) -> list[x509.Certificate]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in _CERT_SUFFIXES) if path.is_dir() else [path]
    certs: list[x509.Certificate] = []
    for file in files:
        data = file.read_bytes()
        if path.is_dir() and b"-----BEGIN" in data and b"CERTIFICATE-----" not in data:
            continue  # a CRL or key sitting next to the anchors
        try:
            if b"-----BEGIN" in data:
                certs.extend(x509.load_pem_x509_certificates(data))
            else:
                certs.append(x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise ConfigError(f"{file}: not a certificate: {exc}") from exc
    if not certs:
        raise ConfigError(f"{path}: no certificates found")
    return certs


def _load_crl(path: Path) -> x509.CertificateRevocationList:
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a CRL: {exc}") from exc


def load_directory_pins(text: str) -> Mapping[str, frozenset[str]]:
    """Parse the agency directory YAML (``agencies: [{id, name, route, cert_spki_sha256: [hex]}]``) into pins."""
    try:
        loaded: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"directory: not YAML: {exc}") from exc
    agencies = loaded.get("agencies") if isinstance(loaded, dict) else None
    if not isinstance(agencies, list):
        raise ConfigError("directory: expected a top-level 'agencies' list")
    pins: dict[str, frozenset[str]] = {}
    for index, agency in enumerate(agencies):
        if not isinstance(agency, dict) or not isinstance(agency.get("id"), str):
            raise ConfigError(f"directory: agencies[{index}] needs an 'id'")
        hashes = agency.get("cert_spki_sha256") or []
        if not isinstance(hashes, list):
            raise ConfigError(f"directory: agencies[{index}].cert_spki_sha256 must be a list")
        normalised = set()
        for value in hashes:
            text_value = str(value).strip().lower().replace(":", "")
            if not _HEX64.match(text_value):
                raise ConfigError(f"directory: {agency['id']}: {value!r} is not a SHA-256 hex digest")
            normalised.add(text_value)
        pins[agency["id"]] = pins.get(agency["id"], frozenset()) | frozenset(normalised)
    return pins


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--at: not an ISO-8601 time: {text!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def build_policy(args: argparse.Namespace) -> TrustPolicy:
    """Build the trust policy from the command line (all file reading happens here, not in signer/)."""
    anchors = [cert for path in args.trust for cert in _load_certs(path)]
    intermediates = [cert for path in args.untrusted for cert in _load_certs(path)]
    crls = [_load_crl(path) for path in args.crl]
    ocsp = None
    if args.ocsp:
        from adapters.http_clients import ocsp_fetcher  # noqa: PLC0415 - network code only when asked for

        ocsp = ocsp_fetcher()
    pins = load_directory_pins(args.directory.read_text(encoding="utf-8")) if args.directory else None
    return TrustPolicy(
        anchors=tuple(anchors),
        intermediates=tuple(intermediates),
        crls=tuple(crls),
        revocation=RevocationPolicy(args.revocation),
        ocsp=ocsp,
        pins=pins,
    )


def _unreadable(path: Path, exc: OSError) -> dict[str, Any]:
    return {
        "file": str(path),
        "indication": Indication.TOTAL_FAILED.value,
        "subindication": SubIndication.FORMAT_FAILURE.value,
        "signer": {"subject": None, "organ_id": None},
        "algorithms": {},
        "errors": [f"cannot read the file: {exc.strerror or exc}"],
    }


def _line(path: Path, report: VerificationReport) -> dict[str, Any]:
    out: dict[str, Any] = {"file": str(path), **report.to_json()}
    if report.subindication is SubIndication.TRY_LATER:
        out["errors"] = [*out["errors"], TRY_LATER_HINT]
    return out


def _human(line: dict[str, Any]) -> str:
    verdict = line["indication"] + (f"/{line['subindication']}" if line["subindication"] else "")
    signer = line["signer"]
    who = f" signer={signer['subject']!r} organ_id={signer['organ_id']}" if signer["subject"] else ""
    why = f": {'; '.join(line['errors'])}" if line["errors"] else ""
    return f"{line['file']}: {verdict}{who}{why}"


def run(args: argparse.Namespace) -> int:
    """Verify every file; one line per file; exit 0 only if all are TOTAL_PASSED (2: unusable settings)."""
    try:
        policy = build_policy(args)
        at = _parse_at(args.at)
    except (ConfigError, OSError) as exc:
        print(f"lienthong verify: {exc}", file=sys.stderr)
        return 2
    verifier = Verifier(policy)
    all_passed = True
    for path in expand_files(args.paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            line = _unreadable(path, exc)
        else:
            line = _line(path, verifier.verify(data, at=at))
        all_passed = all_passed and line["indication"] == Indication.TOTAL_PASSED.value
        if args.json:
            emit_json(line)
        else:
            print(_human(line), flush=True)
    return 0 if all_passed else 1
