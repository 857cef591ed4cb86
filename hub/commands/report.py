"""``lienthong report --from DATE --to DATE [--format html|csv|json] [--out FILE] [--data DIR]``: the figures.

The province's figures for Vietnam calendar days ``--from`` to ``--to`` inclusive (``YYYY-MM-DD``, ``today`` or
``yesterday``; a day runs from 00:00 to 24:00 UTC+07:00), read from the hub's ledger (``hub.figures``), so they
cover its whole history. The store is reached as ``lienthong ledger verify`` reaches it: through the running hub
with the settings in ``--data DIR``, or with the hub stopped through a private read-only server over ``DIR/s3``,
or ``--endpoint``. ``--format`` defaults to the ``--out`` file's suffix (``.html``/``.htm`` → html, ``.csv`` →
csv), else json; without ``--out`` the report goes to stdout. Progress goes to stderr. Exit 0 when written, 1 when
the ledger cannot be read, 2 for unusable arguments or an unreachable store.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.commands.audit import UsageError, add_store_arguments, opened_store
from hub.figures import read_figures
from hub.report_formats import FORMATS, render
from schemas._checks import VIETNAM_TZ
from schemas.errors import HubError
from storage.ledger import LedgerCorrupt
from storage.objectstore import StoreUnavailable

__all__ = ["DEFAULT_STORE_TIMEOUT", "format_for", "parse_day", "register", "run_report"]

#: A store that has not answered the first listing of the ledger within this many seconds is reported unreachable.
DEFAULT_STORE_TIMEOUT = 10.0
_PROGRESS_EVERY = 0.5  # seconds between progress lines on stderr
_PROG = "lienthong report"
_SUFFIXES = {".html": "html", ".htm": "html", ".csv": "csv", ".json": "json"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report``."""
    parser = subparsers.add_parser(
        "report",
        help="the province's figures from the ledger: per agency and in total, as JSON, CSV or printable HTML",
        description=(
            "DATE is a Vietnam calendar day: YYYY-MM-DD, today or yesterday (both ends inclusive). "
            "Exit 0 when written, 1 when the ledger cannot be read, 2 for unusable arguments or store."
        ),
    )
    parser.add_argument("--from", dest="first", required=True, metavar="DATE", help="first day (YYYY-MM-DD|today)")
    parser.add_argument("--to", dest="last", required=True, metavar="DATE", help="last day, inclusive")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="default: from --out's suffix (.html, .csv), else json",
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="where to write the report (default: stdout)")
    add_store_arguments(parser)
    parser.set_defaults(func=run_report)


def parse_day(text: str, *, today: date) -> date:
    """``YYYY-MM-DD`` (also ``YYYY/MM/DD``), ``today`` or ``yesterday``; UsageError saying what is accepted."""
    word = text.strip().lower()
    if word == "today":
        return today
    if word == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(word.replace("/", "-"))
    except ValueError:
        raise UsageError(
            f"{text!r} is not a day: give YYYY-MM-DD (a Vietnam calendar day), today or yesterday"
        ) from None


def format_for(chosen: str | None, out: Path | None) -> str:
    """The format asked for, else the one ``out``'s suffix names, else json."""
    if chosen is not None:
        return chosen
    return _SUFFIXES.get(out.suffix.lower(), "json") if out is not None else "json"


class _Progress:
    """``reading ledger: N/M events`` on stderr, at most every half second, and once at the end."""

    def __init__(self) -> None:
        self._last = 0.0
        self.answered = threading.Event()  # set once the store has listed the ledger

    def __call__(self, done: int, total: int) -> None:
        self.answered.set()
        now = time.monotonic()
        if done >= total or now - self._last >= _PROGRESS_EVERY:
            self._last = now
            print(f"reading ledger: {done}/{total} events", file=sys.stderr, flush=True)


@dataclass
class _Job:
    """The reading, run on a thread so that a store that never answers is reported within the timeout."""

    args: argparse.Namespace
    first: date
    last: date
    progress: _Progress
    report: dict[str, Any] | None = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            with opened_store(self.args) as store:
                figures = read_figures(store, self.first, self.last, progress=self.progress)
            self.progress.answered.set()
            self.report = figures.report(self.first, self.last, datetime.now(UTC))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which reports it
            self.error = exc
        finally:
            self.progress.answered.set()


def _days(args: argparse.Namespace) -> tuple[date, date]:
    today = datetime.now(VIETNAM_TZ).date()
    first, last = parse_day(args.first, today=today), parse_day(args.last, today=today)
    if first > last:
        raise UsageError(f"--from {first} is after --to {last}: give the earlier day first")
    return first, last


def _read(args: argparse.Namespace, first: date, last: date) -> dict[str, Any] | int:
    """The report's object, or the exit code after a one-line error on stderr."""
    job = _Job(args, first, last, _Progress())
    worker = threading.Thread(target=job.run, name="report", daemon=True)
    worker.start()
    if not job.progress.answered.wait(DEFAULT_STORE_TIMEOUT):
        where = args.endpoint or f"the store of {args.data or 'data'}"
        print(
            f"{_PROG}: {where} did not answer within {DEFAULT_STORE_TIMEOUT:.0f} s: check that the hub "
            "(`lienthong up --data DIR`) or the store is running and reachable, then try again",
            file=sys.stderr,
        )
        return 2
    worker.join()
    error = job.error
    if isinstance(error, LedgerCorrupt):
        print(f"{_PROG}: the ledger cannot be read ({error}): run `lienthong ledger verify`", file=sys.stderr)
        return 1
    if isinstance(error, StoreUnavailable):
        print(f"{_PROG}: {error}: check that the hub or its store is running, then try again", file=sys.stderr)
        return 2
    if isinstance(error, HubError):
        print(f"{_PROG}: {error}", file=sys.stderr)
        return 2
    if error is not None:
        raise error
    assert job.report is not None  # set when there was no error
    return job.report


def run_report(args: argparse.Namespace) -> int:
    """Read the figures and write the report; exit 0, 1 (ledger unreadable) or 2 (arguments, store)."""
    try:
        first, last = _days(args)
        form = format_for(args.format, args.out)
    except UsageError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    report = _read(args, first, last)
    if isinstance(report, int):
        return report
    if form == "html":
        print("drawing plots", file=sys.stderr, flush=True)
    text = render(report, form)
    if args.out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{_PROG}: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    totals = report["totals"]
    print(
        f"{args.out}: {form} report for {first}..{last}: {totals['documents_sent']} documents sent, "
        f"{totals['deliveries']} deliveries, {totals['refused']} refused",
        file=sys.stderr,
    )
    return 0
