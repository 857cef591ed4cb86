"""``lienthong validate FILE... [--json]``: checks that each file is a valid edXML document or status."""

from __future__ import annotations

import argparse

from hub.commands._common import emit_json, expand_files, warn
from schemas import DEFAULT_MAX_BYTES, InvalidDocument, parse

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
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="refuse larger files before parsing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate every file; print a verdict each; return 0 only when all are valid."""
    all_valid = True
    for path in expand_files(args.files):
        kind: str | None = None
        errors: list[dict[str, str]] = []
        try:
            data = path.read_bytes()
        except OSError as exc:
            errors.append({"path": "", "message": f"cannot read file: {exc.strerror or exc}"})
        else:
            try:
                kind = parse(data, max_bytes=args.max_bytes).kind
            except InvalidDocument as exc:
                errors = [{"path": p.path, "message": p.message} for p in exc.problems]
        valid = not errors
        all_valid &= valid
        if args.json:
            emit_json({"file": str(path), "valid": valid, "kind": kind, "errors": errors})
        elif valid:
            print(f"{path}: valid {kind}")
        else:
            for error in errors:
                where = f"{error['path']}: " if error["path"] else ""
                warn(f"{path}: {where}{error['message']}")
    return 0 if all_valid else 1
