"""``lienthong worker``: run one hub worker process (``lienthong up`` starts these; scale out by starting more)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hub.commands._common import require_hub, server_command
from hub.trust import ConfigError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``worker`` sub-command."""
    parser = subparsers.add_parser("worker", help="run one hub worker (faust) against the configured broker and store")
    parser.add_argument("--settings", type=Path, metavar="FILE", help="settings YAML (environment LIENTHONG_* wins)")
    parser.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=run)


@server_command("worker")
def run(args: argparse.Namespace) -> int:
    """Build the settings, then run the worker until it is stopped (SIGTERM/SIGINT stop it cleanly)."""
    import faust  # noqa: PLC0415 - faust is heavy; only the worker needs it

    from hub.app import HubWorker  # noqa: PLC0415
    from hub.ledger_mac import ledger_key  # noqa: PLC0415
    from hub.settings import HubSettings  # noqa: PLC0415

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = HubSettings.load(args.settings)
        ledger_key(settings)  # a worker without the key is told so before any server is asked
        require_hub(settings, s3=True)  # faust would retry an absent broker for ever, silently
        worker = HubWorker(settings)
    except ConfigError as exc:
        print(f"lienthong worker: {exc}", file=sys.stderr)
        return 2
    runner = faust.Worker(worker.app, loglevel=args.loglevel, quiet=True)
    # faust's terminal spinner lowers the root logger to DEBUG (to spin on every record): every library's debug
    # call then builds a record the handler drops, a few % of the worker's CPU. No spinner: the level stays as set.
    runner.spinner = None
    # execute_from_commandline runs until the worker stops, then exits the process itself.
    runner.execute_from_commandline()
    return 0  # type: ignore[unreachable]  # faust annotates it NoReturn
