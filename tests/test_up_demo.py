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
    ports = ["--kafka-port", str(free_port()), "--s3-port", str(free_port()), "--http-port", str(free_port())]
    return [*ports, "--vxp-port", str(free_port())]


def test_demo_delivers_answers_and_restarts_from_its_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo delivers, answers the invalid, goes through the simulated axis both ways, restarts on its secrets."""
    data = tmp_path / "data"
    assert main(["up", "--demo", "--docs", "60", "--exit-when-done", "--data", str(data), *_ports()]) == 0
    out = capsys.readouterr().out
    assert "/vxp" in next(line for line in out.splitlines() if line.startswith("lienthong hub is up"))
    delivered = next(line for line in out.splitlines() if line.strip().startswith("deliveries"))
    done, _, expected = delivered.split()[1:4]
    assert done == expected
    assert "rejected              6 " in out  # a tenth invalid on purpose, each answered
    # Documents for the axis agency went through the simulated national axis, which answered each with 01 and 03.
    axis = next(line for line in out.splitlines() if "from the national axis" in line)
    got, want = int(axis.split()[4]), int(axis.split()[-2])
    assert got == want > 0
    secrets_file = data / "secrets.yaml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "settings.yaml").stat().st_mode) == 0o600
    kept = yaml.safe_load(secrets_file.read_text())
    assert {"kafka_password", "s3_secret_key", "ledger_key", "vxp_kafka_password", "axis_kafka_password"} <= set(kept)
    # A second start reads DATA/settings.yaml and the kept secrets: the broker's log and the store accept them.
    assert main(["up", "--exit-when-done", "--data", str(data), *_ports()]) == 0
    assert yaml.safe_load(secrets_file.read_text()) == kept
    capsys.readouterr()
    assert main(["ledger", "verify", "--data", str(data), "--json"]) == 0
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines() if text.startswith("{")]
    assert line["ok"] is True
