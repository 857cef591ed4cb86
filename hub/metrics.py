"""The hub's Prometheus metrics, on an explicit registry (never the global one).

Worker processes write to ``PROMETHEUS_MULTIPROC_DIR`` (set by ``lienthong up``), and the one ``/metrics``
endpoint of ``lienthong up`` collects them all; a worker started on its own serves its own registry.
Names follow ``lienthong_<what>_total|_seconds|_bytes``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["HubMetrics", "collecting_registry"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
        )


def collecting_registry() -> CollectorRegistry:
    """A registry that gathers every worker's metrics (multiprocess mode), for the ``/metrics`` endpoint."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
