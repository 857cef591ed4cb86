"""``lienthong axis-connector``: the national-axis connector (``adapters.axis_connector``) for a hub's data folder.

``lienthong up`` runs it itself when ``axis_url`` is set; run it on its own to see its log in the terminal.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hub.commands._common import require_hub, server_command, warn
from schemas.errors import HubError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``axis-connector``."""
    parser = subparsers.add_parser(
        "axis-connector",
        help="send lienthong.axis.outbound to the national axis and bring its documents in (needs axis_url)",
    )
    parser.add_argument(
        "--data", type=Path, default=Path("data"), metavar="DIR", help="the hub's data folder (settings.yaml, secrets)"
    )
    parser.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=run)


@server_command("axis-connector")
def run(args: argparse.Namespace) -> int:
    """Read DIR/settings.yaml (LIENTHONG_* wins), then run the connector until SIGTERM or SIGINT."""
    from adapters.axis_connector import run_connector  # noqa: PLC0415
    from hub.settings import HubSettings  # noqa: PLC0415

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings_file = args.data / "settings.yaml"
    try:
        settings = HubSettings.load(settings_file if settings_file.is_file() else None, data_dir=args.data)
        if settings.axis_url:  # else run_connector says what is missing
            # The axis itself may be down: the connector retries it with backoff, as it does while running.
            require_hub(settings, s3=True)
        return run_connector(settings)
    except HubError as exc:
        warn(f"lienthong axis-connector: {exc}")
        return 2
