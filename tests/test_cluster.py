"""The hub on a real 3-broker Kafka cluster (replication 3, ``min.insync.replicas=2``), reached as an external one.

``lienthong up`` takes the cluster through the settings an operator would give (``kafka_external``,
``kafka_bootstrap``, the SASL principal, ``kafka_replication``); one broker is SIGKILLed mid-stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.demo import create_demo_material, demo_documents
from hub.embedded.kafka import EmbeddedKafka
from hub.up import Hub, demo_settings_on_free_ports, wait_until
from tests.support.hub_fixtures import Outputs, Stack
from tests.test_hub_e2e import _delivered, _expected, _send
from tests.test_hub_faults import assert_each_delivered_once

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]  # thousands of documents through the whole hub


def test_a_broker_killed_mid_stream_loses_and_duplicates_nothing(kafka_cluster: EmbeddedKafka, tmp_path: Path) -> None:
    """SIGKILL of one of three brokers during 5,000 documents: every delivery exactly once, the ledger verifies."""
    data = tmp_path / "data"
    material = create_demo_material(data / "demo")
    settings = demo_settings_on_free_ports(
        data,
        kafka_external=True,
        kafka_bootstrap=kafka_cluster.bootstrap,
        kafka_username=kafka_cluster.username,
        kafka_password=kafka_cluster.connection.password,
        kafka_replication=3,
    )
    hub = Hub(settings, workers=1, progress=lambda _line: None)
    hub.start()
    stack = Stack(hub, material)
    try:
        documents = [d for d in demo_documents(material, 5000, start_number=70_000) if d.expect == "delivered"]
        expected = _expected(documents)
        outputs = Outputs(stack.connection)
        _send(stack, documents)
        assert outputs.wait_for(lambda o: sum(_delivered(o).values()) > sum(expected.values()) // 3, timeout=300)
        kafka_cluster.kill(1)
        assert_each_delivered_once(stack, outputs, expected)
    finally:
        hub.stop()
        if not kafka_cluster.process(1).running:
            kafka_cluster.restart(1)
    assert wait_until(lambda: kafka_cluster.process(1).running, timeout=5)
