"""``hub.up.running``: the hub is stopped completely on SIGTERM, even when a second signal follows the first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hub.up import running

    marker = Path(sys.argv[1])

    class SlowHub:
        def start(self):
            marker.with_suffix(".started").write_text("up")
            return "addresses"

        def stop(self):
            time.sleep(1.5)  # a worker committing and leaving its group
            marker.write_text("stopped")

    try:
        with running(SlowHub()):
            while True:
                time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    """
)


def _stopped_after(tmp_path: Path, signals: list[signal.Signals], *, prelude: str = "") -> str:
    """Run the slow hub in a child, send ``signals`` 0.3 s apart once it started; what its marker says at the end."""
    marker = tmp_path / "hub"
    child = subprocess.Popen([sys.executable, "-c", prelude + CHILD, str(marker)], cwd=Path(__file__).parents[1])
    try:
        deadline = time.monotonic() + 30
        while not marker.with_suffix(".started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for n, signum in enumerate(signals):
            if n:
                time.sleep(0.3)  # now inside stop()
            os.kill(child.pid, signum)
        child.wait(timeout=30)
    finally:
        child.kill()
    return marker.read_text()


def test_a_second_sigterm_does_not_cut_the_stop_short(tmp_path: Path) -> None:
    """SIGTERM twice during the stop (as `timeout` and a shell both send it): the stop still runs to its end."""
    assert _stopped_after(tmp_path, [signal.SIGTERM, signal.SIGTERM]) == "stopped"


def test_ctrl_c_stops_the_hub_even_when_sigint_came_ignored(tmp_path: Path) -> None:
    """Started with SIGINT ignored (a background job, a test runner's worker), SIGINT still stops the hub in full."""
    ignoring = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    assert _stopped_after(tmp_path, [signal.SIGINT], prelude=ignoring) == "stopped"
