"""``lienthong validate FILE... [--json] [--strict]``: checks that each file is a valid edXML document or status."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.commands._common import emit_json, expand_files, warn
from hub.commands._large import file_chunks, is_large, max_document_bytes
from schemas import InvalidDocument, ParsedDocument, Problem, parse
from schemas._parse import parse_stream

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` sub-command."""
    parser = subparsers.add_parser(
        "validate",
        help="check edXML documents and status messages (exit 0 only when all are valid)",
        description="Check that each FILE (or each *.xml in a DIR) is a valid edXML document or status.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="edXML files or directories")
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    parser.add_argument(
        "--max-bytes",
        type=int,
        help="refuse larger files (default: the max_document_bytes setting, LIENTHONG_MAX_DOCUMENT_BYTES, 150 MiB)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse field quirks (UUID DocumentId, SteeringType 0) instead of warning"
    )
    parser.set_defaults(func=run)


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _parse_file(path: Path, max_bytes: int, *, strict: bool) -> ParsedDocument:
    """Parse ``path``: read whole when small, streamed in chunks when large (bounded memory)."""
    if is_large(path):
        return parse_stream(file_chunks(path), max_bytes=max_bytes, strict=strict, size=path.stat().st_size)
    return parse(path.read_bytes(), max_bytes=max_bytes, strict=strict)


def run(args: argparse.Namespace) -> int:
    """Validate every file; print a verdict each, and its warnings; return 0 only when all are valid."""
    max_bytes = args.max_bytes if args.max_bytes is not None else max_document_bytes()
    all_valid = True
    for path in expand_files(args.files):
        kind: str | None = None
        errors: list[dict[str, str]] = []
        warnings: tuple[Problem, ...] = ()
        try:
            parsed = _parse_file(path, max_bytes, strict=args.strict)
            kind, warnings = parsed.kind, parsed.warnings
        except OSError as exc:
            errors.append({"path": "", "message": f"cannot read file: {exc.strerror or exc}"})
        except InvalidDocument as exc:
            errors = [{"path": p.path, "message": p.message} for p in exc.problems]
            warnings = exc.warnings
        valid = not errors
        all_valid &= valid
        if args.json:
            quirks = [{"path": w.path, "code": w.code, "message": w.message} for w in warnings]
            emit_json({"file": str(path), "valid": valid, "kind": kind, "errors": errors, "warnings": quirks})
            continue
        if valid:
            print(f"{path}: valid {kind}")
        for error in errors:
            warn(f"{path}: {_where(error['path'])}{error['message']}")
        for quirk in warnings:
            warn(f"{path}: warning {quirk.code}: {_where(quirk.path)}{quirk.message}")
    return 0 if all_valid else 1
