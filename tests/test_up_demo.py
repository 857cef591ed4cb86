"""``lienthong up --demo`` (what ``make demo`` runs) and a restart from the data folder, as a user types them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from hub.cli import main
from hub.embedded._process import free_port

pytestmark = [pytest.mark.servers, pytest.mark.timeout(600)]


def _ports() -> list[str]:
    return ["--kafka-port", str(free_port()), "--s3-port", str(free_port()), "--http-port", str(free_port())]


def test_demo_delivers_answers_and_restarts_from_its_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo delivers every valid document, answers the invalid ones; `up --data` restarts on the same secrets."""
    data = tmp_path / "data"
    assert main(["up", "--demo", "--docs", "60", "--exit-when-done", "--data", str(data), *_ports()]) == 0
    out = capsys.readouterr().out
    delivered = next(line for line in out.splitlines() if line.strip().startswith("deliveries"))
    done, _, expected = delivered.split()[1:4]
    assert done == expected
    assert "rejected              6 " in out  # a tenth invalid on purpose, each answered
    secrets_file = data / "secrets.yaml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "settings.yaml").stat().st_mode) == 0o600
    kept = yaml.safe_load(secrets_file.read_text())
    # A second start reads DATA/settings.yaml and the kept secrets: the broker's log and the store accept them.
    assert main(["up", "--exit-when-done", "--data", str(data), *_ports()]) == 0
    assert yaml.safe_load(secrets_file.read_text()) == kept
    capsys.readouterr()
    assert main(["ledger", "verify", "--data", str(data), "--json"]) == 0
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines() if text.startswith("{")]
    assert line["ok"] is True
