"""What the hub relies on in the embedded Apache Kafka, each shown against the real broker.

Authentication and the authorizer (nothing unauthenticated or unauthorised gets in), idempotent producers, true
end offsets, real compaction, fast group rejoins (``lienthong receive --timeout 5`` twice), topic layout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import confluent_kafka
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from adapters.kafka import KafkaConnection
from hub.cli import main
from hub.embedded.kafka import EmbeddedKafka, TopicLayoutError, create_topics
from tests.support.broker_fixtures import unique_topic

pytestmark = pytest.mark.servers


def _add_user(broker: EmbeddedKafka, name: str, password: str) -> KafkaConnection:
    """A SCRAM user with no ACLs (the next issue's agencies start like this)."""
    admin = AdminClient(broker.connection.librdkafka())
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upsert = UserScramCredentialUpsertion(name, info, password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)
    return KafkaConnection(broker.bootstrap, name, password)


def _produce_one(connection: KafkaConnection, topic: str, *, timeout: float = 10.0) -> str | None:
    """Produce one record with librdkafka; the error's name, or None when the broker took it."""
    outcome: list[str | None] = []
    producer = confluent_kafka.Producer(
        {**connection.librdkafka(), "message.timeout.ms": int(timeout * 1000), "log_level": 0}
    )
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: outcome.append(err.name() if err else None))
    producer.flush(timeout + 5)
    return outcome[0] if outcome else "NO_ANSWER"


def test_a_client_without_credentials_or_with_a_wrong_password_gets_nothing_in(kafka_broker: EmbeddedKafka) -> None:
    """No SASL, or a wrong SCRAM password: the broker takes no record."""
    topic = unique_topic()
    kafka_broker.create_topics({topic: 1})
    assert _produce_one(KafkaConnection(kafka_broker.bootstrap), topic, timeout=3) is not None
    wrong = KafkaConnection(kafka_broker.bootstrap, kafka_broker.username, "not-the-password")
    assert _produce_one(wrong, topic, timeout=3) is not None
    assert _produce_one(kafka_broker.connection, topic) is None


def test_an_authenticated_principal_without_acls_can_neither_write_nor_read(kafka_broker: EmbeddedKafka) -> None:
    """The standard authorizer denies by default: a valid SCRAM user with no ACL cannot produce or consume."""
    topic = unique_topic()
    kafka_broker.create_topics({topic: 1})
    assert _produce_one(kafka_broker.connection, topic) is None
    stranger = _add_user(kafka_broker, unique_topic("user"), "a-long-enough-password")
    assert _produce_one(stranger, topic, timeout=5) == "TOPIC_AUTHORIZATION_FAILED"
    consumer = confluent_kafka.Consumer(
        {**stranger.librdkafka(), "group.id": unique_topic("g"), "auto.offset.reset": "earliest", "log_level": 0}
    )
    consumer.subscribe([topic])
    errors = []
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is not None:
            errors.append(message.error().name())
        assert message is None or message.error() is not None, "an unauthorised consumer read a record"
    consumer.close()
    assert errors, "the broker never refused the unauthorised consumer"
    assert errors[0] in {"TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED"}


def test_aiokafka_idempotent_producer_and_true_end_offsets(kafka_broker: EmbeddedKafka) -> None:
    """Aiokafka's idempotent producer works, and ListOffsets(LATEST) is the offset after the last record."""
    topic = unique_topic()
    kafka_broker.create_topics({topic: 2})

    async def scenario() -> dict[TopicPartition, int]:
        producer = AIOKafkaProducer(enable_idempotence=True, linger_ms=50, **kafka_broker.connection.options())
        await producer.start()
        try:
            futures = [await producer.send(topic, b"v%d" % n, partition=n % 2) for n in range(101)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(group_id=None, **kafka_broker.connection.options())
        await consumer.start()
        try:
            return await consumer.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        finally:
            await consumer.stop()

    ends = asyncio.run(scenario())
    assert ends == {TopicPartition(topic, 0): 51, TopicPartition(topic, 1): 50}


def test_a_compacted_topic_keeps_the_last_record_of_each_key(kafka_broker: EmbeddedKafka) -> None:
    """``create_topics(compacted=…)`` makes a topic that Kafka really compacts (the directory topic's contract)."""
    topic = unique_topic("directory")
    kafka_broker.create_topics({topic: 1}, compacted={topic})
    admin = KafkaAdminClient(**kafka_broker.connection.options())
    # Compaction runs on closed segments: roll them fast here, so that the test need not wait an hour.
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "100"})])
    admin.close()
    producer = KafkaProducer(**kafka_broker.connection.options())
    for round_ in range(20):
        for key in range(5):
            producer.send(topic, key=b"agency-%d" % key, value=b"version %d" % round_)
        producer.flush()
        time.sleep(0.15)
    deadline = time.monotonic() + 90
    values: list[tuple[bytes, bytes]] = []
    while time.monotonic() < deadline:
        producer.send(topic, key=b"tick", value=b"roll")  # a newer segment, so that the older ones can close
        producer.flush()
        consumer = KafkaConsumer(
            topic, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=2000,
            **kafka_broker.connection.options(),
        )
        values = [(m.key, m.value) for m in consumer if m.key != b"tick"]
        consumer.close()
        if len(values) < 100:
            break
        time.sleep(2)
    producer.close()
    assert len(values) < 100, "the cleaner never compacted the topic"
    latest = dict(values)
    assert latest == {b"agency-%d" % k: b"version 19" for k in range(5)}


def test_create_topics_adds_partitions_and_refuses_to_shrink(kafka_broker: EmbeddedKafka) -> None:
    """A topic planned with more partitions grows; one planned with fewer is a clear error."""
    topic = unique_topic()
    create_topics(kafka_broker.connection, {topic: 2})
    create_topics(kafka_broker.connection, {topic: 4})
    consumer = KafkaConsumer(**kafka_broker.connection.options())
    assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
    consumer.close()
    with pytest.raises(TopicLayoutError, match=f"{topic} has 4, want 1"):
        create_topics(kafka_broker.connection, {topic: 1})


def test_receive_twice_on_one_group_gets_what_is_waiting(
    kafka_broker: EmbeddedKafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lienthong receive --timeout 5` twice on one group: the second call gets what arrived in between."""
    agency = "000.07.00.H41"
    kafka_broker.create_topics({f"lienthong.inbox.{agency}": 1, f"lienthong.status.{agency}": 1})
    data = tmp_path / "data"
    data.mkdir()
    settings = {
        "kafka_bootstrap": kafka_broker.bootstrap,
        "kafka_username": kafka_broker.username,
        "kafka_password": kafka_broker.connection.password,
    }
    (data / "settings.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    receive = ["receive", "--agency", agency, "--timeout", "5", "--data", str(data), "--json"]
    assert main(receive) == 0
    producer = KafkaProducer(**kafka_broker.connection.options())
    for n in range(3):
        producer.send(f"lienthong.inbox.{agency}", value=b"<edXML>%d</edXML>" % n)
    producer.flush()
    producer.close()
    capsys.readouterr()
    assert main(receive) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines


def test_cluster_ids_are_22_characters_of_url_safe_base64_of_16_bytes() -> None:
    """The KRaft cluster id made without a JVM has the shape `kafka-storage random-uuid` gives, never a leading '-'."""
    import base64  # noqa: PLC0415

    from hub.embedded.kafka import random_cluster_id  # noqa: PLC0415

    for _ in range(200):
        text = random_cluster_id()
        assert len(text) == 22
        assert not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16
