"""One ``lienthong up --demo`` left running for the whole test session, as a user would leave ``make demo``.

Tests of what an administrator does after the demo (the dashboard, ``report``, the README's commands) share it:
the demo runs once, in its own process, on free ports; the fixture waits for its summary and stops it with
Ctrl-C (SIGINT) at the end of the session. Tests that add traffic to it are marked ``demo_traffic`` and run after
all others, so that a test comparing the hub's figures with the demo's summary sees only the demo's traffic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.embedded._process import free_port

__all__ = ["RunningDemo", "running_demo"]

DEMO_DOCS = 60
_START_TIMEOUT = 420.0
_LAST_SUMMARY_LINE = "  ledger "


def _demo_env() -> dict[str, str]:
    """This process's environment for the demo, without the metrics folder an earlier in-process hub set.

    ``lienthong up`` makes its own; an inherited one (since deleted) would be where its own metrics went.
    """
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class RunningDemo:
    """A running demo hub: its data folder, ports, and what it printed up to its summary."""

    data: Path
    kafka_port: int
    s3_port: int
    http_port: int
    vxp_port: int
    output: str

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address (``/metrics`` beside it)."""
        return f"http://127.0.0.1:{self.http_port}/"

    def summary_line(self, starts_with: str) -> str:
        """The demo summary's line that starts (after indentation) with ``starts_with``."""
        return next(line for line in self.output.splitlines() if line.strip().startswith(starts_with))


@pytest.fixture(scope="session")
def running_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    """``lienthong up --demo --docs 60`` on free ports, waited for until its summary is printed."""
    root = tmp_path_factory.mktemp("running-demo")
    data = root / "data"
    ports = {name: free_port() for name in ("kafka", "s3", "http", "vxp")}
    log_path = root / "up.log"
    argv = [sys.executable, "-m", "hub", "up", "--demo", "--docs", str(DEMO_DOCS), "--data", str(data)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=_demo_env()
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while _LAST_SUMMARY_LINE not in (output := log_path.read_text(encoding="utf-8", errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not reach its summary; its output ends:\n{output[-3000:]}")
            time.sleep(0.5)
        yield RunningDemo(data, ports["kafka"], ports["s3"], ports["http"], ports["vxp"], output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
