"""``lienthong dashboard``: the dashboard and ``/metrics`` on their own, for hubs run as separate processes.

``lienthong up`` serves them itself. Where systemd runs each worker, facade and connector as a unit of its own, they
all write their metrics to one ``PROMETHEUS_MULTIPROC_DIR`` on the host, and this command gathers them: the same page,
``/api/summary``, ``/metrics`` and ``/healthz`` as ``up``'s, without ``up``'s own figures (workers configured and
running, restarts), which only a supervisor knows.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from hub.commands._common import server_command

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dashboard`` sub-command."""
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the dashboard and /metrics of the processes writing to PROMETHEUS_MULTIPROC_DIR",
        description="Reads DATA/settings.yaml (the object store, for the ledger's figures) and gathers the metrics "
        "every hub process on this host writes to PROMETHEUS_MULTIPROC_DIR (set the same for all of them).",
    )
    parser.add_argument("--data", type=Path, default=Path("data"), metavar="DIR", help="the hub's data folder")
    parser.add_argument("--port", type=int, help="port (default: the http_port setting, 6066)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.set_defaults(func=run)


@server_command("dashboard")
def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; exit 2 with one line when there is no metrics folder to gather."""
    from hub.commands._common import hub_settings, require_hub  # noqa: PLC0415
    from hub.dashboard import Dashboard, DashboardServer  # noqa: PLC0415 - aiohttp only for this command
    from hub.figures import live_agency_figures  # noqa: PLC0415
    from hub.metrics import collecting_registry, forget_dead_processes  # noqa: PLC0415

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not folder or not Path(folder).is_dir():
        print(
            "lienthong dashboard: set PROMETHEUS_MULTIPROC_DIR to the folder the hub's processes write their metrics "
            f"to (now {folder or 'unset'}; the same value for the workers, facade and connector)",
            file=sys.stderr,
        )
        return 2
    settings = require_hub(hub_settings(args.data), kafka=False, s3=True)
    port = args.port if args.port is not None else settings.http_port
    figures = live_agency_figures(settings.open_store(max_connections=2))

    def registries() -> tuple[CollectorRegistry]:
        forget_dead_processes(Path(folder))
        return (collecting_registry(),)

    server = DashboardServer(Dashboard(registries, agency_figures=figures), port, host=args.host)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"dashboard at http://{args.host}:{port}/ (metrics of {folder})", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0
