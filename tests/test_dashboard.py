"""The dashboard at ``http://127.0.0.1:HTTP_PORT/``, in headless Chromium against the running demo; its labels.

The browser is Debian's ``chromium`` driven by Playwright (never a browser Playwright downloads). The page is read
as an administrator sees it (the text of its cells), compared with ``/metrics`` and with the demo's summary, and
watched while one more document goes through the hub. A screenshot is left in ``$LIENTHONG_TEST_ARTEFACTS`` (default:
the system's temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hub.cli import main
from hub.dashboard import Dashboard, histogram_quantile
from hub.embedded._process import free_port, wait_for_port
from hub.metrics import OTHER_AGENCY, HubMetrics, agency_label, status_code_label
from tests.support import IN_CI, require_tool
from tests.support.demo_fixtures import RunningDemo

_CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_WAIT_MS = 20_000  # the page polls every 2 s; a document crosses the hub in well under a second
_FIGURES_WAIT_MS = 60_000  # the ledger figures are read every 30 s (DEFAULT_FIGURES_EVERY), off the page's 2 s poll


# --- the bounded agency label (no servers) -------------------------------------------------------------------


def test_agency_label_is_the_organ_id_only_for_agencies_in_the_directory() -> None:
    """A known OrganId is its own label; an unknown, empty or look-alike one is "other"."""
    known = frozenset({"000.00.00.G01", "000.00.00.H02"})
    assert agency_label("000.00.00.G01", known) == "000.00.00.G01"
    assert agency_label("000.00.00.G99", known) == OTHER_AGENCY
    assert agency_label("", known) == OTHER_AGENCY
    assert agency_label("000.00.00.g01", known) == OTHER_AGENCY


def test_invented_organ_ids_add_no_series() -> None:
    """A thousand made-up senders and recipients grow one "other" series, not a thousand."""
    metrics = HubMetrics.create(CollectorRegistry())
    known = frozenset({"000.00.00.G01"})
    for n in range(1000):
        made_up = f"999.00.00.X{n:03d}"
        metrics.count_route("rejected", sender=made_up, recipients=(), status_code="", known=known)
        metrics.count_route("delivered", sender="000.00.00.G01", recipients=[made_up], status_code="", known=known)
        metrics.count_route("relayed", sender=made_up, recipients=(), status_code=f"{n % 20:02d}", known=known)
    series = _series(metrics.registry, "lienthong_agency_documents_total")
    assert series == {
        (("agency", OTHER_AGENCY), ("direction", "refused")): 1000,
        (("agency", "000.00.00.G01"), ("direction", "sent")): 1000,
        (("agency", OTHER_AGENCY), ("direction", "received")): 1000,
    }
    codes = {dict(labels)["code"] for labels in _series(metrics.registry, "lienthong_agency_statuses_total")}
    assert codes == {"01", "02", "03", "04", "05", "06", "other"}
    assert {dict(labels)["agency"] for labels in _series(metrics.registry, "lienthong_agency_statuses_total")} == {
        OTHER_AGENCY
    }


def test_status_codes_outside_01_to_06_are_other() -> None:
    """Progress codes keep their label; recall codes and nonsense share "other"."""
    assert [status_code_label(c) for c in ("01", "06", "13", "16", "", "x" * 99)] == ["01", "06"] + ["other"] * 4


def test_point_in_time_gauges_are_absent_until_set() -> None:
    """The last seal and the CRL nextUpdate are not on /metrics before they are known (no 1970 for alerts)."""
    metrics = HubMetrics.create(CollectorRegistry())
    names = {m.name for m in metrics.registry.collect()}
    assert "lienthong_ledger_last_seal_timestamp_seconds" not in names
    assert "lienthong_crl_next_update_timestamp_seconds" not in names
    metrics.ledger_last_seal.set(1_800_000_000)
    assert _series(metrics.registry, "lienthong_ledger_last_seal_timestamp_seconds") == {(): 1_800_000_000}


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    """p50 of 10 observations split 4/4/2 over buckets 0.1/0.2/+Inf falls a quarter into the second bucket."""
    buckets = [(0.1, 4.0), (0.2, 8.0), (float("inf"), 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.125)
    assert histogram_quantile(0.95, buckets) == 0.2  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_ledger_figures_fill_the_agency_rows_and_a_failing_source_keeps_the_last() -> None:
    """Outstanding and overdue come from the injected provider; "–" (None) before it answers or without it."""
    metrics = HubMetrics.create(CollectorRegistry())
    metrics.count_route("delivered", sender="A", recipients=["B"], status_code="", known={"A", "B"})
    answers: list[Any] = [{"A": {"outstanding": 3, "overdue": 1}}, RuntimeError("ledger unreachable")]

    def figures() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def rows(board: Dashboard) -> dict[str, tuple[Any, Any]]:
        return {a["organ_id"]: (a["outstanding"], a["overdue"]) for a in board.summary()["agencies"]}

    assert rows(Dashboard(lambda: (metrics.registry,))) == {"A": (None, None), "B": (None, None)}
    board = Dashboard(lambda: (metrics.registry,), agency_figures=figures)
    assert rows(board) == {"A": (None, None), "B": (None, None)}
    board.refresh_agency_figures()
    assert rows(board) == {"A": (3, 1), "B": (None, None)}
    board.refresh_agency_figures()  # the source fails: the last figures stay
    assert rows(board) == {"A": (3, 1), "B": (None, None)}


def test_the_page_names_its_files_relatively_and_loads_nothing_from_elsewhere() -> None:
    """No absolute or remote URL in the page or its script: it works offline and under a proxy's sub-path."""
    static = Path(__file__).parent.parent / "hub" / "dashboard" / "static"
    page = (static / "index.html").read_text(encoding="utf-8")
    script = (static / "dashboard.js").read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == [
        "data:,",
        "static/vendor/uPlot.min.css",
        "static/dashboard.css",
        "static/vendor/uPlot.iife.min.js",
        "static/dashboard.js",
        "metrics",
        "static/vendor/uPlot-LICENSE.txt",
    ]
    assert re.findall(r'fetch\("([^"]*)"', script) == ["api/summary"]
    assert not re.search(r"https?://", page + script)


# --- the page against the running demo ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright."""
    chromium = require_tool("chromium")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (pip install -e .[dev])")
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=_CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class OpenPage:
    """The dashboard open in the browser, with what happened to it: loads of the page, script errors."""

    page: Any
    navigations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def locator(self, selector: str) -> Any:
        """The page's elements matching ``selector``."""
        return self.page.locator(selector)


@pytest.fixture(scope="module")
def dashboard(browser: Any, running_demo: RunningDemo) -> Iterator[OpenPage]:
    """The dashboard page, open once for the module and live (it has shown the figures at least once)."""
    from playwright.sync_api import expect  # noqa: PLC0415

    opened = OpenPage(browser.new_page(viewport={"width": 1400, "height": 1000}))
    page = opened.page
    page.on("framenavigated", lambda frame: opened.navigations.append(frame.url) if frame == page.main_frame else None)
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    page.goto(running_demo.dashboard_url)
    expect(page.locator("#state")).to_have_attribute("data-state", "live", timeout=_WAIT_MS)
    yield opened
    page.close()


@pytest.mark.servers
def test_the_page_shows_what_metrics_and_the_demo_summary_say(
    dashboard: OpenPage, running_demo: RunningDemo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deliveries, rejections by reason, dead letters with their replay, agencies, axis and ledger match."""
    from playwright.sync_api import expect  # noqa: PLC0415

    metrics = _metrics(running_demo)
    deliveries = int(running_demo.summary_line("deliveries").split()[1])
    received = metrics["lienthong_agency_documents_total"]
    assert sum(v for labels, v in received.items() if ("direction", "received") in labels) == deliveries
    expect(dashboard.locator("#out-total")).to_have_text(_count(deliveries), timeout=_WAIT_MS)

    rejected = _summary_rejections(running_demo)
    assert rejected, "the demo rejects a tenth of its documents"
    dead = {dict(labels)["reason"]: v for labels, v in metrics["lienthong_dead_letters_total"].items()}
    assert {reason: n for reason, n in dead.items() if n} == rejected
    expect(dashboard.locator("#rejections tbody tr")).to_have_count(len(rejected))
    for reason, n in rejected.items():
        row = dashboard.locator(f'#rejections tr[data-reason="{reason}"]')
        expect(row.locator("td").nth(1)).to_have_text(_count(n))
        letter = dashboard.locator(f'#dead-letters tr[data-reason="{reason}"]')
        expect(letter.locator("td").nth(1)).to_have_text(_count(n))
        expect(letter.locator("code")).to_have_text(f"lienthong deadletter replay --reason {reason}")

    by_agency: dict[str, dict[str, float]] = {}
    for labels, value in received.items():
        named = dict(labels)
        by_agency.setdefault(named["agency"], {})[named["direction"]] = value
    assert len(by_agency) >= 4  # the demo's local agencies and the one behind the axis
    for agency, directions in by_agency.items():
        row = dashboard.locator(f'#agencies tr[data-agency="{agency}"]')
        for direction in ("sent", "received", "refused"):
            expect(row.locator(f"td.{direction}")).to_have_text(_count(directions.get(direction, 0)))
    # Outstanding statuses and overdue documents come from the ledger's history: what `lienthong report` says.
    report = _report_agencies(running_demo, capsys)
    assert sum(row["outstanding"] for row in report.values()) > 0  # the demo answers only some documents
    for agency, row in report.items():
        cells = dashboard.locator(f'#agencies tr[data-agency="{agency}"]')
        expect(cells.locator("td.outstanding")).to_have_text(_count(row["outstanding"]), timeout=_FIGURES_WAIT_MS)
        expect(cells.locator("td.overdue")).to_have_text(_count(row["overdue"]))

    axis_sent = sum(metrics["lienthong_axis_sent_total"].values())
    assert axis_sent > 0
    expect(dashboard.locator("#axis-sent")).to_have_text(_count(axis_sent))
    expect(dashboard.locator("#axis-last-success")).to_contain_text(" ago)")
    ledger_size = next(iter(metrics["lienthong_ledger_size"].values()))
    expect(dashboard.locator("#ledger-size")).to_have_text(_count(ledger_size), timeout=_WAIT_MS)
    assert "lienthong_ledger_last_seal_timestamp_seconds" in metrics
    expect(dashboard.locator("#last-seal")).to_contain_text(" ago)", timeout=_WAIT_MS)
    expect(dashboard.locator("#crl-next-update")).to_contain_text("(in ")
    assert next(iter(metrics["lienthong_held_documents"].values())) == 0  # the demo's CRLs are current
    expect(dashboard.locator("#held")).to_have_text("0")
    expect(dashboard.locator("#workers-running")).to_have_text("1")
    expect(dashboard.locator("#latency-p50")).not_to_have_text("–")
    assert dashboard.errors == []


@pytest.mark.servers
@pytest.mark.demo_traffic
def test_the_page_follows_a_new_document_without_a_reload(
    dashboard: OpenPage, running_demo: RunningDemo, capsys: pytest.CaptureFixture[str]
) -> None:
    """One more document sent with `lienthong send` shows on the open page; a screenshot is kept as an artefact."""
    from playwright.sync_api import expect  # noqa: PLC0415

    from hub.demo import create_demo_material, demo_documents  # noqa: PLC0415

    before = int(dashboard.locator("#out-total").inner_text().replace(",", ""))
    material = create_demo_material(running_demo.data / "demo")
    document = next(d for d in demo_documents(material, 5, start_number=990_001) if d.expect == "delivered")
    sender = dashboard.locator(f'#agencies tr[data-agency="{document.sender}"] td.sent')
    sent_before = int(sender.inner_text())
    path = running_demo.data.parent / "one-more.xml"
    path.write_bytes(document.data)
    credentials = running_demo.data / "demo" / "agencies" / document.sender / "credentials.json"
    assert main(["send", str(path), "--credentials", str(credentials)]) == 0
    capsys.readouterr()

    expect(dashboard.locator("#out-total")).to_have_text(_count(before + len(document.recipients)), timeout=_WAIT_MS)
    expect(sender).to_have_text(_count(sent_before + 1))
    assert dashboard.navigations == [running_demo.dashboard_url]  # loaded once: updated in place
    artefacts = Path(os.environ.get("LIENTHONG_TEST_ARTEFACTS") or tempfile.gettempdir())
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / "dashboard.png"
    dashboard.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size > 10_000


@pytest.mark.servers
def test_only_the_dashboards_paths_answer(running_demo: RunningDemo) -> None:
    """/, /healthz, /metrics, /api/summary and the page's files answer; anything else is 404."""
    base = running_demo.dashboard_url.rstrip("/")
    for path in (
        "/",
        "/healthz",
        "/metrics",
        "/api/summary",
        "/static/dashboard.js",
        "/static/vendor/uPlot-LICENSE.txt",
    ):
        with urllib.request.urlopen(base + path, timeout=10) as response:  # noqa: S310 - the hub on 127.0.0.1
            assert response.status == 200, path
    for path in (
        "/index.html",
        "/static/",
        "/static/nope.js",
        "/static/../up.py",
        "/metrics/x",
        "/api",
        "/favicon.ico",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=10)  # noqa: S310 - the hub on 127.0.0.1
        assert refused.value.code == 404, path


@pytest.mark.servers
def test_lienthong_dashboard_alone_gathers_what_the_hubs_processes_write(running_demo: RunningDemo) -> None:
    """`lienthong dashboard` (one unit per process) serves the same deliveries from PROMETHEUS_MULTIPROC_DIR."""
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(running_demo.data / "metrics")}
    argv = [sys.executable, "-m", "hub", "dashboard", "--data", str(running_demo.data), "--port", str(port)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_for_port(port, timeout=30, alive=process), process.communicate(timeout=5)[0].decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/summary", timeout=10) as response:
            alone = json.load(response)
        with urllib.request.urlopen(running_demo.dashboard_url + "api/summary", timeout=10) as response:  # noqa: S310
            in_up = json.load(response)
        assert alone["documents"]["out_total"] == in_up["documents"]["out_total"] > 0
        assert alone["workers"]["running"] is None  # a supervisor's figure: `up` knows it, this command does not
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_lienthong_dashboard_without_a_metrics_folder_says_what_to_set(tmp_path: Path) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR the command names the variable in one line and exits 2."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    argv = [sys.executable, "-m", "hub", "dashboard", "--data", str(tmp_path)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "set PROMETHEUS_MULTIPROC_DIR" in done.stderr


# --- helpers --------------------------------------------------------------------------------------------------


def _series(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for m in registry.collect() for s in m.samples if s.name == name}


def _metrics(demo: RunningDemo) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` as {sample name: {sorted labels: value}}."""
    with urllib.request.urlopen(demo.dashboard_url + "metrics", timeout=10) as response:  # noqa: S310 - 127.0.0.1
        text = response.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _report_agencies(demo: RunningDemo, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    """``lienthong report --format json`` of today on the demo's data: {OrganId: its row}."""
    capsys.readouterr()
    assert main(["report", "--data", str(demo.data), "--from", "today", "--to", "today", "--format", "json"]) == 0
    return {row["organ_id"]: row for row in json.loads(capsys.readouterr().out)["agencies"]}


def _summary_rejections(demo: RunningDemo) -> dict[str, float]:
    """The demo summary's rejected lines: {reason: count}."""
    lines = demo.output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("rejected"))
    reasons: dict[str, float] = {}
    for line in lines[first + 1 :]:
        if not line.startswith("    "):
            break
        reason, n = line.split()
        reasons[reason] = float(n)
    return reasons


def _count(value: float) -> str:
    return f"{round(value):,}"
