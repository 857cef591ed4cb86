"""A child server process: start it, wait until its TCP port answers, stop it (politely, then firmly), or kill it.

Shared by ``lienthong up`` and the test fixtures so that both start the real servers the same way. Servers bind
127.0.0.1; their output goes to a log file whose tail is shown when they fail to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

from schemas.errors import HubError

__all__ = ["DEFAULT_START_TIMEOUT", "ManagedProcess", "ServerStartError", "free_port", "wait_for_port"]

DEFAULT_START_TIMEOUT = 30.0  # seconds; the servers here are ready in a few
_STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


class ServerStartError(HubError):
    """An embedded server did not start; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float, host: str = "127.0.0.1", alive: subprocess.Popen[bytes] | None = None
) -> bool:
    """Wait until ``host:port`` accepts a connection; False on timeout or if ``alive`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


class ManagedProcess:
    """One server process listening on ``port`` of 127.0.0.1, logging to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """How the process ended (negative: the signal that killed it); None while it runs or before it started."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Start the process and wait until its port answers; ``ServerStartError`` with its log tail otherwise."""
        return self.launch().wait_listening(timeout=timeout)

    def launch(self) -> Self:
        """Start the process without waiting (servers that only listen once their peers run: a Kafka quorum)."""
        if self.running:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 - argv is built by our code, never from user text
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the children in order
        )
        return self

    def wait_listening(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Wait until the port answers; kill the process and raise ``ServerStartError`` with its log otherwise."""
        if self._proc is None or not wait_for_port(self.port, timeout=timeout, alive=self._proc):
            self.kill()
            raise ServerStartError(
                f"{self.name} did not start on 127.0.0.1:{self.port}; its log says:\n{self.log_tail()}"
            )
        return self

    def stop(self, *, grace: float = _STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL at once (crash tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_log()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
