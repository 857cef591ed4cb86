"""The forms of ``lienthong report``: JSON, CSV and a printable HTML page with plots, all from one JSON object.

Every form is rendered from the object ``LedgerFigures.report`` returns, so the three always say the same.
The HTML page stands alone (plots are inline SVG made with matplotlib, no script, no external file) and is laid out
for A4 paper.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from hub.figures import AGENCY_FIELDS, AGENCY_TOTAL, RESPONSE_CODES, UNKNOWN

__all__ = ["CSV_COLUMNS", "FORMATS", "TOTAL_ROW", "render", "render_csv", "render_html", "render_json"]

FORMATS = ("json", "csv", "html")
#: The ``organ_id`` of the CSV's last row, the totals.
TOTAL_ROW = "TOTAL"
#: The CSV's header: the agency counts, then median and p90 seconds to each timed status, then the two maps.
CSV_COLUMNS = (
    "organ_id",
    *AGENCY_FIELDS,
    *(f"{stat}_{code}_seconds" for code in RESPONSE_CODES for stat in ("median", "p90")),
    "refused_by_reason",
    "algorithms",
)
_SVG_METADATA = ("Creator", "Date", "Format", "Type")
_STATUS_NAMES = {"01": "01 received", "03": "03 accepted for handling", "06": "06 completed"}


def render(report: dict[str, Any], form: str) -> str:
    """``report`` as ``json``, ``csv`` or ``html`` text."""
    if form == "json":
        return render_json(report)
    if form == "csv":
        return render_csv(report)
    if form == "html":
        return render_html(report)
    raise ValueError(f"unknown format {form!r}: one of {', '.join(FORMATS)}")


def render_json(report: dict[str, Any]) -> str:
    """One JSON object (indented, UTF-8 kept readable), ending with a newline."""
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def _pairs(counts: dict[str, int]) -> str:
    return "; ".join(f"{name}={n}" for name, n in counts.items())


def _row(organ_id: str, counts: dict[str, Any]) -> list[object]:
    times = counts["response_seconds"]
    return [
        organ_id,
        *(counts[name] for name in AGENCY_FIELDS),
        *(_blank(times[code][f"{stat}_seconds"]) for code in RESPONSE_CODES for stat in ("median", "p90")),
        _pairs(counts["refused_by_reason"]),
        _pairs(counts["algorithms"]),
    ]


def _blank(value: object) -> object:
    return "" if value is None else value


def render_csv(report: dict[str, Any]) -> str:
    """One row per agency, then a ``TOTAL`` row with the same columns (``CSV_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for agency in report["agencies"]:
        writer.writerow(_row(agency["organ_id"], agency))
    totals = report["totals"]
    writer.writerow(_row(TOTAL_ROW, {**{field: totals[total] for field, total in AGENCY_TOTAL.items()}, **totals}))
    return out.getvalue()


# --- HTML ----------------------------------------------------------------------------------------------------

_CSS = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 9.5pt; color: #111; max-width: 186mm; margin: auto; }
h1 { font-size: 16pt; margin: 0 0 2mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm; break-after: avoid; }
p.meta { color: #444; margin: 0 0 3mm; }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; break-inside: auto; }
th, td { border: 0.3pt solid #999; padding: 1mm 1.5mm; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { display: table-header-group; } tr { break-inside: avoid; }
tr.total td { font-weight: bold; border-top: 1pt solid #111; }
figure { margin: 3mm 0; break-inside: avoid; } figure svg { width: 100%; height: auto; }
figcaption { color: #444; font-size: 8.5pt; }
ul.figures { columns: 2; margin: 0; padding-left: 5mm; }
"""


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], total: Sequence[object] | None = None) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    if total is not None:
        body += '<tr class="total">' + "".join(f"<td>{html.escape(str(c))}</td>" for c in total) + "</tr>"
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:  # noqa: PLR2004 - up to two minutes, seconds read best
        return f"{seconds:.1f} s"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:  # noqa: PLR2004
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def render_html(report: dict[str, Any]) -> str:
    """A printable page: the headline figures, tables per agency, and plots of volume and response times."""
    totals = report["totals"]
    agencies = report["agencies"]
    signed = sum(n for name, n in totals["algorithms"].items() if name not in {"none", UNKNOWN})
    period = report["from"] if report["from"] == report["to"] else f"{report['from']} – {report['to']}"
    headline = [
        f"{totals['documents_sent']} documents sent, {totals['deliveries']} deliveries",
        f"{totals['via_axis']} deliveries to the national axis, {totals['from_axis']} from it",
        f"{totals['refused']} inputs refused (documents and statuses; each answered with a status 02)",
        f"{_share(signed, totals['documents_sent'])} of documents digitally signed",
        f"{totals['statuses_relayed']} statuses relayed",
        f"{totals['outstanding']} deliveries awaiting a status, {totals['overdue']} overdue",
    ]
    count_rows = [[a["organ_id"], *(a[f] for f in AGENCY_FIELDS)] for a in agencies]
    count_total = [TOTAL_ROW, *(totals[AGENCY_TOTAL[f]] for f in AGENCY_FIELDS)]
    time_head = ["organ_id", *(f"{code} {stat}" for code in RESPONSE_CODES for stat in ("n", "median", "p90"))]

    def times(name: str, counts: dict[str, Any]) -> list[object]:
        cells: list[object] = [name]
        for code in RESPONSE_CODES:
            summary = counts["response_seconds"][code]
            cells += [summary["count"], _duration(summary["median_seconds"]), _duration(summary["p90_seconds"])]
        return cells

    time_rows = [
        times(a["organ_id"], a) for a in agencies if any(a["response_seconds"][c]["count"] for c in RESPONSE_CODES)
    ]
    reasons = sorted(totals["refused_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
    algorithms = sorted(totals["algorithms"].items(), key=lambda kv: (-kv[1], kv[0]))
    sections = [
        "<!DOCTYPE html>",
        '<html lang="vi"><head><meta charset="utf-8">',
        f"<title>lienthong: số liệu liên thông văn bản {html.escape(period)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Số liệu liên thông văn bản · Document exchange figures, {html.escape(period)}</h1>",
        (
            f'<p class="meta">From the hub\'s Merkle ledger ({report["ledger_events"]} events read); Vietnam days '
            f"{html.escape(report['from'])} to {html.escape(report['to'])} inclusive (UTC+07:00); outstanding and "
            f"overdue as of {html.escape(report['as_of'])}.</p>"
        ),
        '<ul class="figures">' + "".join(f"<li>{html.escape(line)}</li>" for line in headline) + "</ul>",
        "<h2>Volume</h2>",
        _figure("plot-volume", _volume_svg(report), "Inputs and deliveries per " + _volume_unit(report) + "."),
        "<h2>Per agency</h2>",
        _table(["organ_id", *(f.replace("_", " ") for f in AGENCY_FIELDS)], count_rows, count_total),
        "<h2>Response times (from delivery to the recipient's status)</h2>",
        _figure("plot-response", _response_svg(report), "Median and p90 per agency and in total."),
        _table(time_head, time_rows, times(TOTAL_ROW, totals)),
        "<h2>Refused, by reason</h2>",
        _table(["reason", "refused"], reasons) if reasons else "<p>None.</p>",
        "<h2>Signature algorithms</h2>",
        _table(["algorithm", "documents"], algorithms) if algorithms else "<p>None.</p>",
        "</body></html>",
    ]
    return "\n".join(sections) + "\n"


def _figure(element_id: str, svg: str, caption: str) -> str:
    return f'<figure id="{element_id}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'


def _volume_unit(report: dict[str, Any]) -> str:
    return "hour" if report["from"] == report["to"] and "per_hour" in report else "day"


def _svg(figure: Any) -> str:
    """The figure as an inline ``<svg>`` element (text kept as text: smaller, and searchable in the page)."""
    import matplotlib as mpl  # noqa: PLC0415 - matplotlib only when a page is drawn

    out = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 8}):
        # No metadata: no date (the same figures draw the same page) and no links out of the page.
        figure.savefig(out, format="svg", bbox_inches="tight", metadata=dict.fromkeys(_SVG_METADATA))
    text = out.getvalue()
    return text[text.index("<svg") :]


def _volume_svg(report: dict[str, Any]) -> str:
    from matplotlib.figure import Figure  # noqa: PLC0415

    unit = _volume_unit(report)
    labels, rows = _volume_rows(report, unit)
    series = (
        ("documents_sent", "documents sent"),
        ("deliveries", "deliveries"),
        ("statuses_relayed", "statuses relayed"),
        ("refused", "refused"),
    )
    figure = Figure(figsize=(7.2, 2.6))
    axes = figure.subplots()
    width = 0.8 / len(series)
    for number, (key, name) in enumerate(series):
        axes.bar([i + number * width for i in range(len(rows))], [r[key] for r in rows], width, label=name)
    step = max(1, len(rows) // 24)  # at most about 24 labels, whatever the period
    ticks = range(0, len(rows), step)
    axes.set_xticks([i + 0.4 - width / 2 for i in ticks], [labels[i] for i in ticks], rotation=45, ha="right")
    axes.set_ylabel("per " + unit)
    if not any(r[key] for r in rows for key, _ in series):
        axes.text(0.5, 0.5, "no traffic in this period", ha="center", va="center", transform=axes.transAxes)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, ncols=4)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def _volume_rows(report: dict[str, Any], unit: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every hour of the day, or every day of the period, with its counts (zero when nothing happened)."""
    empty = dict.fromkeys(("documents_sent", "deliveries", "statuses_relayed", "refused"), 0)
    if unit == "hour":
        by_hour = {r["hour"][11:13]: r for r in report["per_hour"]}
        labels = [f"{h:02d}" for h in range(24)]
        return [f"{h}h" for h in labels], [by_hour.get(h, empty) for h in labels]
    by_day = {r["date"]: r for r in report["per_day"]}
    first, last = date.fromisoformat(report["from"]), date.fromisoformat(report["to"])
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return [d[5:] for d in days], [by_day.get(d, empty) for d in days]


def _response_svg(report: dict[str, Any]) -> str:
    from matplotlib.figure import Figure  # noqa: PLC0415

    rows = [(a["organ_id"], a["response_seconds"]) for a in report["agencies"]]
    rows = [(name, times) for name, times in rows if any(times[c]["count"] for c in RESPONSE_CODES)]
    rows.append((TOTAL_ROW, report["totals"]["response_seconds"]))
    longest = max((t[c]["p90_seconds"] or 0 for _, t in rows for c in RESPONSE_CODES), default=0)
    scale, unit = next(
        ((s, u) for s, u in ((1, "s"), (60, "min"), (3600, "h"), (86400, "d")) if longest / s < 150),  # noqa: PLR2004
        (86400, "d"),
    )
    figure = Figure(figsize=(7.2, 0.6 + 0.28 * len(rows)))
    axes_row = figure.subplots(1, len(RESPONSE_CODES), sharey=True)
    positions = list(range(len(rows)))
    for axes, code in zip(axes_row, RESPONSE_CODES, strict=True):
        median = [(t[code]["median_seconds"] or 0) / scale for _, t in rows]
        p90 = [(t[code]["p90_seconds"] or 0) / scale for _, t in rows]
        axes.barh(positions, p90, 0.7, color="#9ecae1", label="p90")
        axes.barh(positions, median, 0.7, color="#3182bd", label="median")
        axes.set_title(_STATUS_NAMES[code], fontsize=8)
        if not any(t[code]["count"] for _, t in rows):
            axes.set_xlim(0, 1)
            axes.text(0.5, 0.5, "none yet", ha="center", va="center", transform=axes.transAxes)
        axes.set_xlabel(unit)
        axes.spines[["top", "right"]].set_visible(False)
    axes_row[0].set_yticks(positions, [name for name, _ in rows])
    axes_row[0].invert_yaxis()
    axes_row[-1].legend(loc="lower right", frameon=False)
    return _svg(figure)
