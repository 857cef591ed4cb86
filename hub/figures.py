"""The province's figures, folded from the hub's Merkle ledger: they cover its whole history, not one run.

Per agency and in total: documents sent and received, deliveries through the national axis (both ways), refusals
by reason, signature algorithms, the time from a delivery to the recipient's statuses 01, 03 and 06 (median and
p90), and, at a given instant, deliveries still waiting for a status (``outstanding``) and those whose DueDate
has passed without a 06 (``overdue``). ``lienthong report`` prints them; the live dashboard shows them too.

Interface:

* ``LedgerFigures(since=None, until=None)`` folds events one at a time, in log order (``add(event)``); only
  inputs received in ``[since, until)`` are counted (deliveries before ``since`` are still remembered, so that a
  status in the period answering one is timed). ``agencies(at)`` is one ``dict`` per agency (keys as in
  ``AGENCY_FIELDS``, plus ``refused_by_reason``, ``algorithms``, ``response_seconds``; ``outstanding`` and
  ``overdue`` are of the deliveries in the period, at ``at`` or ``until`` if earlier), ``totals(at)`` the sums
  (``TOTAL_FIELDS`` and the same maps), ``volume("day"|"hour")`` the counts per Vietnam day or hour, and
  ``report(first, last, at)`` all of it as the JSON object of ``lienthong report --format json``.
* ``LedgerTail(store)`` follows the stored log: each ``read(figures)`` feeds the events stored since its last call
  (one LIST from where it stopped, one GET per new segment), so a dashboard refreshes cheaply.
* ``read_figures(store, first, last)`` reads the figures of Vietnam days ``first..last`` (inclusive), with an
  optional ``progress(done, total)`` callback; ``day_bounds(first, last)`` are the instants it counts between.

A dashboard keeps one of each and, on every refresh (from one thread, or under a lock)::

    figures, tail = LedgerFigures(), LedgerTail(store)
    tail.read(figures)
    rows, totals = figures.agencies(now), figures.totals(now)

What the events say (``hub.process`` writes the facts on the ``received`` event of each input: ``message``,
``algorithm``, ``status_code``, ``due_date``, ``origin``; and ``route`` on each delivery). Events written before
those facts existed are read all the same: their algorithm and route count as ``unknown``, and whether an old input
was a status is inferred from the DocumentId it is filed under (a status is filed under the document it answers,
whose DocumentId starts with another agency's OrganId). A status from an agency D was delivered to answers that
delivery; the time is from the hub's receipt of the document to its receipt of the status. Statuses 02 and beyond
06 are counted as statuses, not timed. The axis connector's own events (a document or status accepted or refused by
the axis) are counted apart (``axis_forwarded``, ``axis_refused``), not as second deliveries.

Memory: a counter per agency and per hour, the response times in the period, and one entry per delivery not yet
answered with a 06 (what ``outstanding`` and ``overdue`` need).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from schemas._checks import VIETNAM_TZ
from storage.ledger import SEGMENTS_PREFIX, EventKind, LedgerCorrupt, LedgerError, LedgerEvent
from storage.ledger._segments import Segment, decode_segment
from storage.objectstore import ObjectStore

__all__ = [
    "AGENCY_FIELDS",
    "AGENCY_TOTAL",
    "RESPONSE_CODES",
    "TOTAL_FIELDS",
    "TOTAL_OF",
    "UNKNOWN",
    "LedgerFigures",
    "LedgerTail",
    "Progress",
    "day_bounds",
    "live_agency_figures",
    "nearest_rank",
    "read_figures",
]

#: The statuses whose delay after delivery is timed: received (01), accepted for handling (03), completed (06).
RESPONSE_CODES = ("01", "03", "06")
#: What a fact missing from an event (written before it was recorded, or unreadable input) counts as.
UNKNOWN = "unknown"
#: The counts of one agency, in the order the CSV prints them.
AGENCY_FIELDS = (
    "documents_sent",
    "documents_received",
    "refused",
    "sent_via_axis",
    "received_from_axis",
    "statuses_sent",
    "statuses_received",
    "outstanding",
    "overdue",
)
#: The counts of the whole hub; each but the last two is the sum of an agency field (``TOTAL_OF``).
TOTAL_FIELDS = (
    "documents_sent",
    "deliveries",
    "refused",
    "via_axis",
    "from_axis",
    "statuses_relayed",
    "outstanding",
    "overdue",
    "axis_forwarded",
    "axis_refused",
)
#: Each total and the agency field it sums.
TOTAL_OF = {
    "documents_sent": "documents_sent",
    "deliveries": "documents_received",
    "refused": "refused",
    "via_axis": "sent_via_axis",
    "from_axis": "received_from_axis",
    "statuses_relayed": "statuses_sent",
    "outstanding": "outstanding",
    "overdue": "overdue",
}
#: Each agency field and the total that equals its sum (a relayed status is sent by one and received by another).
AGENCY_TOTAL = {**{agency: total for total, agency in TOTAL_OF.items()}, "statuses_received": "statuses_relayed"}
_VOLUME_FIELDS = ("documents_sent", "deliveries", "refused", "statuses_relayed")
_HUB = "hub"
_AXIS_CONNECTOR = "axis-connector"
_COMPLETED = "06"
#: Inputs remembered between their ``received`` event and the events after it (all in one ledger record).
_RECENT_INPUTS = 4096
#: Events are appended in the order they were received, to within seconds; reading stops this far past ``until``.
DEFAULT_LATE_MARGIN = timedelta(hours=1)

#: ``progress(events_read, events_stored)``, called after each segment.
Progress = Callable[[int, int], None]


def nearest_rank(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants from the start of Vietnam day ``first`` to the end of ``last`` (exclusive), in UTC."""
    since = datetime.combine(first, time(), VIETNAM_TZ)
    until = datetime.combine(last + timedelta(days=1), time(), VIETNAM_TZ)
    return since.astimezone(UTC), until.astimezone(UTC)


@dataclass(slots=True)
class _Input:
    """What the ``received`` event of one input said: who sent it, when, what it was."""

    sender: str
    at: datetime
    kind: str  # edoc | status | unknown
    origin: str  # axis | outbox
    algorithm: str
    status_code: str
    due: date | None


@dataclass(slots=True)
class _Delivery:
    """A document delivered to one recipient, until that recipient's 06."""

    at: datetime
    due: date | None
    counted: bool  # delivered within the period
    answered: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Agency:
    counts: Counter[str] = field(default_factory=Counter)
    refused_by_reason: Counter[str] = field(default_factory=Counter)
    algorithms: Counter[str] = field(default_factory=Counter)
    response_seconds: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in RESPONSE_CODES})


class LedgerFigures:
    """The figures of the events added so far (see the module docstring); not thread-safe."""

    def __init__(self, since: datetime | None = None, until: datetime | None = None) -> None:
        if since is not None and until is not None and since >= until:
            raise ValueError("since must come before until")
        self.since = since
        self.until = until
        self.events = 0  # events added, counted or not
        self._agencies: dict[str, _Agency] = {}
        self._recent: OrderedDict[str, _Input] = OrderedDict()
        self._open: dict[tuple[str, str], _Delivery] = {}
        self._hours: dict[datetime, Counter[str]] = {}
        self._axis: Counter[str] = Counter()
        self._routes: Counter[str] = Counter()

    # --- folding -------------------------------------------------------------------------------------------

    def add(self, event: LedgerEvent) -> None:
        """Fold one event (in log order)."""
        self.events += 1
        if self.until is not None and event.time >= self.until:
            return
        if event.kind is EventKind.RECEIVED:
            self._received(event)
        elif event.kind is EventKind.REJECTED:
            self._rejected(event)
        elif event.kind is EventKind.DELIVERED:
            self._delivered(event)
        elif event.kind is EventKind.STATUS_RELAYED:
            self._relayed(event)

    def add_all(self, events: Iterable[LedgerEvent]) -> None:
        """Fold every event of ``events``, in order."""
        for event in events:
            self.add(event)

    def _counted(self, at: datetime) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def _agency(self, organ_id: str) -> _Agency:
        return self._agencies.setdefault(organ_id or UNKNOWN, _Agency())

    def _hour(self, at: datetime) -> Counter[str]:
        hour = at.astimezone(VIETNAM_TZ).replace(minute=0, second=0, microsecond=0)
        return self._hours.setdefault(hour, Counter())

    def _input(self, event: LedgerEvent) -> _Input:
        """The input an event is about (its ``received`` event came just before, in the same ledger record)."""
        found = self._recent.get(event.sha256)
        if found is not None:
            return found
        return _Input(UNKNOWN, event.time, UNKNOWN, "outbox", UNKNOWN, UNKNOWN, None)

    def _received(self, event: LedgerEvent) -> None:
        detail = event.detail
        kind = detail.get("message") or _old_message_kind(event)
        due = None
        if "due_date" in detail:
            try:
                due = date.fromisoformat(detail["due_date"])
            except ValueError:
                due = None
        found = _Input(
            sender=event.actor,
            at=event.time,
            kind=kind,
            origin=detail.get("origin", "outbox"),
            algorithm=detail.get("algorithm", UNKNOWN),
            status_code=detail.get("status_code", UNKNOWN),
            due=due,
        )
        self._recent[event.sha256] = found
        self._recent.move_to_end(event.sha256)
        while len(self._recent) > _RECENT_INPUTS:
            self._recent.popitem(last=False)
        if kind == "status" or not self._counted(event.time):
            return
        agency = self._agency(event.actor)
        agency.counts["documents_sent"] += 1
        agency.algorithms[found.algorithm] += 1
        self._hour(event.time)["documents_sent"] += 1

    def _rejected(self, event: LedgerEvent) -> None:
        if event.actor == _AXIS_CONNECTOR:
            if self._counted(event.time):
                self._axis["axis_refused"] += 1
            return
        found = self._input(event)
        if not self._counted(found.at):
            return
        agency = self._agency(found.sender)
        agency.counts["refused"] += 1
        agency.refused_by_reason[event.verdict] += 1
        self._hour(found.at)["refused"] += 1

    def _delivered(self, event: LedgerEvent) -> None:
        if event.actor == _AXIS_CONNECTOR:
            if self._counted(event.time):
                self._axis["axis_forwarded"] += 1
            return
        found = self._input(event)
        recipient = event.detail.get("recipient", UNKNOWN)
        counted = self._counted(found.at)
        self._open[event.document_id, recipient] = _Delivery(event.time, found.due, counted)
        if not counted:
            return
        route = event.detail.get("route", UNKNOWN)
        self._routes[route] += 1
        self._agency(recipient).counts["documents_received"] += 1
        if route == "axis":
            self._agency(found.sender).counts["sent_via_axis"] += 1
        if found.origin == "axis":
            self._agency(recipient).counts["received_from_axis"] += 1
        self._hour(found.at)["deliveries"] += 1

    def _relayed(self, event: LedgerEvent) -> None:
        if event.actor == _AXIS_CONNECTOR:
            if self._counted(event.time):
                self._axis["axis_forwarded"] += 1
            return
        found = self._input(event)
        reporter, code = found.sender, found.status_code
        counted = self._counted(found.at)
        if counted:
            self._agency(reporter).counts["statuses_sent"] += 1
            self._agency(event.detail.get("recipient", UNKNOWN)).counts["statuses_received"] += 1
            self._hour(found.at)["statuses_relayed"] += 1
        delivery = self._open.get((event.document_id, reporter))
        if delivery is None:
            return
        if counted and code in RESPONSE_CODES and code not in delivery.answered:
            seconds = max(0.0, (event.time - delivery.at).total_seconds())
            self._agency(reporter).response_seconds[code].append(seconds)
        delivery.answered.add(code)
        if code == _COMPLETED:
            del self._open[event.document_id, reporter]

    # --- results -------------------------------------------------------------------------------------------

    def _at(self, at: datetime) -> datetime:
        return min(at, self.until) if self.until is not None else at

    def _waiting(self, at: datetime) -> dict[str, Counter[str]]:
        """Per recipient: deliveries of the period with no status yet, and those past their DueDate without 06."""
        at = self._at(at)
        today = at.astimezone(VIETNAM_TZ).date()
        waiting: dict[str, Counter[str]] = {}
        for (_, recipient), delivery in self._open.items():
            if not delivery.counted:
                continue
            counts = waiting.setdefault(recipient, Counter())
            counts["outstanding"] += not delivery.answered
            counts["overdue"] += delivery.due is not None and delivery.due < today
        return waiting

    def agencies(self, at: datetime) -> list[dict[str, Any]]:
        """One object per agency seen in the period, sorted by OrganId, with outstanding and overdue at ``at``."""
        waiting = self._waiting(at)  # its recipients all have a row: their deliveries were counted
        rows = []
        for organ_id in sorted(self._agencies):
            agency = self._agencies[organ_id]
            counts = agency.counts + waiting.get(organ_id, Counter())
            row: dict[str, Any] = {"organ_id": organ_id, **{name: counts[name] for name in AGENCY_FIELDS}}
            row["refused_by_reason"] = dict(sorted(agency.refused_by_reason.items()))
            row["algorithms"] = dict(sorted(agency.algorithms.items()))
            row["response_seconds"] = {code: _summary(agency.response_seconds[code]) for code in RESPONSE_CODES}
            rows.append(row)
        return rows

    def totals(self, at: datetime, agencies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The whole hub's figures at ``at``: the sums of ``agencies(at)`` (given, or computed) and the axis link."""
        rows = self.agencies(at) if agencies is None else agencies
        totals: dict[str, Any] = {name: sum(row[field] for row in rows) for name, field in TOTAL_OF.items()}
        totals["axis_forwarded"] = self._axis["axis_forwarded"]
        totals["axis_refused"] = self._axis["axis_refused"]
        totals["routes"] = {route: self._routes[route] for route in ("local", "axis", UNKNOWN)}
        totals["refused_by_reason"] = dict(sorted(_sum_maps(row["refused_by_reason"] for row in rows).items()))
        totals["algorithms"] = dict(sorted(_sum_maps(row["algorithms"] for row in rows).items()))
        pooled = {
            code: [s for a in self._agencies.values() for s in a.response_seconds[code]] for code in RESPONSE_CODES
        }
        totals["response_seconds"] = {code: _summary(values) for code, values in pooled.items()}
        return totals

    def volume(self, unit: str = "day") -> list[dict[str, Any]]:
        """Counts per Vietnam ``day`` (``{"date": "YYYY-MM-DD", ...}``) or ``hour`` (``{"hour": ISO, ...}``)."""
        if unit not in {"day", "hour"}:
            raise ValueError("unit is day or hour")
        buckets: dict[str, Counter[str]] = {}
        for hour, counts in sorted(self._hours.items()):
            label = hour.date().isoformat() if unit == "day" else hour.isoformat()
            buckets.setdefault(label, Counter()).update(counts)
        key = "date" if unit == "day" else "hour"
        return [{key: label, **{name: counts[name] for name in _VOLUME_FIELDS}} for label, counts in buckets.items()]

    def report(self, first: date, last: date, at: datetime) -> dict[str, Any]:
        """The JSON object of ``lienthong report`` for Vietnam days ``first..last``, outstanding/overdue at ``at``."""
        agencies = self.agencies(at)
        out: dict[str, Any] = {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "timezone": "+07:00",
            "as_of": self._at(at).astimezone(VIETNAM_TZ).isoformat(timespec="seconds"),
            "ledger_events": self.events,
            "totals": self.totals(at, agencies),
            "agencies": agencies,
            "per_day": self.volume("day"),
        }
        if (last - first).days < 7:  # noqa: PLR2004 - a week of hours is still a readable list
            out["per_hour"] = self.volume("hour")
        return out


def _old_message_kind(event: LedgerEvent) -> str:
    """Whether an input recorded before the ``message`` fact was a status: by the DocumentId it is filed under."""
    doc_id = event.document_id
    if "#status-" in doc_id:  # a refused status is filed under its own id, "<answered id>#status-<code>-<sender>"
        return "status"
    filed_by, comma, _ = doc_id.partition(",")
    if comma and event.actor not in {filed_by, UNKNOWN}:
        return "status"
    return "edoc" if doc_id else UNKNOWN


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median_seconds": None, "p90_seconds": None}
    return {
        "count": len(values),
        "median_seconds": round(statistics.median(values), 3),
        "p90_seconds": round(nearest_rank(values, 0.9), 3),
    }


def _sum_maps(maps: Iterable[dict[str, int]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for counts in maps:
        total.update(counts)
    return total


# --- reading the stored log -------------------------------------------------------------------------------------


class LedgerTail:
    """Follows the log stored in ``store``: ``read`` feeds a ``LedgerFigures`` the events stored since last time."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.position = 0  # leaves read so far
        self._last_key = ""

    def _new_segments(self) -> list[Segment]:
        segments: list[Segment] = []
        for key in self._store.list(SEGMENTS_PREFIX, start_after=self._last_key):
            first, _, count = key.removeprefix(SEGMENTS_PREFIX).removesuffix(".jsonl").partition("-")
            if not (first.isdigit() and count.isdigit()):
                raise LedgerCorrupt(key, "not a ledger segment name (<first leaf, 12 digits>-<count>.jsonl)")
            segment = Segment(int(first), int(count), key)
            if segment.first != self.position + sum(s.count for s in segments):
                raise LedgerCorrupt(key, f"starts at leaf {segment.first}, not where the segments before it end")
            segments.append(segment)
        return segments

    def read(
        self, figures: LedgerFigures, *, progress: Progress | None = None, stop_after: datetime | None = None
    ) -> int:
        """Add the newly stored events to ``figures``; returns how many were read.

        ``stop_after``: stop at the first event later than it (the rest of the log is later still); the next
        ``read`` goes on from that segment's end. ``LedgerCorrupt`` names a segment that cannot be read.
        """
        segments = self._new_segments()
        total = segments[-1].end if segments else self.position
        read = 0
        for segment in segments:
            content = decode_segment(segment, self._store.get(segment.key))
            late = False
            for number, line in enumerate(content.events):
                try:
                    event = LedgerEvent.from_bytes(line)
                except LedgerError as exc:
                    raise LedgerCorrupt(f"{segment.key} line {number + 1}", str(exc)) from exc
                if stop_after is not None and event.time > stop_after:
                    late = True
                    break
                figures.add(event)
                read += 1
            self.position, self._last_key = segment.end, segment.key
            if progress is not None:
                progress(self.position, total)
            if late:
                break
        return read


def read_figures(
    store: ObjectStore,
    first: date,
    last: date,
    *,
    progress: Progress | None = None,
    late_margin: timedelta = DEFAULT_LATE_MARGIN,
) -> LedgerFigures:
    """The figures of Vietnam days ``first..last`` (inclusive) from the log in ``store``."""
    since, until = day_bounds(first, last)
    figures = LedgerFigures(since, until)
    LedgerTail(store).read(figures, progress=progress, stop_after=until + late_margin)
    return figures


def live_agency_figures(store: ObjectStore) -> Callable[[], Mapping[str, Mapping[str, int]]]:
    """For the dashboard: OrganId -> {"outstanding": n, "overdue": n} now, over the whole history.

    Each call folds only the events stored since the last one; calls must not overlap (the dashboard makes them one
    at a time).
    """
    figures, tail = LedgerFigures(), LedgerTail(store)

    def current() -> Mapping[str, Mapping[str, int]]:
        tail.read(figures)
        rows = figures.agencies(datetime.now(UTC))
        return {row["organ_id"]: {"outstanding": row["outstanding"], "overdue": row["overdue"]} for row in rows}

    return current
