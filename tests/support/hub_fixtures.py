"""The whole hub on the real embedded servers (SeaweedFS, Apache Kafka, worker processes), for end-to-end tests.

``hub_stack`` starts ``hub.up.Hub`` with the demo PKI and directory on free ports in a temporary folder;
``Outputs`` reads what the hub produced (inboxes, statuses, axis, dead letters) so that tests can count.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from adapters.kafka import KafkaConnection
from hub.demo import DemoMaterial, create_demo_material
from hub.embedded.kafka import EmbeddedKafka
from hub.settings import HubSettings, LogLevel
from hub.up import Hub, demo_settings_on_free_ports

__all__ = ["Outputs", "Stack", "demo_material", "hub_stack", "module_hub_stack", "start_external_stack", "start_stack"]

OUTPUT_PATTERN = r"^lienthong\.(inbox\..*|status\..*|axis\.outbound|deadletter)$"


@dataclass
class Stack:
    """A running hub and what tests need to drive it."""

    hub: Hub
    material: DemoMaterial

    @property
    def settings(self) -> HubSettings:
        """The running hub's settings (with the secrets it generated)."""
        return self.hub.settings

    @property
    def connection(self) -> KafkaConnection:
        """The hub's own Kafka principal (a super user)."""
        return self.settings.kafka

    def logs(self, lines: int = 40) -> str:
        """The last ``lines`` of each worker's log: what a failed fault test prints to say where the hub stood."""
        parts = []
        for path in sorted((self.settings.data_dir / "logs").glob("worker-*.log")):
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)


def demo_material(folder: Path) -> DemoMaterial:
    """The demo PKI, keys and directory in ``folder``: a copy of one made once per test process (keys take seconds)."""
    global _MATERIAL  # noqa: PLW0603 - one template per process, made on first use
    if _MATERIAL is None:
        template = Path(tempfile.mkdtemp(prefix="lienthong-material-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        _MATERIAL = template / "demo"
        create_demo_material(_MATERIAL)
    if not folder.exists():
        shutil.copytree(_MATERIAL, folder)
    return create_demo_material(folder)  # loads the copy


_MATERIAL: Path | None = None


def start_stack(data: Path, *, workers: int = 1, seal_interval: float = 1.0, **overrides: Any) -> Stack:
    """Start a hub with the demo material on free ports in ``data`` (``overrides``: other settings)."""
    material = demo_material(data / "demo")
    overrides.setdefault("log_level", LogLevel.INFO)  # rebalances and in-doubt checks in DATA/logs (Stack.logs)
    settings = demo_settings_on_free_ports(data, seal_interval_seconds=seal_interval, **overrides)
    hub = Hub(settings, workers=workers, progress=lambda _line: None)
    hub.start()
    return Stack(hub, material)


def start_external_stack(data: Path, broker: EmbeddedKafka) -> Stack:
    """Start a hub with the demo material on ``broker`` reached as an operator's cluster (the settings' path)."""
    material = demo_material(data / "demo")
    connection = broker.connection
    settings = demo_settings_on_free_ports(
        data,
        kafka_external=True,
        kafka_bootstrap=connection.bootstrap,
        kafka_username=connection.username,
        kafka_password=connection.password,
        kafka_tls=connection.tls,
        kafka_ca_file=connection.ca_file,
        kafka_replication=broker.replication,
        log_level=LogLevel.INFO,
    )
    hub = Hub(settings, workers=1, progress=lambda _line: None)
    hub.start()
    return Stack(hub, material)


@pytest.fixture(name="stack")
def hub_stack(tmp_path: Path) -> Iterator[Stack]:
    """A running hub with one worker in a temporary folder, stopped afterwards."""
    running = start_stack(tmp_path / "data")
    try:
        yield running
    finally:
        running.hub.stop()


@pytest.fixture(name="module_stack", scope="module")
def module_hub_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running hub for a whole test module (its tests may build on each other's changes), stopped afterwards."""
    running = start_stack(tmp_path_factory.mktemp("hub") / "data")
    try:
        yield running
    finally:
        running.hub.stop()


@dataclass
class Outputs:
    """Every record on the hub's output topics, read from the beginning."""

    connection: KafkaConnection
    records: dict[str, list[tuple[dict[str, bytes], bytes]]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self._consumer = KafkaConsumer(auto_offset_reset="earliest", group_id=None, **self.connection.options())
        self._consumer.subscribe(pattern=OUTPUT_PATTERN)

    def poll(self, seconds: float = 1.0) -> int:
        """Read what arrived in the next ``seconds``; return how many records."""
        got = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for tp, messages in self._consumer.poll(timeout_ms=200).items():
                for message in messages:
                    headers = {k: bytes(v or b"") for k, v in message.headers or ()}
                    self.records[tp.topic].append((headers, message.value or b""))
                    got += 1
        return got

    def skip_existing(self, *, timeout: float = 60.0) -> None:
        """Read past every record already on the output topics and forget them: count only what comes next.

        For a test on a hub that earlier tests of its module used: its exact counts then cover its own records.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._consumer.poll(timeout_ms=200)  # the first polls assign the partitions of the matching topics
            assigned = self._consumer.assignment()
            if assigned:
                ends = self._consumer.end_offsets(list(assigned))
                if all(self._consumer.position(tp) >= ends[tp] for tp in assigned):
                    self.records.clear()
                    return
        raise AssertionError(f"the output topics were not read to their end within {timeout:g}s")

    def deliveries(self) -> list[tuple[str, dict[str, bytes], bytes]]:
        """(topic, headers, value) on the inboxes and the axis."""
        return [
            (topic, headers, value)
            for topic, items in self.records.items()
            if topic.startswith("lienthong.inbox.") or topic == "lienthong.axis.outbound"
            for headers, value in items
        ]

    def wait_for(self, condition: object, *, timeout: float) -> bool:
        """Poll until ``condition(self)`` is true or ``timeout`` seconds pass (re-subscribing to new topics)."""
        assert callable(condition)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.25)  # a condition met is seen within a quarter second
            if condition(self):
                return True
        return bool(condition(self))

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
