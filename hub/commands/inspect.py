"""``lienthong inspect FILE``: what a document says, and whether (and how) it is signed."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.commands._common import emit_json, warn
from schemas import DEFAULT_MAX_BYTES, Edoc, InvalidDocument, ParsedDocument, parse

__all__ = ["describe", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``inspect`` sub-command."""
    parser = subparsers.add_parser(
        "inspect",
        help="show sender, recipients, subject, attachments and signature algorithms of a document",
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.set_defaults(func=run)


def describe(doc: ParsedDocument) -> dict[str, object]:
    """A plain summary of ``doc`` (the JSON of ``inspect --json``)."""
    message = doc.message
    summary: dict[str, object] = {
        "kind": doc.kind,
        "dialect": doc.dialect.value,
        "size": len(doc.original),
        "from": {"organ_id": message.sender.organ_id, "name": message.sender.organ_name},
    }
    if isinstance(message, Edoc):
        summary |= {
            "document_id": message.document_id,
            "to": [{"organ_id": r.organ_id, "name": r.organ_name} for r in message.recipients],
            "subject": message.subject,
            "priority": message.priority,
            "business_doc_type": message.business.bussiness_doc_type if message.business else 0,
            "attachments": [
                {"name": a.attachment_name, "type": a.content_type, "size": len(a.content)} for a in message.attachments
            ],
        }
    else:
        summary |= {
            "status_code": message.status_code,
            "response_for": message.response_for.document_id,
            "description": message.description,
        }
    sig = doc.signature
    summary["signature"] = (
        {
            "signature_method": sig.signature_method,
            "digest_methods": list(sig.digest_methods),
            "canonicalization": sig.canonicalization_method,
            "certificates": sig.certificates,
        }
        if sig
        else None
    )
    return summary


def _print_human(path: Path, summary: dict[str, object]) -> None:
    print(f"{path}: {summary['kind']} ({summary['dialect']}, {summary['size']} bytes)")
    sender = summary["from"]
    assert isinstance(sender, dict)
    print(f"  from:        {sender['organ_id']}  {sender['name']}")
    if summary["kind"] == "edoc":
        print(f"  document id: {summary['document_id']}")
        for recipient in summary["to"]:  # type: ignore[attr-defined]
            print(f"  to:          {recipient['organ_id']}  {recipient['name']}")
        print(f"  subject:     {summary['subject']}")
        print(f"  priority:    {summary['priority']}")
        attachments = summary["attachments"]
        assert isinstance(attachments, list)
        if not attachments:
            print("  attachments: none")
        for item in attachments:
            print(f"  attachment:  {item['name']}  {item['type']}  {item['size']} bytes")
    else:
        print(f"  status:      {summary['status_code']} for {summary['response_for']}")
        print(f"  description: {summary['description']}")
    sig = summary["signature"]
    if sig is None:
        print("  signature:   none")
    else:
        assert isinstance(sig, dict)
        print(f"  signature:   {sig['signature_method']} ({sig['certificates']} certificate(s))")
        print(f"  digests:     {', '.join(sig['digest_methods'])}")
        print(f"  c14n:        {sig['canonicalization']}")
        print("  (present only; `lienthong verify` checks it)")


def run(args: argparse.Namespace) -> int:
    """Print the summary of one file; 1 when it cannot be read or is invalid."""
    path = Path(args.file)
    try:
        doc = parse(path.read_bytes(), max_bytes=args.max_bytes)
    except OSError as exc:
        warn(f"{path}: cannot read file: {exc.strerror or exc}")
        return 1
    except InvalidDocument as exc:
        for problem in exc.problems:
            warn(f"{path}: {problem}")
        return 1
    summary = describe(doc)
    if args.json:
        emit_json({"file": str(path), **summary})
    else:
        _print_human(path, summary)
    return 0
