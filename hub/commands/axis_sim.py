"""``lienthong axis-sim``: a stand-alone national axis speaking VXP, for tests and the demo (``adapters.axis_sim``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.commands._common import warn

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``axis-sim``."""
    parser = subparsers.add_parser(
        "axis-sim", help="a simulated national axis (VXP) with its own systems and mailboxes, for tests and the demo"
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free one; the ready line says)")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="where mailboxes and sends are kept")
    parser.add_argument(
        "--agencies", type=Path, metavar="FILE", help="registered systems, auto-replies, directory (DIR/agencies.yaml)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the agencies file, then serve until SIGTERM or SIGINT."""
    from adapters.axis_sim import SimConfigError, load_config, serve  # noqa: PLC0415

    try:
        config = load_config(args.agencies or args.data / "agencies.yaml")
    except SimConfigError as exc:
        warn(f"lienthong axis-sim: {exc}")
        return 2
    return serve(config, args.data, host=args.host, port=args.port)
