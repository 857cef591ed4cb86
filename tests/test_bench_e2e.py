"""``lienthong bench e2e --quick``: a fresh durable hub, the broker-only baseline, throughput, latency, memory, CPU."""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

import pytest

from hub.cli import main

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One quick run (a hub takes tens of seconds to start), read by every test of the module."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "e2e", "--quick", "--docs", "100", "--rate", "20", "--rate-seconds", "3", "--json"])
    assert code == 0
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


def test_bench_e2e_reports_rates_latencies_and_memory_against_a_baseline(report: dict[str, Any]) -> None:
    """The quick run delivers every document and prints rates, the ratio to the broker alone, p50 ≤ p95 ≤ p99."""
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


def test_bench_e2e_reports_cpu_per_document_of_every_process_and_the_rate_it_allows(report: dict[str, Any]) -> None:
    """Each process group's CPU ms per document is positive, ``total`` is their sum, and the CPU bound follows."""
    (run,) = report["runs"]
    cpu = run["cpu_ms_per_doc"]
    assert set(cpu) == {"workers", "kafka", "seaweedfs", "bench client", "total"}
    assert all(isinstance(ms, float) and ms > 0 for ms in cpu.values())
    assert cpu["total"] == pytest.approx(sum(ms for name, ms in cpu.items() if name != "total"), abs=0.01)
    assert run["cpu_bound_docs_per_s"] == pytest.approx(1000 * (os.cpu_count() or 1) / cpu["total"], rel=0.01)
