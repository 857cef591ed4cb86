"""The hub's Prometheus metrics, on an explicit registry (never the global one).

Worker processes write to ``PROMETHEUS_MULTIPROC_DIR`` (set by ``lienthong up``), and the one ``/metrics``
endpoint of ``lienthong up`` collects them all; a worker started on its own serves its own registry.
Names follow ``lienthong_<what>_total|_seconds|_bytes``.

Per-agency labels are bounded: an OrganId in the directory, anything else ``other`` (``agency_label``), so a sender
cannot grow the series without limit by inventing OrganIds. Gauges that hold a point in time (the last seal, the
earliest CRL nextUpdate) exist only once they have a value (``LazyGauge``): absent, never a misleading 0.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Container, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["OTHER_AGENCY", "HubMetrics", "LazyGauge", "agency_label", "collecting_registry", "status_code_label"]

#: The ``agency`` label of every OrganId the directory does not know.
OTHER_AGENCY = "other"
#: The status codes counted under their own label (progress 01–06); the rest (13, 15, 16, unreadable) are "other".
_PROGRESS_CODES = frozenset({"01", "02", "03", "04", "05", "06"})

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def agency_label(organ_id: str, known: Container[str]) -> str:
    """``organ_id`` when the directory knows it (``known``: its OrganIds), else ``other``: bounded cardinality."""
    return organ_id if organ_id and organ_id in known else OTHER_AGENCY


def status_code_label(code: str) -> str:
    """A status code as a label: 01–06 as they are, anything else ``other``."""
    return code if code in _PROGRESS_CODES else "other"


class LazyGauge:
    """A label-free gauge that appears on ``/metrics`` only once set.

    A gauge created up front reads 0 until set (in multiprocess mode too), and a timestamp of 0 would look like a
    seal or a CRL from 1970 to an alert rule. Thread-safe: the first ``set`` creates it.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        registry: CollectorRegistry,
        multiprocess_mode: Literal["min", "max", "livemin", "livemax", "mostrecent"],
    ) -> None:
        self.name = name
        self._documentation = documentation
        self._registry = registry
        self._mode = multiprocess_mode
        self._gauge: Gauge | None = None
        self._lock = threading.Lock()

    def set(self, value: float) -> None:
        """Set the value (creating the gauge the first time)."""
        with self._lock:
            if self._gauge is None:
                self._gauge = Gauge(
                    self.name, self._documentation, registry=self._registry, multiprocess_mode=self._mode
                )
        self._gauge.set(value)


@dataclass(frozen=True)
class HubMetrics:
    """Every metric the hub exports."""

    registry: CollectorRegistry
    documents: Counter
    stage_seconds: Histogram
    end_to_end_seconds: Histogram
    bytes_in: Counter
    dead_letters: Counter
    consumer_lag: Gauge
    ledger_size: Gauge
    edxml_warnings: Counter
    directory_refused: Counter
    ledger_refused: Counter
    agency_documents: Counter
    agency_statuses: Counter
    crl_next_update: LazyGauge
    crl_refused: Counter
    held_documents: Gauge
    ledger_last_seal: LazyGauge
    ledger_last_seal_size: LazyGauge
    tsa_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> HubMetrics:
        """Register the metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            documents=Counter(
                "lienthong_documents_total",
                "Records processed, by stage, outcome and reason code",
                ["stage", "outcome", "reason"],
                registry=registry,
            ),
            stage_seconds=Histogram(
                "lienthong_stage_seconds",
                "Time spent in each stage",
                ["stage"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            end_to_end_seconds=Histogram(
                "lienthong_end_to_end_seconds",
                "From the inbound record's timestamp to its deliveries being on the broker",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            bytes_in=Counter("lienthong_inbound_bytes_total", "Bytes of documents received", registry=registry),
            dead_letters=Counter(
                "lienthong_dead_letters_total", "Records sent to lienthong.deadletter", ["reason"], registry=registry
            ),
            consumer_lag=Gauge(
                "lienthong_consumer_lag",
                "Records not yet processed and committed, per topic (summed over the live workers)",
                ["topic"],
                registry=registry,
                multiprocess_mode="livesum",
            ),
            ledger_size=Gauge(
                "lienthong_ledger_size", "Events in the Merkle ledger", registry=registry, multiprocess_mode="max"
            ),
            edxml_warnings=Counter(
                "lienthong_edxml_warnings_total",
                "Field quirks accepted with a warning (README, 'Field quirks'), by sending agency and code",
                ["agency", "code"],
                registry=registry,
            ),
            directory_refused=Counter(
                "lienthong_directory_refused_total",
                "Directory records not applied (unsigned, malformed, unknown_key, bad_signature, stale)",
                ["reason"],
                registry=registry,
            ),
            ledger_refused=Counter(
                "lienthong_ledger_refused_total",
                "lienthong.ledger records not appended: no valid MAC of a hub worker (hub.ledger_mac), by reason",
                ["reason"],
                registry=registry,
            ),
            agency_documents=Counter(
                "lienthong_agency_documents_total",
                "Documents per agency (an OrganId in the directory, else other): sent, received, or refused "
                "(records of the agency the hub refused)",
                ["agency", "direction"],
                registry=registry,
            ),
            agency_statuses=Counter(
                "lienthong_agency_statuses_total",
                "Statuses an agency sent that the hub relayed, by code (01-06, else other)",
                ["agency", "code"],
                registry=registry,
            ),
            crl_next_update=LazyGauge(
                "lienthong_crl_next_update_timestamp_seconds",
                "The earliest nextUpdate among the CRLs the workers hold (Unix time; absent with no CRL)",
                registry,
                "min",
            ),
            crl_refused=Counter(
                "lienthong_crl_refused_total",
                "CRLs or distribution points not used (hub.revocation's CrlRefusal: unreachable, bad-signature, ...)",
                ["reason"],
                registry=registry,
            ),
            held_documents=Gauge(
                "lienthong_held_documents",
                "Documents held on lienthong.work.retry for lack of current revocation data (summed over live workers)",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            ledger_last_seal=LazyGauge(
                "lienthong_ledger_last_seal_timestamp_seconds",
                "When the last signed tree head of the ledger was sealed (Unix time; absent before the first)",
                registry,
                "max",
            ),
            ledger_last_seal_size=LazyGauge(
                "lienthong_ledger_last_seal_size",
                "Events the last signed tree head covers",
                registry,
                "max",
            ),
            tsa_errors=Counter(
                "lienthong_tsa_errors_total",
                "Tree heads not sealed for want of a time-stamp, by reason (unreachable, invalid); retried next seal",
                ["reason"],
                registry=registry,
            ),
        )

    def count_route(
        self, kind: str, *, sender: str, recipients: Iterable[str], status_code: str, known: Container[str]
    ) -> None:
        """The per-agency counters of one routed record (``kind``: delivered, relayed, rejected or duplicate)."""
        if kind == "delivered":
            self.agency_documents.labels(agency_label(sender, known), "sent").inc()
            for recipient in recipients:
                self.agency_documents.labels(agency_label(recipient, known), "received").inc()
        elif kind == "relayed":
            self.agency_statuses.labels(agency_label(sender, known), status_code_label(status_code)).inc()
        elif kind == "rejected":
            self.agency_documents.labels(agency_label(sender, known), "refused").inc()


def collecting_registry() -> CollectorRegistry:
    """A registry that gathers every worker's metrics (multiprocess mode), for the ``/metrics`` endpoint."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def forget_dead_processes(folder: Path) -> None:
    """Drop the live gauges of processes in ``folder`` that no longer run (a unit restarted by systemd).

    ``lienthong up`` does this for the children it supervises; ``lienthong dashboard`` has no children, so it looks
    at the process ids in the files' names (processes of this host, same user).
    """
    for path in folder.glob("gauge_live*_*.db"):  # e.g. gauge_livesum_1234.db
        pid = path.stem.rsplit("_", 1)[1]
        if pid.isdigit() and not _running(int(pid)):
            mark_process_dead(int(pid), str(folder))  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
