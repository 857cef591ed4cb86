"""The ``lienthong`` command line: one sub-command per module in ``hub.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Each module defines ``register(subparsers)`` which adds its sub-command and sets ``func``.
_COMMAND_MODULES = (
    "hub.commands.validate",
    "hub.commands.inspect",
    "hub.commands.sign",
    "hub.commands.verify",
    "hub.commands.bench",
    "hub.commands.worker",
    "hub.commands.audit",
    "hub.commands.ledger",
    "hub.commands.report",
    "hub.commands.dms",
    "hub.commands.deadletter",
    "hub.commands.up",
    "hub.commands.acl",
    "hub.commands.axis_sim",
    "hub.commands.axis_connector",
    "hub.commands.vxp_facade",
    "hub.commands.dashboard",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="lienthong",
        description="lienthong: an interchange hub for signed edXML official documents.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _register_agency(subparsers)
    return parser


def _register_agency(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lienthong agency ACTION``: one group for every module adding agency actions."""
    from hub.commands.agency import register_credentials_command  # noqa: PLC0415
    from hub.commands.agency_directory import register_directory_commands  # noqa: PLC0415

    parser = subparsers.add_parser("agency", help="the agencies the hub serves: signed directory, credentials")
    group = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    register_directory_commands(group)
    register_credentials_command(group)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
