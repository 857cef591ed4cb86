"""``lienthong acl plan [--apply]``: the Kafka ACLs and SCRAM users the hub's directory needs.

On the embedded broker ``lienthong up`` applies them at every start. On an operator's own cluster, run
``acl plan`` to review them and ``acl plan --apply`` to create the ACLs through the Admin API (as the hub's
principal from ``DATA/settings.yaml``, which must be allowed to alter ACLs); agencies' users are created when their
credentials are issued (``lienthong agency credentials ORGANID``), since only then is a password handed to someone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.commands._common import emit_json, hub_settings, lienthong_command, require_hub, server_command, warn
from hub.commands.dms import DEFAULT_DATA

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acl plan``."""
    acl = subparsers.add_parser("acl", help="the Kafka ACLs and SCRAM users of the directory")
    group = acl.add_subparsers(dest="acl_command", required=True, metavar="COMMAND")
    plan = group.add_parser("plan", help="print the ACLs and users the directory needs (--apply creates the ACLs)")
    plan.add_argument("--data", type=Path, default=DEFAULT_DATA, metavar="DIR", help="the hub's data folder")
    plan.add_argument("--apply", action="store_true", help="create the ACLs through the Admin API")
    plan.add_argument("--json", action="store_true", help="one JSON object per ACL and per user")
    plan.set_defaults(func=run_plan)


@server_command("acl plan")
def run_plan(args: argparse.Namespace) -> int:
    """Print the plan; with ``--apply`` create it."""
    from hub.access import access_plan, apply_plan, plan_users, read_directory, user_exists  # noqa: PLC0415
    from schemas.errors import HubError  # noqa: PLC0415

    try:
        settings = hub_settings(args.data)
    except HubError as exc:
        warn(f"lienthong acl plan: {exc}")
        return 2
    require_hub(settings)  # the plan comes from the directory topic
    connection = settings.kafka
    try:
        directory = read_directory(settings)
        grants = access_plan(directory, hub_user=settings.kafka_username, consumer_group=settings.consumer_group)
        users = {
            user: user_exists(connection, user) for user in plan_users(directory, hub_user=settings.kafka_username)
        }
        if args.apply:
            apply_plan(connection, grants)
    except HubError as exc:
        warn(f"lienthong acl plan: {exc}")
        return 1
    for grant in grants:
        if args.json:
            emit_json({"acl": str(grant), "applied": args.apply})
        else:
            print(grant)
    for user, exists in users.items():
        if args.json:
            emit_json({"user": user, "has_credentials": exists})
        elif not exists:
            print(f"user {user}: no credentials yet" + _how_to_issue(user))
    if args.apply and not args.json:
        print(f"applied {len(grants)} ACLs on {connection.bootstrap}")
    return 0


def _how_to_issue(user: str) -> str:
    from hub.access import ADMIN_USER, agency_prefix  # noqa: PLC0415

    if user == ADMIN_USER:
        return f" ({lienthong_command()} agency credentials --admin)"
    if user.startswith(agency_prefix()):
        return f" ({lienthong_command()} agency credentials {user.removeprefix(agency_prefix())})"
    return ""
