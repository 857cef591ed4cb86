"""``lienthong verify FILE|DIR...``: verify signed edXML documents against explicit trust anchors.

Exit 0 only when every document is TOTAL_PASSED. ``--json`` prints one JSON object per file and line.
Nothing is trusted implicitly: anchors come from ``--trust`` only; revocation defaults to ``require``.
The signatures of PDF attachments are checked under the same policy and shown (``pdf_signatures``); they do not
change the exit status. A file over 4 MiB is read as a stream, and its PDFs are not checked (said so).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.commands._common import emit_json, expand_files
from hub.commands._large import is_large, max_document_bytes, opener
from hub.directory import load_directory
from hub.trust import ConfigError, trust_policy
from schemas import parse
from schemas.errors import InvalidDocument
from schemas.model import Attachment, Edoc
from signer.path import MISSING_ISSUER, untrusted_roots
from signer.policy import RevocationPolicy, TrustPolicy
from signer.report import Indication, SubIndication, VerificationReport
from signer.verify import Verifier

__all__ = ["PDFS_STREAMED", "TRUST_HINT", "TRY_LATER_HINT", "UNTRUSTED_HINT", "build_policy", "register", "run"]

#: Added to a TRY_LATER verdict: the default policy wants revocation data the user did not give.
TRY_LATER_HINT = (
    "no revocation data: pass --crl FILE (the issuer's CRL), --ocsp (ask the CA's OCSP responder), "
    "or --revocation none to skip the check deliberately"
)

#: Added when the path ends at a root that is not an anchor (named in the error before it).
TRUST_HINT = "if you trust that root, pass its certificate with --trust PEM"

#: Added when the path lacks an issuer's certificate (named in the error before it): most often an intermediate CA
#: that the document's KeyInfo does not carry.
UNTRUSTED_HINT = (
    "if that issuer is an intermediate CA, pass its certificate with --untrusted PEM "
    "(if it is a root you trust, with --trust PEM)"
)

#: Added to the warnings of a file read as a stream: its attachments were never held in memory, so not checked.
PDFS_STREAMED = "PDF attachments not checked: the file is over 4 MiB and was read as a stream"


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
    parser.add_argument(
        "--max-bytes", type=int, help="refuse larger files (default: the max_document_bytes setting, 150 MiB)"
    )
    parser.set_defaults(func=run)


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
    return trust_policy(
        anchors=args.trust,
        intermediates=args.untrusted,
        crls=args.crl,
        revocation=RevocationPolicy(args.revocation),
        ocsp=args.ocsp,
        pins=load_directory(args.directory).pins() if args.directory else None,
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
    if report.subindication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND and any(
        error.startswith(MISSING_ISSUER) for error in report.errors
    ):
        out["errors"] = [*out["errors"], UNTRUSTED_HINT]
    if report.subindication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND and untrusted_roots(report.errors):
        out["errors"] = [*out["errors"], TRUST_HINT]
    return out


def _human(line: dict[str, Any], report: VerificationReport | None) -> str:
    verdict = line["indication"] + (f"/{line['subindication']}" if line["subindication"] else "")
    signer = line["signer"]
    who = f" signer={signer['subject']!r} organ_id={signer['organ_id']}" if signer["subject"] else ""
    why = f": {'; '.join(line['errors'])}" if line["errors"] else ""
    text = [f"{line['file']}: {verdict}{who}{why}"]
    if report is not None and report.pdfs is not None:
        for pdf in report.pdfs:
            text.append(f"  PDF {pdf.name}: {pdf.verdict}")
            text.extend(f"    {detail}" for detail in pdf.describe() if pdf.signatures)
    elif report is not None and PDFS_STREAMED in report.warnings:
        text.append(f"  {PDFS_STREAMED}")
    return "\n".join(text)


def _attachments(data: bytes, max_bytes: int) -> tuple[Attachment, ...] | None:
    """The attachments whose PDFs to check; None when the file is no edXML document (its verdict says why)."""
    try:
        message = parse(data, max_bytes=max_bytes).message
    except InvalidDocument:
        return None
    return message.attachments if isinstance(message, Edoc) else ()


def run(args: argparse.Namespace) -> int:
    """Verify every file; one line per file; exit 0 only if all are TOTAL_PASSED (2: unusable settings)."""
    try:
        policy = build_policy(args)
        at = _parse_at(args.at)
    except (ConfigError, OSError) as exc:
        print(f"lienthong verify: {exc}", file=sys.stderr)
        return 2
    max_bytes = args.max_bytes if args.max_bytes is not None else max_document_bytes()
    verifier = Verifier(policy, max_bytes=max_bytes)
    all_passed = True
    for path in expand_files(args.paths):
        try:
            report: VerificationReport | None
            if is_large(path):  # streamed: memory does not grow with the attachments
                report = verifier.verify_stream(opener(path), at=at, size=path.stat().st_size)
                report = dataclasses.replace(report, warnings=(*report.warnings, PDFS_STREAMED))
            else:
                data = path.read_bytes()
                report = verifier.verify(data, at=at, attachments=_attachments(data, max_bytes))
        except OSError as exc:
            report, line = None, _unreadable(path, exc)
        else:
            line = _line(path, report)
        all_passed = all_passed and line["indication"] == Indication.TOTAL_PASSED.value
        if args.json:
            emit_json(line)
        else:
            print(_human(line, report), flush=True)
    return 0 if all_passed else 1
