"""``lienthong agency credentials``: what an agency's DMS (or the administrator) needs to connect.

``agency credentials ORGANID --json`` prints what an agency's DMS needs to connect (DESIGN.md): Kafka client
properties for librdkafka, kafka-python and Java clients, its topics, and its VXP systemId and secret. The Kafka
password is made when issued and shown once (the broker keeps a salted SCRAM hash only); ``--rotate`` replaces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hub.commands._common import hub_settings, require_hub, server_command, warn
from hub.commands.dms import DEFAULT_DATA

__all__ = ["register_credentials_command"]


def register_credentials_command(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``credentials`` to the ``agency`` group."""
    credentials = group.add_parser("credentials", help="issue an agency's (or the administrator's) credentials")
    who = credentials.add_mutually_exclusive_group(required=True)
    who.add_argument("organ_id", nargs="?", metavar="ORGANID", help="the agency (a local one, in the directory)")
    who.add_argument(
        "--admin", action="store_true", help="the administrator's (reads every topic, writes the directory)"
    )
    credentials.add_argument("--data", type=Path, default=DEFAULT_DATA, metavar="DIR", help="the hub's data folder")
    credentials.add_argument("--rotate", action="store_true", help="replace issued credentials (the old stop working)")
    credentials.add_argument("--json", action="store_true", help="print the credentials as one JSON object")
    credentials.add_argument("--out", type=Path, metavar="FILE", help="write them to FILE (0600) instead of stdout")
    credentials.set_defaults(func=run_credentials)


@server_command("agency credentials")
def run_credentials(args: argparse.Namespace) -> int:
    """Issue the credentials and print (or write) them."""
    from hub.access import issue_credentials  # noqa: PLC0415
    from hub.settings import write_private  # noqa: PLC0415
    from schemas.errors import HubError  # noqa: PLC0415

    try:
        settings = hub_settings(args.data)
    except HubError as exc:
        warn(f"lienthong agency credentials: {exc}")
        return 2
    require_hub(settings)  # the broker keeps the SCRAM users
    try:
        issued = issue_credentials(settings, None if args.admin else args.organ_id, rotate=args.rotate)
    except HubError as exc:
        warn(f"lienthong agency credentials: {exc}")
        return 1
    text = json.dumps(issued, ensure_ascii=False, indent=None if args.json else 2)
    if args.out is not None:
        write_private(args.out, text + "\n")
        print(f"credentials of {issued['organ_id'] or 'the administrator'} written to {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0
