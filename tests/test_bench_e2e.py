"""``lienthong bench e2e --quick``: a fresh durable hub, the broker-only baseline, throughput, latency, memory."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from hub.cli import main

pytestmark = pytest.mark.servers


def test_bench_e2e_reports_rates_latencies_and_memory_against_a_baseline() -> None:
    """The quick run delivers every document and prints rates, the ratio to the broker alone, p50 ≤ p95 ≤ p99."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "e2e", "--quick", "--docs", "100", "--rate", "20", "--rate-seconds", "3", "--json"])
    assert code == 0
    report = json.loads(out.getvalue())
    assert report["benchmark"] == "e2e"
    (run,) = report["runs"]
    assert run["workers"] == 1
    assert run["docs"] == 100
    assert run["docs_per_s"] > 0
    assert run["baseline_docs_per_s"] > 0
    assert run["ratio_to_baseline"] == pytest.approx(run["docs_per_s"] / run["baseline_docs_per_s"], rel=0.01)
    assert run["latency_docs"] == 60
    assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
    assert run["rss_mb_before"] > 0
    assert run["rss_mb_after"] > 0
