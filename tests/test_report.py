"""``hub.figures`` on hand-made events, the report's forms, and ``lienthong report`` over a running demo."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.cli import main
from hub.commands.audit import UsageError, opened_store
from hub.commands.report import format_for, parse_day
from hub.embedded._process import free_port
from hub.figures import (
    AGENCY_FIELDS,
    AGENCY_TOTAL,
    RESPONSE_CODES,
    TOTAL_OF,
    LedgerFigures,
    LedgerTail,
    day_bounds,
    nearest_rank,
    read_figures,
)
from hub.report_formats import CSV_COLUMNS, TOTAL_ROW, render_csv, render_html
from schemas._checks import VIETNAM_TZ
from storage.ledger import EventKind, Ledger, LedgerEvent
from storage.objectstore import MemoryObjectStore

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # 09:00 in Vietnam
AGENCIES = ("000.01.00.H41", "000.02.00.H41", "000.03.00.H41", "000.00.00.G22")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _event(kind, sha, doc_id, actor, at, verdict="ok", **detail):  # noqa: PLR0917 - an event's fields, in order
    return LedgerEvent(kind=kind, sha256=sha, document_id=doc_id, actor=actor, time=at, verdict=verdict, detail=detail)


def _doc_id(sender: str, n: int) -> str:
    return f"{sender},2026/06/01,{n}/LT"


def document(sender, n, at, recipients, *, routes=None, due=None, origin=None, algorithm="rsa-sha256", old=False):
    """The events ``hub.process`` writes for a delivered document (``old``: without the facts added for figures)."""
    sha, doc_id = _sha(f"doc {sender} {n}"), _doc_id(sender, n)
    facts = {} if old else {"message": "edoc", "algorithm": algorithm}
    if due is not None and not old:
        facts["due_date"] = due.isoformat()
    if origin and not old:
        facts["origin"] = origin
    events = [
        _event(EventKind.RECEIVED, sha, doc_id, sender, at, "received", **facts),
        _event(EventKind.VERIFIED, sha, doc_id, "hub", at, "TOTAL_PASSED", receipt_sha256=_sha("r")),
        _event(EventKind.ARCHIVED, sha, doc_id, "hub", at, "stored", key="k"),
    ]
    for recipient in recipients:
        route = {} if old else {"route": (routes or {}).get(recipient, "local")}
        events.append(_event(EventKind.DELIVERED, sha, doc_id, "hub", at, "sent", recipient=recipient, **route))
    return doc_id, events


def status(reporter, doc_id, doc_sender, code, at, *, old=False):
    """The events of a relayed status ``code`` from ``reporter`` about ``doc_id``."""
    sha = _sha(f"status {reporter} {doc_id} {code} {at}")
    facts = {} if old else {"message": "status", "status_code": code, "algorithm": "rsa-sha256"}
    return [
        _event(EventKind.RECEIVED, sha, doc_id, reporter, at, "received", **facts),
        _event(EventKind.VERIFIED, sha, doc_id, "hub", at, "TOTAL_PASSED", receipt_sha256=_sha("r")),
        _event(EventKind.ARCHIVED, sha, doc_id, "hub", at, "stored", key="k"),
        _event(EventKind.STATUS_RELAYED, sha, doc_id, "hub", at, "sent", recipient=doc_sender, route="local"),
    ]


def refused(sender, n, at, reason, *, message="edoc"):
    """The events of a refused input."""
    sha, doc_id = _sha(f"bad {sender} {n}"), _doc_id(sender, n)
    facts = {"message": message} if message else {}
    return [
        _event(EventKind.RECEIVED, sha, doc_id if message else "", sender, at, "received", **facts),
        _event(EventKind.REJECTED, sha, doc_id if message else "", "hub", at, reason),
    ]


# --- the fold ---------------------------------------------------------------------------------------------------


@st.composite
def histories(draw):
    """Any interleaving of documents, statuses (some about unknown documents), refusals and axis events."""
    events: list[LedgerEvent] = []
    delivered: list[tuple[str, str, tuple[str, ...]]] = []
    at = T0
    for n in range(draw(st.integers(0, 25))):
        at += timedelta(seconds=draw(st.integers(0, 40_000)))
        sender = draw(st.sampled_from(AGENCIES))
        what = draw(st.sampled_from(["document", "old document", "status", "old status", "refused", "garbage", "axis"]))
        if what in {"document", "old document"}:
            recipients = tuple(draw(st.sets(st.sampled_from([a for a in AGENCIES if a != sender]), min_size=1)))
            routes = {"000.00.00.G22": "axis"}
            due = draw(st.none() | st.dates(date(2026, 5, 30), date(2026, 6, 3)))
            origin = draw(st.sampled_from([None, "axis"]))
            doc_id, more = document(
                sender, n, at, recipients, routes=routes, due=due, origin=origin, old=what[0] == "o"
            )
            delivered.append((doc_id, sender, recipients))
            events += more
        elif what in {"status", "old status"} and delivered:
            doc_id, doc_sender, recipients = draw(st.sampled_from(delivered))
            reporter = draw(st.sampled_from(recipients))
            code = draw(st.sampled_from(["01", "03", "05", "06"]))
            events += status(reporter, doc_id, doc_sender, code, at, old=what[0] == "o")
        elif what == "refused":
            events += refused(sender, n, at, draw(st.sampled_from(["HASH_FAILURE", "REVOKED"])))
        elif what == "garbage":
            events += refused(sender, n, at, "MALFORMED", message="")
        elif what == "axis" and delivered:
            doc_id, _, recipients = delivered[-1]
            verdict, kind = draw(
                st.sampled_from([("sent-to-axis", EventKind.DELIVERED), ("refused-by-axis", EventKind.REJECTED)])
            )
            events.append(_event(kind, _sha(doc_id), doc_id, "axis-connector", at, verdict, recipient=recipients[0]))
    return events


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(0, 3), st.integers(0, 3))
def test_totals_are_the_sums_over_agencies(events, start, length):
    """For any history and period, every total is the sum of its agency field, and the maps add up too."""
    first = date(2026, 6, 1) + timedelta(days=start - 1)
    since, until = day_bounds(first, first + timedelta(days=length))
    figures = LedgerFigures(since, until)
    figures.add_all(events)
    at = until + timedelta(days=1)
    agencies = figures.agencies(at)
    totals = figures.totals(at)
    for total, field in TOTAL_OF.items():
        assert totals[total] == sum(a[field] for a in agencies), total
    assert totals["statuses_relayed"] == sum(a["statuses_received"] for a in agencies)
    assert totals["refused"] == sum(totals["refused_by_reason"].values())
    assert totals["documents_sent"] == sum(totals["algorithms"].values())
    assert totals["deliveries"] == sum(totals["routes"].values())
    for code in RESPONSE_CODES:
        assert totals["response_seconds"][code]["count"] == sum(a["response_seconds"][code]["count"] for a in agencies)
    volume = Counter()
    for day in figures.volume("day"):
        volume.update({k: v for k, v in day.items() if k != "date"})
    assert volume["documents_sent"] == totals["documents_sent"]
    assert volume["deliveries"] == totals["deliveries"]
    assert volume["refused"] == totals["refused"]


@given(st.lists(st.floats(0, 1e7, allow_nan=False), min_size=1, max_size=200), st.floats(0.01, 1.0))
def test_nearest_rank_is_a_value_with_that_share_at_or_below_it(values, fraction):
    """The nearest-rank percentile is one of the values; at least that share is ≤ it, less than that share < it."""
    p = nearest_rank(values, fraction)
    assert p in values
    assert sum(v <= p for v in values) >= fraction * len(values)
    assert sum(v < p for v in values) < fraction * len(values)


@given(st.lists(st.integers(0, 10 * 86400), min_size=1, max_size=40))
def test_response_times_median_and_p90(delays):
    """The time from each delivery to its recipient's 03 gives the median and nearest-rank p90 of the delays."""
    figures = LedgerFigures()
    for n, delay in enumerate(delays):
        doc_id, events = document(AGENCIES[0], n, T0, [AGENCIES[1]])
        figures.add_all(events)
        figures.add_all(status(AGENCIES[1], doc_id, AGENCIES[0], "03", T0 + timedelta(seconds=delay)))
    times = next(a for a in figures.agencies(T0) if a["organ_id"] == AGENCIES[1])["response_seconds"]["03"]
    assert times["count"] == len(delays)
    assert times["median_seconds"] == pytest.approx(statistics.median(delays))
    assert times["p90_seconds"] == nearest_rank(delays, 0.9)
    assert figures.totals(T0)["response_seconds"]["01"] == {"count": 0, "median_seconds": None, "p90_seconds": None}


def test_outstanding_overdue_and_the_period():
    """Outstanding until the recipient's first status, overdue after the DueDate until its 06; days are Vietnam's."""
    sender, recipient = AGENCIES[0], AGENCIES[1]
    due = date(2026, 6, 2)
    before, early = document(sender, 1, T0 - timedelta(days=1), [recipient], due=due)  # the day before the period
    doc_id, events = document(sender, 2, T0, [recipient], due=due)
    since, until = day_bounds(date(2026, 6, 1), date(2026, 6, 3))
    figures = LedgerFigures(since, until)
    figures.add_all([*early, *events])

    def row(at):
        return next(a for a in figures.agencies(at) if a["organ_id"] == recipient)

    assert (row(T0)["documents_received"], row(T0)["outstanding"], row(T0)["overdue"]) == (1, 1, 0)
    figures.add_all(status(recipient, doc_id, sender, "03", T0 + timedelta(hours=1)))
    figures.add_all(status(recipient, before, sender, "01", T0 + timedelta(hours=2)))  # in the period: timed
    assert row(T0)["outstanding"] == 0
    end_of_due_day = datetime(2026, 6, 2, 23, 59, tzinfo=VIETNAM_TZ)
    assert row(end_of_due_day)["overdue"] == 0
    assert row(end_of_due_day + timedelta(minutes=2))["overdue"] == 1
    assert row(T0)["response_seconds"]["01"]["median_seconds"] == 86400 + 7200
    figures.add_all(status(recipient, doc_id, sender, "06", T0 + timedelta(days=1, hours=20)))  # after the due day
    assert row(end_of_due_day + timedelta(days=1))["overdue"] == 0
    assert row(T0)["response_seconds"]["06"]["count"] == 1
    figures.add_all(document(sender, 3, until, [recipient])[1])  # the first instant after the period
    assert row(T0)["documents_received"] == 1


def test_events_without_the_new_facts_count_as_unknown():
    """Events written before the facts existed are read: algorithm and route unknown, statuses told apart."""
    sender, recipient = AGENCIES[0], AGENCIES[1]
    figures = LedgerFigures()
    doc_id, events = document(sender, 1, T0, [recipient], old=True)
    figures.add_all(events)
    figures.add_all(status(recipient, doc_id, sender, "03", T0 + timedelta(minutes=5), old=True))
    totals = figures.totals(T0)
    assert totals["documents_sent"] == 1
    assert totals["statuses_relayed"] == 1
    assert totals["algorithms"] == {"unknown": 1}
    assert totals["routes"] == {"local": 0, "axis": 0, "unknown": 1}
    assert totals["response_seconds"]["03"]["count"] == 0  # its code is unknown: counted, not timed
    assert totals["outstanding"] == 0


def test_axis_deliveries_and_the_connectors_events():
    """Deliveries to the axis count once (the connector's sent-to-axis is counted apart), documents from it too."""
    figures = LedgerFigures()
    doc_id, events = document(AGENCIES[0], 1, T0, [AGENCIES[1], "000.00.00.G22"], routes={"000.00.00.G22": "axis"})
    figures.add_all(events)
    figures.add(
        _event(EventKind.DELIVERED, events[0].sha256, doc_id, "axis-connector", T0, "sent-to-axis", recipient="x")
    )
    figures.add_all(document("000.00.00.G22", 2, T0, [AGENCIES[0]], origin="axis")[1])
    totals = figures.totals(T0)
    assert (totals["deliveries"], totals["via_axis"], totals["from_axis"], totals["axis_forwarded"]) == (3, 1, 1, 1)
    rows = {a["organ_id"]: a for a in figures.agencies(T0)}
    assert rows[AGENCIES[0]]["sent_via_axis"] == 1
    assert rows[AGENCIES[0]]["received_from_axis"] == 1


def test_tail_reads_only_what_was_stored_since():
    """``LedgerTail.read`` feeds the figures the new segments only, as a dashboard refreshing would."""
    store = MemoryObjectStore()
    ledger = Ledger(store, segment_events=4)
    figures, tail = LedgerFigures(), LedgerTail(store)
    ledger.append_many(document(AGENCIES[0], 1, T0, [AGENCIES[1]])[1])
    ledger.flush()
    assert tail.read(figures) == 4
    ledger.append_many(
        [*document(AGENCIES[0], 2, T0, [AGENCIES[1], AGENCIES[2]])[1], *refused(AGENCIES[2], 3, T0, "REVOKED")]
    )
    ledger.flush()
    seen: list[tuple[int, int]] = []
    assert tail.read(figures, progress=lambda done, total: seen.append((done, total))) == 7
    assert seen[-1] == (11, 11)
    assert tail.read(figures) == 0
    totals = figures.totals(T0)
    assert (totals["documents_sent"], totals["deliveries"], totals["refused"]) == (3, 3, 1)
    again = read_figures(store, date(2026, 6, 1), date(2026, 6, 1))
    assert again.totals(T0) == totals


# --- the forms and the arguments --------------------------------------------------------------------------------


def _sample_report():
    figures = LedgerFigures(*day_bounds(date(2026, 6, 1), date(2026, 6, 1)))
    doc_id, events = document(AGENCIES[0], 1, T0, [AGENCIES[1], AGENCIES[3]], routes={AGENCIES[3]: "axis"})
    figures.add_all([*events, *status(AGENCIES[1], doc_id, AGENCIES[0], "03", T0 + timedelta(seconds=90))])
    figures.add_all(refused(AGENCIES[2], 2, T0, "HASH_FAILURE"))
    return figures.report(date(2026, 6, 1), date(2026, 6, 1), T0 + timedelta(hours=1))


def test_csv_rows_are_the_json_agencies_and_totals():
    """The CSV has one row per JSON agency and a TOTAL row holding the JSON totals."""
    report = _sample_report()
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["organ_id"] for r in rows] == [*(a["organ_id"] for a in report["agencies"]), TOTAL_ROW]
    for row, agency in zip(rows, report["agencies"], strict=False):
        assert {f: int(row[f]) for f in AGENCY_FIELDS} == {f: agency[f] for f in AGENCY_FIELDS}
    assert {f: int(rows[-1][f]) for f in AGENCY_FIELDS} == {f: report["totals"][AGENCY_TOTAL[f]] for f in AGENCY_FIELDS}
    assert rows[-1]["median_03_seconds"] == "90.0"
    assert rows[-1]["refused_by_reason"] == "HASH_FAILURE=1"


def test_html_stands_alone_with_its_plots():
    """The HTML page has A4 print rules, both plots as inline SVG, and no external resource."""
    page = render_html(_sample_report())
    assert "@page { size: A4" in page
    assert page.count("<svg") == 2
    assert 'id="plot-volume"' in page
    assert 'id="plot-response"' in page
    assert "src=" not in page
    assert "http://" not in page.replace("http://www.w3.org/", "")


def test_days_and_formats():
    """Days are YYYY-MM-DD, today or yesterday; the format follows --out's suffix, else json."""
    today = date(2026, 12, 1)
    assert parse_day("today", today=today) == today
    assert parse_day("yesterday", today=today) == date(2026, 11, 30)
    assert parse_day("2026-06-01", today=today) == date(2026, 6, 1)
    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        parse_day("1/6/2026", today=today)
    assert format_for(None, Path("june.HTML")) == "html"
    assert format_for(None, Path("june.csv")) == "csv"
    assert format_for(None, None) == "json"
    assert format_for("csv", Path("june.html")) == "csv"


def test_bad_days_and_an_unreachable_store_are_one_line(capsys):
    """--from after --to, a bad day and a store nobody answers on each give one line on stderr and exit 2."""
    assert main(["report", "--from", "2026-06-02", "--to", "2026-06-01"]) == 2
    assert capsys.readouterr().err == (
        "lienthong report: --from 2026-06-02 is after --to 2026-06-01: give the earlier day first\n"
    )
    assert main(["report", "--from", "June", "--to", "today"]) == 2
    assert capsys.readouterr().err.endswith(
        "'June' is not a day: give YYYY-MM-DD (a Vietnam calendar day), today or yesterday\n"
    )
    endpoint = ["--endpoint", f"127.0.0.1:{free_port()}", "--access-key", "k", "--secret-key", "s"]
    assert main(["report", "--from", "today", "--to", "today", *endpoint]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("lienthong report: cannot reach the S3 store at 127.0.0.1:")
    assert "check --endpoint" in err  # what to do


def _report(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "report", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


# --- over the running demo --------------------------------------------------------------------------------------


@pytest.mark.servers
def test_report_over_the_demo_equals_its_summary(running_demo, tmp_path):
    """Totals equal the demo's summary, in JSON, CSV and HTML alike, read from the running hub's store."""
    demo = running_demo
    expected = {
        "documents_sent": int(demo.summary_line("documents sent").split()[2]),
        "deliveries": int(demo.summary_line("deliveries").split()[1]),
        "refused": int(demo.summary_line("rejected").split()[1]),
        "statuses_relayed": int(demo.summary_line("recipient statuses").split()[2])
        + int(demo.summary_line("from the national axis").split()[4]),
        "via_axis": int(demo.summary_line("000.00.00.G22 via the axis").split()[-1]),
    }
    days = ("--data", str(demo.data), "--from", "today", "--to", "today")
    deadline = time.monotonic() + 30  # the ledger stores the last statuses' events a moment after the summary
    while True:
        result = _report(*days, "--format", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        got = {name: report["totals"][name] for name in expected}
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert got == expected
    assert "reading ledger: " in result.stderr
    totals = report["totals"]
    assert totals["routes"]["unknown"] == 0
    assert totals["algorithms"]["rsa-sha256"] > 0
    assert totals["algorithms"].get("unknown", 0) <= totals["refused"]  # only unreadable input has no algorithm
    assert totals["response_seconds"]["03"]["count"] > 0

    with opened_store(argparse.Namespace(endpoint=None, data=demo.data)) as store:  # as the dashboard reads it
        figures, tail = LedgerFigures(), LedgerTail(store)
        assert tail.read(figures) >= report["ledger_events"]
        before = tail.position
        assert tail.read(figures) == tail.position - before  # only what was stored since: usually nothing
        assert figures.events == tail.position
    assert {name: figures.totals(datetime.now(UTC))[name] for name in expected} == expected

    table = _report(*days, "--format", "csv", "--out", str(tmp_path / "figures.csv"))
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader((tmp_path / "figures.csv").open(encoding="utf-8")))
    by_agency = {a["organ_id"]: a for a in report["agencies"]}
    assert {r["organ_id"] for r in rows[:-1]} == set(by_agency)
    for row in rows[:-1]:
        assert {f: int(row[f]) for f in AGENCY_FIELDS if f not in {"outstanding", "overdue"}} == {
            f: by_agency[row["organ_id"]][f] for f in AGENCY_FIELDS if f not in {"outstanding", "overdue"}
        }
    assert {name: int(rows[-1][AGENCY_FIELDS_FOR[name]]) for name in expected} == expected

    page = _report(*days, "--out", str(tmp_path / "figures.html"))
    assert page.returncode == 0, page.stderr
    html = (tmp_path / "figures.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 2
    assert f"{expected['documents_sent']} documents sent, {expected['deliveries']} deliveries" in html


#: The CSV column of each total the test compares.
AGENCY_FIELDS_FOR = {total: field for field, total in AGENCY_TOTAL.items() if field != "statuses_received"}
