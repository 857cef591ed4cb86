"""``lienthong vxp-facade``: serve the national axis's API (VXP) to agencies' DMS (``lienthong up`` runs one)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hub.commands._common import server_command
from schemas.errors import HubError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``vxp-facade`` sub-command."""
    parser = subparsers.add_parser(
        "vxp-facade",
        help="serve the VXP API (national axis SDK) at http://HOST:PORT/vxp for the hub in --data",
        description="Reads DATA/settings.yaml (written by `lienthong up`) and DATA/vxp-secrets.yaml (the agencies' "
        "VXP secrets, from `lienthong agency credentials`; read again when it changes).",
    )
    parser.add_argument("--data", type=Path, default=Path("data"), metavar="DIR", help="the hub's data folder")
    parser.add_argument("--port", type=int, help="port (default: the vxp_port setting, 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=run)


@server_command("vxp-facade")
def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; exit 1 with one line if the hub's settings or store cannot be read."""
    from adapters.vxp_facade import run_facade  # noqa: PLC0415 - aiohttp and aiokafka only for this command
    from hub.commands._common import hub_settings, require_hub  # noqa: PLC0415

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_facade(require_hub(hub_settings(args.data), s3=True), host=args.host, port=args.port)
    except HubError as exc:
        print(f"lienthong vxp-facade: {exc}", file=sys.stderr)
        return 1
    return 0
