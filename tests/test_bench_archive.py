"""``lienthong bench archive --quick``: every figure printed, the JSON shape, and the request counts it reports."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from hub.cli import main
from hub.embedded.s3 import find_executable
from tests.support import require_tool

pytestmark = pytest.mark.servers

ARCHIVE_KEYS = {
    "document",
    "bytes",
    "documents",
    "docs_per_s",
    "raw_puts_per_s",
    "cost_x_raw",
    "requests_per_doc",
    "bench_cpu_ms_per_doc",
    "rclone_cpu_ms_per_doc",
}


@pytest.fixture(scope="module", autouse=True)
def _rclone() -> None:
    """The bench starts its own rclone: skip locally without it, fail in CI."""
    find_executable("rclone") or require_tool("rclone")


def _json_run(*extra: str) -> dict[str, Any]:
    """Run the quick bench with ``--json`` and return the one object it prints on stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "archive", "--quick", "--threads", "2", "--json", *extra]) == 0
    assert len(out.getvalue().splitlines()) == 1
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


@pytest.fixture(scope="module")
def quick_json() -> dict[str, Any]:
    """One quick run with ``--json`` (metadata sidecars on, as the hub runs on rclone), shared by the tests."""
    return _json_run()


def test_quick_run_prints_every_figure_with_its_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    """The tables name each measurement, its baseline and the aims; progress goes to stderr, not stdout."""
    assert main(["bench", "archive", "--quick", "--threads", "2"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    for expected in (
        "baseline: raw minio put_object of the same bytes",
        "archived/s",
        "raw puts/s",
        "cost × raw",
        "requests/doc",
        "this measures archiving, not verification",
        "baseline: hashlib.sha256 of the same leaves",
        "leaves/s",
        "Merkle proofs at 2,000 leaves",
        "evidence bundle",
        "aims (issue 4)",
    ):
        assert expected in out
    lines = out.splitlines()
    for row in ("5 KB ", "1 MB ", "memory ", "rclone (segments) ", "inclusion ", "consistency ", "export ", "verify "):
        assert any(line.startswith(row) for line in lines), row
    assert "archive: 40 × 5 KB" in captured.err
    assert "archive:" not in out


def test_json_has_every_measurement_as_numbers(quick_json: dict[str, Any]) -> None:
    """``--json`` prints one object: archive, ledger, proof and bundle rows with positive figures, and the aims."""
    result = quick_json
    assert result["benchmark"] == "archive"
    assert result["threads"] == 2
    assert result["sidecars"] is True  # rclone forgets metadata, so the store writes sidecars as the hub's does
    assert result["store_failures"] >= 0  # rclone's rare 500s are measured again, and counted
    assert [row["document"] for row in result["archive"]] == ["5 KB", "1 MB"]
    for row in result["archive"]:
        assert set(row) == ARCHIVE_KEYS
        assert row["docs_per_s"] > 0
        assert row["raw_puts_per_s"] > 0
        assert row["cost_x_raw"] == pytest.approx(row["raw_puts_per_s"] / row["docs_per_s"])
        assert row["requests_per_doc"]["PUT"] >= 2  # the original and its receipt, at least
    assert [row["store"] for row in result["ledger"]] == ["memory", "rclone (segments)"]
    assert all(
        row["leaves"] == 2_000 and row["leaves_per_s"] > 0 and row["sha256_per_s"] > 0 for row in result["ledger"]
    )
    assert [row["proof"] for row in result["proofs"]] == ["inclusion", "consistency"]
    assert all(row["hashes"] > 0 and row["make_us"] > 0 and row["baseline_us"] > 0 for row in result["proofs"])
    assert [row["step"] for row in result["bundle"]] == ["export", "verify"]
    assert all(row["ms"] > 0 and row["baseline_ms"] > 0 for row in result["bundle"])
    assert [set(aim) for aim in result["aims"]] == [{"aim", "value", "unit", "met"}] * 3


def test_without_sidecars_each_document_takes_two_puts_fewer(quick_json: dict[str, Any]) -> None:
    """``--no-sidecars`` drops the sidecar PUT of the original and of the receipt, and the counts show it."""
    with_sidecars = quick_json["archive"][0]["requests_per_doc"]
    without = _json_run("--no-sidecars")
    assert without["sidecars"] is False
    assert without["archive"][0]["requests_per_doc"]["PUT"] == pytest.approx(with_sidecars["PUT"] - 2, abs=0.2)


def test_refuses_nonsense_counts_before_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    """Zero threads is a usage error (exit 2), reported on stderr."""
    assert main(["bench", "archive", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
