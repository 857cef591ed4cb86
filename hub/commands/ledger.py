"""``lienthong ledger verify [--data DIR]``: check the whole stored Merkle log and report the first inconsistency.

Every segment (contiguous, parseable, canonical), every signed tree head (signature by a trusted seal
certificate, root recomputed from the segments, times in order), consistency between consecutive heads, and
time-stamps when a TSA anchor is given. The seal certificate trusted is ``--trust`` (default: ``DIR/hub-cert.pem``;
an auditor passes their own copy). Exit 0 when the log is consistent, 1 when it is not, 2 for unusable arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.commands._common import emit_json, server_command
from hub.commands.audit import UsageError, add_store_arguments, data_dir, load_anchors, opened_store
from schemas.errors import HubError
from storage.ledger import SEAL_CERT_FILE, verify_log
from storage.objectstore import StoreUnavailable

__all__ = ["register", "run_verify"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ledger`` group with ``verify``."""
    parser = subparsers.add_parser("ledger", help="the hub's Merkle ledger: check the stored log")
    group = parser.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    verify = group.add_parser(
        "verify",
        help="check every segment and signed tree head; report the first inconsistency",
        description="Exit 0 when the whole log is consistent, 1 when it is not, 2 for unusable arguments.",
    )
    add_store_arguments(verify)
    verify.add_argument(
        "--trust",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="the hub's seal certificate to trust (default: DIR/hub-cert.pem)",
    )
    verify.add_argument(
        "--tsa-trust",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="trust anchor of the time-stamp authority (without it, time-stamps are not checked: a warning)",
    )
    verify.add_argument("--json", action="store_true", help="one JSON object on one line")
    verify.set_defaults(func=run_verify)


@server_command("ledger verify")
def run_verify(args: argparse.Namespace) -> int:
    """Verify the stored log; exit 0 when consistent, 1 when not, 2 for unusable arguments or store."""
    try:
        trust = args.trust or [data_dir(args) / SEAL_CERT_FILE]
        anchors = load_anchors(trust)
        tsa_anchors = load_anchors(args.tsa_trust)
        with opened_store(args) as store:
            report = verify_log(store, anchors, tsa_anchors=tsa_anchors)
    except (UsageError, StoreUnavailable, HubError) as exc:
        print(f"lienthong ledger verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        emit_json(report.to_json())
    else:
        print(report.to_text(), flush=True)
    return 0 if report.ok else 1
