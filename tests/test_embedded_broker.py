"""Facts about the embedded broker (Tansu) that the hub depends on, each pinned against the real server.

Where Tansu differs from Kafka the test says so; hub/embedded/kafka.py explains how the hub copes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import confluent_kafka
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IncompatibleBrokerVersion, KafkaError, MessageSizeTooLargeError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from lxml import etree
from minio import Minio
from minio.error import S3Error

from hub.embedded._process import ManagedProcess, free_port
from hub.embedded.kafka import (
    EmbeddedKafka,
    S3Storage,
    TopicLayoutError,
    _tansu_s3_env,
    create_topics,
    end_offsets,
)
from hub.embedded.s3 import EmbeddedS3
from tests.support.broker_fixtures import require_tansu, unique_topic

pytestmark = pytest.mark.servers

T = TypeVar("T")

HEADERS: list[tuple[str, str | bytes | None]] = [("bin", b"\x00\xff\x80"), ("empty", b""), ("dup", b"1"), ("dup", b"2")]


def run(coro: Awaitable[T]) -> T:
    """Run one scenario on a fresh event loop."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def produce(bootstrap: str, topic: str, values: list[bytes], *, partition: int = 0, linger_ms: int = 50) -> int:
    """Send ``values`` as one batch to ``partition``; the offset of the last."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=b"k", partition=partition) for v in values]
        return max([int((await f).offset) for f in futures])
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, partitions: int = 1) -> list[tuple[int, int, bytes | None]]:
    """Every record of ``topic`` as ``(partition, offset, value)``, read from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, int, bytes | None]] = []
        while batches := await consumer.getmany(timeout_ms=1000):
            out += [(tp.partition, r.offset, r.value) for tp, records in batches.items() for r in records]
        return sorted(out)
    finally:
        await consumer.stop()


async def described_configs(bootstrap: str, kind: ConfigResourceType, name: str) -> list[tuple[str, str]]:
    """DescribeConfigs as Tansu answers it: ``(name, value)`` pairs (kafka-python 3 hides these "defaults")."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(kind, name)])
    finally:
        await admin.close()
    return [(entry[0], entry[1]) for entry in response.resources[0][4]]


async def until(condition: Callable[[], bool]) -> float:
    """Wait (20 s at most) until ``condition()``; the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - the conditions are client state, with no event to await
            await asyncio.sleep(0.05)
    return time.monotonic() - start


# --- records and clients -------------------------------------------------------------------------------------


def test_aiokafka_round_trips_keys_binary_headers_empty_and_null_values(kafka_broker: EmbeddedKafka) -> None:
    """Keys, binary/empty/repeated headers, a 0-byte value and a null value come back exactly as sent."""
    topic = unique_topic()
    create_topics(kafka_broker.bootstrap, {topic: 1})

    async def scenario() -> list[Any]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, b"", key=b"empty", headers=HEADERS)
        await producer.send_and_wait(topic, None, key=b"null")
        await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        records: list[Any] = []
        while len(records) < 2:
            records += [r for rs in (await consumer.getmany(timeout_ms=2000)).values() for r in rs]
        await consumer.stop()
        return records

    empty, null = run(scenario())
    assert (empty.key, empty.value, list(empty.headers)) == (b"empty", b"", HEADERS)
    assert (null.key, null.value, list(null.headers)) == (b"null", None, [])


def test_kafka_python_and_confluent_kafka_interoperate_with_aiokafka(kafka_broker: EmbeddedKafka) -> None:
    """Records with headers written by kafka-python and librdkafka read back identically in all three clients."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"kp", key=b"kp", headers=HEADERS).get(timeout=10)
    producer.close()
    rdkafka = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    rdkafka.produce(topic, value=b"", key=b"ck", headers=HEADERS)
    assert rdkafka.flush(10) == 0
    expected = [(b"kp", b"kp", HEADERS), (b"ck", b"", HEADERS)]

    async def with_aiokafka() -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning(TopicPartition(topic, 0))
        got = [r for rs in (await consumer.getmany(timeout_ms=3000)).values() for r in rs]
        await consumer.stop()
        return [(r.key, r.value, list(r.headers)) for r in got]

    assert run(with_aiokafka()) == expected
    reader = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    assert [(m.key, m.value, list(m.headers)) for m in reader] == expected
    reader.close()
    # assign() rather than subscribe(): librdkafka's default 45 s session would make the group join take ~23 s.
    rd_reader = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g")})
    rd_reader.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    got = [m for m in (rd_reader.poll(5) for _ in range(2)) if m is not None and m.error() is None]
    rd_reader.close()
    assert [(m.key(), m.value(), m.headers()) for m in got] == expected


def test_broker_accepts_records_far_above_kafkas_1_mb_default_and_clients_enforce_their_own(
    kafka_broker: EmbeddedKafka,
) -> None:
    """No broker limit (an 8 MiB record is stored, no message.max.bytes reported); aiokafka refuses 1 MiB itself."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 1})
    big = os.urandom(8 << 20)

    async def scenario() -> list[tuple[int, int, bytes | None]]:
        default = AIOKafkaProducer(bootstrap_servers=bootstrap)  # max_request_size 1 MiB, checked before sending
        await default.start()
        with pytest.raises(MessageSizeTooLargeError):
            await default.send_and_wait(topic, b"x" * (1 << 20))
        await default.send_and_wait(topic, b"x" * 900_000)  # the claim-check threshold fits
        await default.stop()
        large = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 << 20)
        await large.start()
        await large.send_and_wait(topic, big)
        await large.stop()
        # The default 1 MiB max_partition_fetch_bytes still returns a larger first record (as Kafka does).
        return await read_all(bootstrap, topic)

    assert [len(value or b"") for _, _, value in run(scenario())] == [900_000, len(big)]
    assert run(described_configs(bootstrap, ConfigResourceType.BROKER, "111")) == []


def test_aiokafka_idempotent_and_transactional_producers_fail(kafka_broker: EmbeddedKafka) -> None:
    """Idempotent and transactional aiokafka producers fail: Tansu answers its InitProducerId v0 with an error."""
    topic = unique_topic()
    create_topics(kafka_broker.bootstrap, {topic: 1})

    async def attempt(**settings: object) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, request_timeout_ms=5000, **settings)
        try:
            await producer.start()
            await asyncio.wait_for(producer.send_and_wait(topic, b"x"), 10)
        finally:
            await producer.stop()

    with pytest.raises(KafkaError, match="UnknownError"):
        run(attempt(enable_idempotence=True))
    with pytest.raises(KafkaError, match="UnknownError"):
        run(attempt(transactional_id=unique_topic("tx")))


def test_kafka_python_and_librdkafka_get_producer_ids_and_transactions(kafka_broker: EmbeddedKafka) -> None:
    """kafka-python (idempotent by default) and librdkafka with a transactional id produce and commit fine."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    assert producer.config["enable_idempotence"] is True
    producer.send(topic, b"idempotent").get(timeout=10)
    producer.close()
    transactional = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_topic("tx")})
    transactional.init_transactions(10)
    transactional.begin_transaction()
    transactional.produce(topic, b"in a transaction")
    transactional.commit_transaction(10)
    assert [v for _, _, v in run(read_all(bootstrap, topic))] == [b"idempotent", b"in a transaction"]


# --- topics and offsets ----------------------------------------------------------------------------------------


def test_create_topics_is_idempotent_and_refuses_another_partition_count(kafka_broker: EmbeddedKafka) -> None:
    """create_topics() makes the planned partitions, may run again, and names a topic whose count differs."""
    bootstrap = kafka_broker.bootstrap
    plan = {unique_topic(): 3, unique_topic(): 1}
    create_topics(bootstrap, plan)
    create_topics(bootstrap, plan)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(plan))}
    finally:
        admin.close()
    assert described == plan
    name = next(iter(plan))
    with pytest.raises(TopicLayoutError, match=f"{name} has 3, want 2"):
        create_topics(bootstrap, {name: 2})


def test_aiokafka_metadata_auto_creates_unknown_topics_with_4_partitions_that_cannot_grow(
    kafka_broker: EmbeddedKafka,
) -> None:
    """An aiokafka producer touching an unknown topic creates it with 4 partitions; CreatePartitions is missing."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()

    async def scenario() -> set[int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, b"x")
        partitions = producer.client.cluster.partitions_for_topic(topic)
        await producer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            with pytest.raises(IncompatibleBrokerVersion):
                await admin.create_partitions({topic: NewPartitions(8)})
        finally:
            await admin.close()
        return set(partitions)

    assert run(scenario()) == {0, 1, 2, 3}
    with pytest.raises(TopicLayoutError, match="has 4, want 1"):
        create_topics(bootstrap, {topic: 1})


def test_compaction_policy_is_stored_but_never_applied(kafka_broker: EmbeddedKafka) -> None:
    """cleanup.policy=compact is echoed by DescribeConfigs, yet every record of a key stays readable."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 1}, compacted={topic})
    run(produce(bootstrap, topic, [b"v%d" % i for i in range(20)], linger_ms=0))
    assert ("cleanup.policy", "compact") in run(described_configs(bootstrap, ConfigResourceType.TOPIC, topic))
    time.sleep(1)
    assert len(run(read_all(bootstrap, topic))) == 20


def test_list_offsets_latest_stops_at_the_start_of_the_last_batch(kafka_broker: EmbeddedKafka) -> None:
    """consumer.end_offsets() says 11 after batches of 10 and 5 (base 10 + 1); fetch high watermarks say 15."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 1})
    run(produce(bootstrap, topic, [b"a"] * 10))
    assert run(produce(bootstrap, topic, [b"b"] * 5)) == 14
    tp = TopicPartition(topic, 0)

    async def listed() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            return int((await consumer.end_offsets([tp]))[tp])
        finally:
            await consumer.stop()

    assert run(listed()) == 11
    assert run(end_offsets(bootstrap, [tp])) == {tp: 15}


def test_offsets_for_times_past_the_end_answers_offset_zero(kafka_broker: EmbeddedKafka) -> None:
    """offsets_for_times() is right inside the log, but past its end answers offset 0 (Kafka: none)."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 1})
    run(produce(bootstrap, topic, [b"early"] * 3))
    time.sleep(0.05)
    middle = int(time.time() * 1000)
    time.sleep(0.05)
    run(produce(bootstrap, topic, [b"late"] * 3))
    tp = TopicPartition(topic, 0)

    async def lookup() -> tuple[int, tuple[int, int]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            inside = (await consumer.offsets_for_times({tp: middle}))[tp]
            after = (await consumer.offsets_for_times({tp: int(time.time() * 1000) + 60_000}))[tp]
            return inside.offset, (after.offset, after.timestamp)
        finally:
            await consumer.stop()

    assert run(lookup()) == (3, (0, -1))


def test_a_waiting_fetch_is_not_answered_when_records_arrive(kafka_broker: EmbeddedKafka) -> None:
    """With fetch_max_wait_ms=1000 a new record waits tens to hundreds of ms (Kafka answers at once)."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 1})

    async def scenario() -> list[float]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=1000
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await consumer.start()
        await producer.start()
        delays = []
        try:
            for pause in (0.1, 0.2, 0.3, 0.45, 0.6):
                await consumer.getmany(timeout_ms=50)  # a fetch is now pending on the broker
                await asyncio.sleep(pause)
                sent = time.monotonic()
                await producer.send_and_wait(topic, b"x")
                while not await consumer.getmany(timeout_ms=3000):
                    pass
                delays.append(time.monotonic() - sent)
        finally:
            await producer.stop()
            await consumer.stop()
        return delays

    assert statistics.median(run(scenario())) > 0.04


# --- consumer groups ----------------------------------------------------------------------------------------------


def _group_consumer(bootstrap: str, group: str, session_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(session_ms // 6, 100),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )


async def _pump(consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await consumer.getmany(timeout_ms=100)


def test_group_join_completes_about_half_a_session_timeout_after_it_starts(kafka_broker: EmbeddedKafka) -> None:
    """A lone consumer with a 4 s session is assigned after about 2 s: Tansu waits half the session timeout."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    create_topics(bootstrap, {topic: 2})

    async def scenario() -> float:
        consumer = _group_consumer(bootstrap, unique_topic("g"), 4000)
        stop = asyncio.Event()
        await consumer.start()
        started = time.monotonic()
        consumer.subscribe([topic])
        pump = asyncio.create_task(_pump(consumer, stop))
        try:
            await until(lambda: len(consumer.assignment()) == 2)
            return time.monotonic() - started
        finally:
            stop.set()
            await pump
            await consumer.stop()

    assert 1.8 <= run(scenario()) < 15


def test_group_rebalances_when_a_member_joins_and_leaves_and_keeps_committed_offsets(
    kafka_broker: EmbeddedKafka,
) -> None:
    """A second member gets half the partitions, a clean leave returns them, committed offsets read back."""
    bootstrap = kafka_broker.bootstrap
    topic = unique_topic()
    group = unique_topic("g")
    create_topics(bootstrap, {topic: 4})

    async def scenario() -> tuple[set[int], list[int], dict[Any, int], list[Any]]:
        first, second = _group_consumer(bootstrap, group, 2000), _group_consumer(bootstrap, group, 2000)
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        await first.start()
        first.subscribe([topic])
        pumps = [asyncio.create_task(_pump(first, stop_first))]
        await until(lambda: len(first.assignment()) == 4)
        await second.start()
        second.subscribe([topic])
        pumps.append(asyncio.create_task(_pump(second, stop_second)))
        await until(lambda: len(first.assignment()) == 2 and len(second.assignment()) == 2)
        split = {p.partition for p in first.assignment()} | {p.partition for p in second.assignment()}
        mine = sorted(first.assignment())
        await first.commit(dict.fromkeys(mine, 7))
        committed = [await first.committed(tp) for tp in mine]
        stop_second.set()
        await pumps[1]
        await second.stop()  # LeaveGroup
        await until(lambda: len(first.assignment()) == 4)
        stop_first.set()
        await pumps[0]
        await first.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            listed = await admin.list_consumer_group_offsets(group, partitions=mine)
        finally:
            await admin.close()
        return split, committed, {tp: meta.offset for tp, meta in listed.items()}, mine

    split, committed, listed, mine = run(scenario())
    assert split == {0, 1, 2, 3}
    assert committed == [7, 7]
    assert listed == dict.fromkeys(mine, 7)


def test_aiokafka_admin_lists_group_offsets_only_for_named_partitions(kafka_broker: EmbeddedKafka) -> None:
    """list_consumer_group_offsets(group, partitions=...) works; without partitions aiokafka cannot parse the answer."""
    bootstrap = kafka_broker.bootstrap
    tp = TopicPartition(unique_topic(), 0)
    group = unique_topic("g")
    create_topics(bootstrap, {tp.topic: 1})

    async def scenario() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        consumer.assign([tp])
        await consumer.commit({tp: 3})
        await consumer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            named = await admin.list_consumer_group_offsets(group, partitions=[tp])
            with pytest.raises(KafkaError):
                await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return int(named[tp].offset)

    assert run(scenario()) == 3


# --- durability (log in rclone's S3, through the write gate) ----------------------------------------------------


def test_records_and_committed_offsets_survive_a_restart_and_new_records_follow_them(
    durable_kafka: EmbeddedKafka,
) -> None:
    """After stop and start on S3, every record and committed offset is back and the next offset continues."""
    bootstrap = durable_kafka.bootstrap
    create_topics(bootstrap, {"durable": 1})
    run(produce(bootstrap, "durable", [b"a%d" % i for i in range(10)]))
    tp = TopicPartition("durable", 0)

    async def commit(group: str, offset: int) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        consumer.assign([tp])
        await consumer.commit({tp: offset})
        await consumer.stop()

    async def committed(group: str) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            return int(await consumer.committed(tp))
        finally:
            await consumer.stop()

    run(commit("readers", 6))
    durable_kafka.restart()
    assert run(produce(bootstrap, "durable", [b"after"])) == 10
    assert run(committed("readers")) == 6
    values = [v for _, _, v in run(read_all(bootstrap, "durable"))]
    assert values == [b"a%d" % i for i in range(10)] + [b"after"]


def test_acknowledged_records_survive_kill_9_of_the_broker(durable_kafka: EmbeddedKafka) -> None:
    """Records acknowledged (acks=all) before a SIGKILL are all there after the restart, offsets unique."""
    bootstrap = durable_kafka.bootstrap
    create_topics(bootstrap, {"crash": 2})

    async def send(start: int, count: int) -> set[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send("crash", b"%d" % i, key=b"%d" % i) for i in range(start, start + count)]
            await asyncio.gather(*futures)
            return {b"%d" % i for i in range(start, start + count)}
        finally:
            await producer.stop()

    acked = run(send(0, 500))
    durable_kafka.kill()
    durable_kafka.start()
    acked |= run(send(500, 100))
    records = run(read_all(bootstrap, "crash", partitions=2))
    assert {v for _, _, v in records} == acked
    assert len({(p, o) for p, o, _ in records}) == len(records) == 600


def test_on_s3_a_fetch_must_list_the_partition_within_its_wait(durable_kafka: EmbeddedKafka) -> None:
    """On S3, 5 ms fetches read a 5-batch partition but never the end of a 1500-batch one; 1 s fetches do."""
    bootstrap = durable_kafka.bootstrap
    create_topics(bootstrap, {"short": 1, "long": 1})

    async def fill(topic: str, batches: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await producer.start()
        try:
            for _ in range(batches):
                await producer.send_and_wait(topic, b"x", partition=0)  # one batch object each
        finally:
            await producer.stop()

    async def fetched(topic: str, position: int, wait_ms: int) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=wait_ms)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, position)
            batches = await consumer.getmany(timeout_ms=1500)  # some 300 fetches at 5 ms
            return sum(len(records) for records in batches.values())
        finally:
            await consumer.stop()

    async def scenario() -> tuple[int, int, int]:
        await fill("short", 5)
        await fill("long", 1500)
        return (await fetched("short", 3, 5), await fetched("long", 1498, 5), await fetched("long", 1498, 1000))

    short, long_short_wait, long_long_wait = found = run(scenario())
    assert short > 0, found
    assert long_short_wait == 0, found
    assert long_long_wait > 0, found


def test_tansu_directly_on_rclone_overwrites_its_log_after_a_restart(durable_s3: EmbeddedS3, tmp_path: Path) -> None:
    """Without the write gate (rclone ignores If-None-Match/If-Match) offsets restart at 0 and batches are lost."""
    storage = S3Storage(durable_s3.endpoint, durable_s3.access_key, durable_s3.secret_key, bucket="ungated")
    Minio(durable_s3.endpoint, storage.access_key, storage.secret_key, secure=False, region="us-east-1").make_bucket(
        "ungated"
    )
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    argv = [require_tansu(), "broker", "--listener-url", f"tcp://{bootstrap}", "--advertised-listener-url"]
    argv += [f"tcp://{bootstrap}", "--storage-engine", "s3://ungated/"]
    env = _tansu_s3_env(storage, durable_s3.url)
    broker = ManagedProcess("ungated Tansu", argv, port=port, log_path=tmp_path / "ungated.log", env=env)
    try:
        broker.start()
        create_topics(bootstrap, {"lost": 1})
        run(produce(bootstrap, "lost", [b"old"] * 10))
        broker.stop()
        broker.start()
        assert run(produce(bootstrap, "lost", [b"new"])) == 0
        assert [v for _, _, v in run(read_all(bootstrap, "lost"))].count(b"old") < 10
    finally:
        broker.kill()


def test_write_gate_answers_s3_preconditions_that_rclone_ignores(durable_kafka: EmbeddedKafka) -> None:
    """Through the gate, If-None-Match: * on an existing key and a stale If-Match fail with 412."""
    storage, gate_process = durable_kafka.storage, durable_kafka._gate
    assert storage is not None
    assert gate_process is not None
    endpoint = f"127.0.0.1:{gate_process.port}"
    gate = Minio(endpoint, storage.access_key, storage.secret_key, secure=False, region=storage.region)

    def put(headers: dict[str, str | list[str] | tuple[str]]) -> int:
        response = gate._execute("PUT", storage.bucket, "probe.json", body=b"{}", headers=headers)
        return int(response.status)

    assert put({"If-None-Match": "*"}) == 200
    etag = gate.stat_object(storage.bucket, "probe.json").etag
    stale_conditions: list[dict[str, str | list[str] | tuple[str]]] = [{"If-None-Match": "*"}, {"If-Match": '"0123"'}]
    for stale in stale_conditions:
        with pytest.raises(S3Error, match="PreconditionFailed"):
            put(stale)
    assert put({"If-Match": f'"{etag}"'}) == 200


def test_write_gate_lists_from_its_own_index_what_the_s3_server_holds(durable_kafka: EmbeddedKafka) -> None:
    """Listings through the gate, page by page, name the same keys, sizes and ETags as the S3 server, in order."""
    storage, gate_process = durable_kafka.storage, durable_kafka._gate
    assert storage is not None
    assert gate_process is not None
    create_topics(durable_kafka.bootstrap, {"listed": 1})
    producer = KafkaProducer(bootstrap_servers=durable_kafka.bootstrap, acks="all", linger_ms=0)
    for n in range(25):
        producer.send("listed", value=b"%d" % n).get(timeout=30)  # one batch object each
    producer.close()
    gate = Minio(
        f"127.0.0.1:{gate_process.port}", storage.access_key, storage.secret_key, secure=False, region=storage.region
    )
    direct = Minio(storage.endpoint, storage.access_key, storage.secret_key, secure=False, region=storage.region)
    for prefix in ("", "clusters/lienthong/topics/listed/"):
        expected = [
            (o.object_name, o.size, o.etag)
            for o in direct.list_objects(storage.bucket, prefix=prefix, recursive=True, use_url_encoding_type=False)
        ]
        assert len(expected) >= 25
        paged: list[tuple[str | None, int | None, str | None]] = []
        token = None
        while True:  # seven keys a page, following the gate's continuation tokens
            query = {"list-type": "2", "prefix": prefix, "max-keys": "7"}
            if token:
                query["continuation-token"] = token
            answer = gate._execute("GET", storage.bucket, query_params=query)
            assert "Server" not in answer.headers  # the gate's own answer (rclone names itself)
            root = etree.fromstring(answer.data, etree.XMLParser(resolve_entities=False, no_network=True))
            ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
            keys = root.findall("s3:Contents", ns)
            assert len(keys) <= 7
            paged += [
                (k.findtext("s3:Key", None, ns), int(k.findtext("s3:Size", "0", ns)), k.findtext("s3:ETag", None, ns))
                for k in keys
            ]
            token = root.findtext("s3:NextContinuationToken", None, ns)
            if root.findtext("s3:IsTruncated", None, ns) != "true":
                break
        assert [(k, n, (e or "").strip('"')) for k, n, e in paged] == [
            (k, n, (e or "").strip('"')) for k, n, e in expected
        ]


# --- faust-streaming -------------------------------------------------------------------------------------------

FAUST_APP = """
import os
import faust

app = faust.App(
    "tansu-check",
    broker="kafka://" + os.environ["BOOTSTRAP"],
    store="memory://",
    topic_allow_declare=False,
    topic_disable_leader=True,
    processing_guarantee="at_least_once",
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=2.0,
    broker_heartbeat_interval=0.3,
    broker_commit_interval=0.5,
    producer_acks=-1,
    web_enabled=False,
)
source = app.topic(os.environ["SOURCE"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["SINK"], key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def passthrough(stream):
    async for event in stream.events():
        headers = list(event.message.headers or []) + [("seen-by", b"faust")]
        await sink.send(key=event.key, value=event.value, headers=headers)
"""


def test_faust_worker_consumes_and_produces_with_headers_on_tansu(kafka_broker: EmbeddedKafka, tmp_path: Path) -> None:
    """A faust worker (no declare, no leader topic, at-least-once) forwards records and binary headers."""
    bootstrap = kafka_broker.bootstrap
    source, sink = unique_topic("in"), unique_topic("out")
    create_topics(bootstrap, {source: 2, sink: 2})
    (tmp_path / "tansu_check_app.py").write_text(textwrap.dedent(FAUST_APP))
    env = {**os.environ, "BOOTSTRAP": bootstrap, "SOURCE": source, "SINK": sink}
    argv = [sys.executable, "-m", "faust", "-A", "tansu_check_app", "worker", "-l", "warn", "--without-web"]
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)

        async def scenario() -> list[Any]:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            for i in range(20):
                await producer.send(source, b"doc-%d" % i, key=b"%d" % i, headers=HEADERS)
            await producer.stop()
            consumer = AIOKafkaConsumer(sink, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
            await consumer.start()
            got: list[Any] = []
            deadline = time.monotonic() + 45
            while len(got) < 20 and time.monotonic() < deadline:
                got += [r for rs in (await consumer.getmany(timeout_ms=1000)).values() for r in rs]
            await consumer.stop()
            return got

        try:
            got = run(scenario())
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
    assert sorted(r.value for r in got) == sorted(b"doc-%d" % i for i in range(20)), (
        tmp_path / "worker.log"
    ).read_text()
    assert all(list(r.headers) == [*HEADERS, ("seen-by", b"faust")] for r in got)
