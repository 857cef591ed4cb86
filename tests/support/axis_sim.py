"""``lienthong axis-sim`` as a subprocess for tests: start it, wait for its ready line, drive its test controls.

>>> with axis_sim(tmp_path / "axis", agencies=file) as axis:
...     client = axis.client("SYS-A", "secret-a")
...     axis.outage(60)
...     axis.stats()["sends"]

It runs as ``sys.executable -m hub axis-sim`` on a free port (``--port 0``: the simulator binds one and says which
in its ready line, so there is no race for the port); ``restart()`` stops it and starts it again on the same port
and data folder. Its stderr goes to ``DATA/axis-sim.log``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from adapters.vxp import VxpClient

__all__ = ["READY_PREFIX", "AxisSim", "axis_sim", "start_axis_sim"]

READY_PREFIX = "axis-sim listening on "
_REPO = Path(__file__).resolve().parents[2]


@dataclass
class AxisSim:
    """A running simulator: its endpoint, data folder and process."""

    endpoint: str  # http://127.0.0.1:PORT/vxp
    port: int
    data: Path
    agencies: Path | None
    process: subprocess.Popen[str] = field(repr=False)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (the test controls live under it)."""
        return self.endpoint.removesuffix("/vxp")

    def client(self, system_id: str, secret: str, *, timeout: float = 10.0) -> VxpClient:
        """A VXP client of this simulator."""
        return VxpClient(self.endpoint, system_id, secret, timeout=timeout)

    def _control(self, path: str, method: str = "POST") -> dict[str, Any]:
        url = self.base + path  # always http://127.0.0.1:PORT/...
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def outage(self, seconds: float) -> dict[str, Any]:
        """Every /vxp call answers 503 UNAVAILABLE for ``seconds`` (0 ends it)."""
        return self._control(f"/_sim/outage?seconds={seconds}")

    def slow(self, seconds: float) -> dict[str, Any]:
        """Each /vxp answer waits ``seconds`` (0 ends it)."""
        return self._control(f"/_sim/slow?seconds={seconds}")

    def stats(self) -> dict[str, Any]:
        """``{"sends": {sha256: count}, "mailboxes": {system: {"edoc": n, "status": n}}}``."""
        return self._control("/_sim/stats", method="GET")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code (SIGKILL if it does not go)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def restart(self, timeout: float = 30.0) -> AxisSim:
        """Stop this simulator and start another on the same port and data folder."""
        self.stop()
        return start_axis_sim(self.data, agencies=self.agencies, port=self.port, timeout=timeout)


def _wait_ready(process: subprocess.Popen[str], timeout: float, log: Path) -> str:
    lines: queue.Queue[str | None] = queue.Queue()
    stdout: IO[str] | None = process.stdout
    assert stdout is not None

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="axis-sim-stdout", daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=timeout)
            if line is None:
                break
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
    except queue.Empty:
        process.kill()
    process.wait(timeout=10)
    detail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"axis-sim did not start (exit {process.returncode}): {detail}")


def start_axis_sim(data: Path, *, agencies: Path | None = None, port: int = 0, timeout: float = 30.0) -> AxisSim:
    """Start ``lienthong axis-sim`` on ``port`` (0: a free one) and return once it is listening."""
    data.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "hub", "axis-sim", "--port", str(port), "--data", str(data)]
    if agencies is not None:
        command += ["--agencies", str(agencies)]
    log = data / "axis-sim.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))}
    with log.open("ab") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=_REPO, env=env)
    endpoint = _wait_ready(process, timeout, log)
    port = int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])
    return AxisSim(endpoint, port, data, agencies, process)


@contextmanager
def axis_sim(data: Path, *, agencies: Path | None = None, port: int = 0, timeout: float = 30.0) -> Iterator[AxisSim]:
    """A simulator for the ``with`` block, stopped at its end."""
    simulator = start_axis_sim(data, agencies=agencies, port=port, timeout=timeout)
    try:
        yield simulator
    finally:
        simulator.stop()
