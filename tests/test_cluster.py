"""The hub on a real 3-broker Kafka cluster (replication 3, ``min.insync.replicas=2``), reached as an external one.

``lienthong up`` takes the cluster through the settings an operator would give (``kafka_external``,
``kafka_bootstrap``, the SASL principal, ``kafka_replication``); one broker is SIGKILLed mid-stream.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.demo import demo_documents
from hub.embedded.kafka import EmbeddedKafka
from hub.up import wait_until
from tests.support.hub_fixtures import Outputs, start_external_stack
from tests.test_hub_e2e import _delivered, _expected, _send
from tests.test_hub_faults import assert_each_delivered_once

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]  # thousands of documents through the whole hub


def test_a_broker_killed_mid_stream_loses_and_duplicates_nothing(kafka_cluster: EmbeddedKafka, tmp_path: Path) -> None:
    """SIGKILL of one of three brokers during 2,500 documents: every delivery exactly once, the ledger verifies."""
    stack = start_external_stack(tmp_path / "data", kafka_cluster)
    hub, material = stack.hub, stack.material
    try:
        documents = [d for d in demo_documents(material, 2500, start_number=70_000) if d.expect == "delivered"]
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


def test_acl_plan_apply_protects_agencies_on_an_operators_cluster(
    kafka_cluster: EmbeddedKafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a cluster the hub did not set up, `acl plan --apply` alone keeps each agency to its own topics."""
    import yaml  # noqa: PLC0415
    from kafka import KafkaConsumer, KafkaProducer  # noqa: PLC0415
    from kafka.errors import TopicAuthorizationFailedError  # noqa: PLC0415

    from adapters.kafka import KafkaConnection  # noqa: PLC0415
    from hub.access import topic_plan  # noqa: PLC0415
    from hub.cli import main  # noqa: PLC0415
    from hub.directory import Agency, Directory, Route  # noqa: PLC0415
    from hub.embedded.kafka import create_topics  # noqa: PLC0415
    from hub.settings import HubSettings  # noqa: PLC0415
    from hub.signed_directory import (  # noqa: PLC0415
        admin_signing_key,
        create_admin_identity,
        publish_records,
        sign_record,
    )

    mine, theirs = "000.51.00.H41", "000.52.00.H41"  # agencies no hub on this cluster has granted anything
    directory = Directory([Agency(mine, "A", Route.LOCAL), Agency(theirs, "B", Route.LOCAL)])
    data = tmp_path / "data"
    data.mkdir()
    plain = {
        "data_dir": str(data),
        "kafka_external": True,
        "kafka_bootstrap": kafka_cluster.bootstrap,
        "kafka_username": kafka_cluster.username,
        "kafka_password": kafka_cluster.connection.password,
    }
    (data / "settings.yaml").write_text(yaml.safe_dump(plain), encoding="utf-8")
    settings = HubSettings.load(data / "settings.yaml")
    topics, compacted = topic_plan(settings, directory)
    create_topics(settings.kafka, topics, compacted=compacted, replication=3)
    create_admin_identity(settings)
    with admin_signing_key(settings) as key:
        publish_records(settings.kafka, [(a.id, sign_record(key, a.id, a, datetime.now(UTC))) for a in directory])
    producer = KafkaProducer(acks="all", **settings.kafka.options())
    producer.send(f"lienthong.inbox.{theirs}", b"their letter").get(30)
    producer.close()
    assert main(["acl", "plan", "--data", str(data)]) == 0
    planned = capsys.readouterr().out
    assert f"User:agency-{mine} ALLOW WRITE TOPIC LITERAL lienthong.outbox.{mine}" in planned
    assert main(["acl", "plan", "--data", str(data), "--apply"]) == 0
    assert "applied" in capsys.readouterr().out
    assert main(["agency", "credentials", mine, "--data", str(data), "--json"]) == 0
    agency = KafkaConnection.from_credentials(json.loads(capsys.readouterr().out))
    allowed = KafkaProducer(acks="all", **agency.options())
    allowed.send(f"lienthong.outbox.{mine}", b"mine").get(30)
    with pytest.raises(TopicAuthorizationFailedError):
        allowed.send(f"lienthong.outbox.{theirs}", b"forged").get(30)
    allowed.close()
    spy = KafkaConsumer(group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=5000, **agency.options())
    spy.subscribe([f"lienthong.inbox.{theirs}"])
    assert [m.value for m in spy] == []  # their letter is there, but this principal cannot even see the topic
    spy.close()
