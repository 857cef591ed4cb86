"""``lienthong bench archive --quick``: every figure printed, the JSON shape, and the request counts it reports."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from hub.cli import main
from tests.support.s3_fixtures import weed_executable

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
    "server_cpu_ms_per_doc",
}


@pytest.fixture(scope="module", autouse=True)
def _weed() -> None:
    """The bench starts its own weed mini: skip locally without it, fail in CI."""
    weed_executable()


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
    """One quick run with ``--json``, shared by the tests."""
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
    rows = ("5 KB ", "1 MB ", "memory ", "SeaweedFS (segments) ", "inclusion ", "consistency ", "export ", "verify ")
    for row in rows:
        assert any(line.startswith(row) for line in lines), row
    assert "archive: 40 × 5 KB" in captured.err
    assert "archive:" not in out


def test_json_has_every_measurement_as_numbers(quick_json: dict[str, Any]) -> None:
    """``--json`` prints one object: archive, ledger, proof and bundle rows with positive figures, and the aims."""
    result = quick_json
    assert result["benchmark"] == "archive"
    assert result["threads"] == 2
    assert result["server"] == "SeaweedFS weed mini"
    assert result["store_failures"] >= 0  # a failed repetition is measured again, and counted
    assert [row["document"] for row in result["archive"]] == ["5 KB", "1 MB"]
    for row in result["archive"]:
        assert set(row) == ARCHIVE_KEYS
        assert row["docs_per_s"] > 0
        assert row["raw_puts_per_s"] > 0
        assert row["cost_x_raw"] == pytest.approx(row["raw_puts_per_s"] / row["docs_per_s"])
        assert 1 <= row["requests_per_doc"]["PUT"] <= 2  # the original, and its share of the ledger's segments
        assert "HEAD" not in row["requests_per_doc"]  # create-only writes ask the server nothing first
    assert [row["store"] for row in result["ledger"]] == ["memory", "SeaweedFS (segments)"]
    assert all(
        row["leaves"] == 2_000 and row["leaves_per_s"] > 0 and row["sha256_per_s"] > 0 for row in result["ledger"]
    )
    assert [row["proof"] for row in result["proofs"]] == ["inclusion", "consistency"]
    assert all(row["hashes"] > 0 and row["make_us"] > 0 and row["baseline_us"] > 0 for row in result["proofs"])
    assert [row["step"] for row in result["bundle"]] == ["export", "verify"]
    assert all(row["ms"] > 0 and row["baseline_ms"] > 0 for row in result["bundle"])
    assert [set(aim) for aim in result["aims"]] == [{"aim", "value", "unit", "met"}] * 3


def test_refuses_nonsense_counts_before_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    """Zero threads is a usage error (exit 2), reported on stderr."""
    assert main(["bench", "archive", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
