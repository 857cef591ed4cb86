"""The dashboard's figures, from Prometheus samples: pure functions and one rolling history, no I/O.

``read_samples`` flattens what registries collect into ``{(name, labels): value}``; ``History`` keeps the last
few minutes of readings for rates and the charts; ``summary`` makes the JSON object the page shows. Every figure
comes from a metric that ``/metrics`` serves too, so a Prometheus behind the same endpoint sees the same numbers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

__all__ = [
    "AgencyFigures",
    "History",
    "Reading",
    "Samples",
    "histogram_quantile",
    "read_samples",
    "replay_command",
    "summary",
]

#: ``{(sample name, sorted label pairs): value}``, every process's metrics merged by the multiprocess collector.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
#: OrganId → {"outstanding": n, "overdue": n}, from the ledger's history (``hub.figures``), when wired in.
AgencyFigures = Mapping[str, Mapping[str, int]]

_DOCUMENTS = "lienthong_documents_total"
_AGENCY_DOCUMENTS = "lienthong_agency_documents_total"
_AGENCY_STATUSES = "lienthong_agency_statuses_total"
_END_TO_END_BUCKET = "lienthong_end_to_end_seconds_bucket"
_END_TO_END_COUNT = "lienthong_end_to_end_seconds_count"
_RATE_WINDOW = 10.0  # seconds of history a rate is taken over: steadier than one 2 s step, still live
_LATENCY_WINDOW = 30.0  # seconds of history the charted p50/p90 cover (a quantile needs a few observations)


def read_samples(registries: Iterable[CollectorRegistry]) -> Samples:
    """Every sample the registries collect, keyed by name and labels (``_created`` timestamps left out)."""
    samples: Samples = {}
    for registry in registries:
        for family in registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def _matching(samples: Samples, name: str, match: Mapping[str, str]) -> Iterable[tuple[dict[str, str], float]]:
    for (sample_name, pairs), value in samples.items():
        if sample_name == name:
            labels = dict(pairs)
            if all(labels.get(k) == v for k, v in match.items()):
                yield labels, value


def _total(samples: Samples, name: str, **match: str) -> float:
    return sum(value for _, value in _matching(samples, name, match))


def _by(samples: Samples, name: str, label: str, **match: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in _matching(samples, name, match):
        out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + value
    return out


def _value(samples: Samples, name: str) -> float | None:
    values = [value for _, value in _matching(samples, name, {})]
    return max(values) if values else None


def _buckets(samples: Samples) -> tuple[tuple[float, float], ...]:
    """The end-to-end histogram's cumulative buckets, ``(upper bound, count)`` in order."""
    found = _by(samples, _END_TO_END_BUCKET, "le")
    return tuple(sorted((float(le), count) for le, count in found.items()))


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``buckets``, interpolated inside a bucket as Prometheus does; None if empty.

    A quantile in the ``+Inf`` bucket is the highest finite bound (the histogram knows nothing beyond it).
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def replay_command(reason: str) -> str:
    """What an operator runs to send a reason's dead letters through every check again, once the cause is fixed."""
    return f"lienthong deadletter replay --reason {reason}"


@dataclass(frozen=True)
class Reading:
    """The figures one look at the metrics gives that the charts follow over time."""

    at: float  # Unix time
    records_in: float  # records the workers routed (documents and statuses, every outcome)
    deliveries: float  # documents delivered to recipients (inboxes and the national axis)
    buckets: tuple[tuple[float, float], ...]  # end-to-end latency histogram, cumulative
    lag: Mapping[str, float]  # records not yet processed, per topic

    @classmethod
    def of(cls, samples: Samples, at: float) -> Reading:
        """The reading of ``samples`` taken at ``at``."""
        return cls(
            at=at,
            records_in=_total(samples, _DOCUMENTS, stage="route"),
            deliveries=_total(samples, _AGENCY_DOCUMENTS, direction="received"),
            buckets=_buckets(samples),
            lag=_by(samples, "lienthong_consumer_lag", "topic"),
        )


def _delta(newer: Reading, older: Reading) -> tuple[tuple[float, float], ...]:
    before = dict(older.buckets)
    return tuple((bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in newer.buckets)


def _rate(newer: float, older: float, seconds: float) -> float:
    # A counter that went down is a hub restarted with fresh metrics: no rate rather than a negative one.
    return max(0.0, newer - older) / seconds if seconds > 0 else 0.0


class History:
    """The last ``size`` readings (one every couple of seconds), for rates and the charts."""

    def __init__(self, size: int) -> None:
        self._readings: deque[Reading] = deque(maxlen=size)

    def add(self, reading: Reading) -> None:
        """Keep ``reading`` (the oldest one goes when full)."""
        self._readings.append(reading)

    def _before(self, reading: Reading, seconds: float) -> Reading | None:
        """The newest kept reading at least ``seconds`` older than ``reading`` (else the oldest), or None."""
        older = [r for r in self._readings if r.at < reading.at]
        if not older:
            return None
        far_enough = [r for r in older if r.at <= reading.at - seconds]
        return far_enough[-1] if far_enough else older[0]

    def rates(self, now: Reading) -> tuple[float, float]:
        """Records in and deliveries out per second, over about the last ten seconds."""
        before = self._before(now, _RATE_WINDOW)
        if before is None:
            return 0.0, 0.0
        seconds = now.at - before.at
        return _rate(now.records_in, before.records_in, seconds), _rate(now.deliveries, before.deliveries, seconds)

    def series(self) -> dict[str, Any]:
        """The charts' data: per reading, rates, p50/p90 (ms) of the last half minute, and lag per topic."""
        readings = list(self._readings)
        times: list[float] = []
        rates_in: list[float | None] = []
        rates_out: list[float | None] = []
        p50: list[float | None] = []
        p90: list[float | None] = []
        topics = sorted({topic for r in readings for topic in r.lag})
        lag: dict[str, list[float | None]] = {topic: [] for topic in topics}
        for reading in readings:
            times.append(reading.at)
            before = self._before(reading, _RATE_WINDOW)
            if before is None:
                rates_in.append(None)
                rates_out.append(None)
            else:
                seconds = reading.at - before.at
                rates_in.append(_rate(reading.records_in, before.records_in, seconds))
                rates_out.append(_rate(reading.deliveries, before.deliveries, seconds))
            window = self._before(reading, _LATENCY_WINDOW)
            recent = _delta(reading, window) if window is not None else ()  # the first reading has no "recent"
            p50.append(_ms(histogram_quantile(0.5, recent)))
            p90.append(_ms(histogram_quantile(0.9, recent)))
            for topic in topics:
                lag[topic].append(reading.lag.get(topic))
        return {"t": times, "in": rates_in, "out": rates_out, "p50_ms": p50, "p90_ms": p90, "lag": lag}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _count(value: float | None) -> int | None:
    return None if value is None else round(value)


def _timestamp(value: float | None) -> float | None:
    """A Unix time from a gauge; 0 (set before anything happened) is no time at all."""
    return value or None


def summary(samples: Samples, history: History, now: Reading, agency_figures: AgencyFigures | None) -> dict[str, Any]:
    """The JSON object ``/api/summary`` serves: every figure of the page, and the charts' series."""
    rate_in, rate_out = history.rates(now)
    dead_letters = _by(samples, "lienthong_dead_letters_total", "reason")
    rejections = _by(samples, _DOCUMENTS, "reason", stage="route", outcome="rejected")
    documents = _pairs(samples, _AGENCY_DOCUMENTS, "agency", "direction")
    statuses = _by(samples, _AGENCY_STATUSES, "agency")
    vxp_failed = _by(samples, "lienthong_vxp_failed_total", "agency")
    figures = agency_figures or {}
    agencies = sorted({a for a, _ in documents} | set(statuses) | set(vxp_failed) | set(figures))
    return {
        "time": now.at,
        "documents": {
            "in_total": round(now.records_in),
            "out_total": round(now.deliveries),
            "in_per_second": round(rate_in, 2),
            "out_per_second": round(rate_out, 2),
        },
        "latency_ms": {
            "p50": _ms(histogram_quantile(0.5, now.buckets)),
            "p90": _ms(histogram_quantile(0.9, now.buckets)),
            "count": round(_total(samples, _END_TO_END_COUNT)),
        },
        "lag": {topic: round(v) for topic, v in sorted(now.lag.items())},
        "rejections": {reason: round(n) for reason, n in sorted(rejections.items(), key=lambda kv: -kv[1]) if n},
        "dead_letters": [
            {"reason": reason, "count": round(n), "replay": replay_command(reason)}
            for reason, n in sorted(dead_letters.items(), key=lambda kv: -kv[1])
            if n
        ],
        "axis": {
            "queued": _count(_value(samples, "lienthong_axis_queued")),
            "sent": round(_total(samples, "lienthong_axis_sent_total")),
            "received": round(_total(samples, "lienthong_axis_received_total")),
            "errors": round(_total(samples, "lienthong_axis_errors_total")),
            "last_success": _timestamp(_value(samples, "lienthong_axis_last_success_timestamp_seconds")),
        },
        "agencies": [
            {
                "organ_id": agency,
                "sent": round(documents.get((agency, "sent"), 0)),
                "received": round(documents.get((agency, "received"), 0)),
                "refused": round(documents.get((agency, "refused"), 0)),
                "statuses": round(statuses.get(agency, 0)),
                "outstanding": figures[agency].get("outstanding") if agency in figures else None,
                "overdue": figures[agency].get("overdue") if agency in figures else None,
                "vxp_failed": round(vxp_failed.get(agency, 0)),
            }
            for agency in agencies
        ],
        "agency_figures": agency_figures is not None,
        "ledger": {
            "size": _count(_value(samples, "lienthong_ledger_size")),
            "last_seal": _timestamp(_value(samples, "lienthong_ledger_last_seal_timestamp_seconds")),
            "last_seal_size": _count(_value(samples, "lienthong_ledger_last_seal_size")),
        },
        "crl_next_update": _timestamp(_value(samples, "lienthong_crl_next_update_timestamp_seconds")),
        "held": _count(_value(samples, "lienthong_held_documents")),  # waiting for revocation data (hub.hold)
        "workers": {
            "configured": _count(_value(samples, "lienthong_workers_configured")),
            "running": _count(_value(samples, "lienthong_workers_running")),
        },
        "series": history.series(),
    }


def _pairs(samples: Samples, name: str, first: str, second: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for labels, value in _matching(samples, name, {}):
        key = (labels.get(first, ""), labels.get(second, ""))
        out[key] = out.get(key, 0.0) + value
    return out
