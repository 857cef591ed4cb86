"""Faults on the real embedded stack: kill -9, workers joining and leaving, bad traffic, a whole restart.

Each run checks exactly-once delivery on the inboxes and the axis topic. Workers joining and leaving and the whole
restart get a hub of their own; the kill -9 runs and the bad traffic share one (``module_stack``, started after
those two so that no idle hub competes with them), each counting only the records that follow its own start.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hub.demo import demo_documents
from hub.up import wait_until
from storage.ledger import Ledger
from tests.support.hub_fixtures import Outputs, Stack, start_stack
from tests.test_hub_e2e import _delivered, _expected, _fresh_outputs, _ledger_consistent, _metrics, _send, _store

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]  # thousands of documents through the whole hub


def assert_each_delivered_once(stack: Stack, outputs: Outputs, expected: Counter[tuple[str, str]]) -> None:
    """Wait for every expected delivery, then check that none is missing or doubled and that the ledger verifies."""
    done = outputs.wait_for(lambda o: sum(_delivered(o).values()) >= sum(expected.values()), timeout=600)
    assert done, f"{sum(_delivered(outputs).values())} of {sum(expected.values())} delivered\n{stack.logs()}"
    outputs.poll(5.0)
    delivered = _delivered(outputs)
    duplicates = [k for k, n in delivered.items() if n > 1][:5]
    assert delivered == expected, f"duplicates: {duplicates}\n{stack.logs()}"
    outputs.close()
    _ledger_consistent(stack)


def test_workers_joining_and_leaving_lose_and_duplicate_nothing(stack: Stack) -> None:
    """A second worker joins a third of the way through and the first leaves at two thirds: exactly once."""
    documents = [d for d in demo_documents(stack.material, 1500, start_number=20_000) if d.expect == "delivered"]
    expected = _expected(documents)
    total = sum(expected.values())
    outputs = Outputs(stack.connection)
    _send(stack, documents)
    assert outputs.wait_for(lambda o: sum(_delivered(o).values()) > total // 3, timeout=300), stack.logs()
    stack.hub.add_worker()
    assert outputs.wait_for(lambda o: sum(_delivered(o).values()) > 2 * total // 3, timeout=300), stack.logs()
    stack.hub.remove_worker(stack.hub.worker_processes[0])
    assert outputs.wait_for(lambda o: sum(_delivered(o).values()) >= total, timeout=600), stack.logs()
    outputs.poll(5.0)
    assert _delivered(outputs) == expected, stack.logs()
    outputs.close()


def test_restart_of_the_whole_hub_keeps_topics_offsets_archive_and_ledger(tmp_path: Path) -> None:
    """A stopped and restarted hub redelivers nothing and keeps its ledger; new documents flow."""
    data = tmp_path / "data"
    stack = start_stack(data, seal_interval=3600)  # no timed seal: only the stop can seal this run
    documents = [d for d in demo_documents(stack.material, 60, start_number=40_000) if d.expect == "delivered"]
    expected = _expected(documents)
    outputs = Outputs(stack.connection)
    _send(stack, documents[:30])
    first = _expected(documents[:30])
    assert outputs.wait_for(lambda o: _delivered(o) == first, timeout=180)
    outputs.close()
    stack.hub.stop()
    stack = start_stack(data)
    try:
        ledger = Ledger.open(_store(stack))
        head = ledger.head()
        assert head is not None
        assert head.size == ledger.size  # the stopping worker sealed everything it recorded
        assert ledger.size > 0
        outputs = Outputs(stack.connection)
        _send(stack, documents[30:])
        done = outputs.wait_for(lambda o: sum(_delivered(o).values()) >= sum(expected.values()), timeout=300)
        assert done, stack.logs()
        outputs.poll(5.0)
        assert _delivered(outputs) == expected, stack.logs()  # the first 30 were not delivered again
        outputs.close()
    finally:
        stack.hub.stop()


def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(module_stack: Stack) -> None:
    """A worker SIGKILLed mid-stream is restarted by `up`: each delivery exactly once, the ledger consistent."""
    stack = module_stack
    documents = [d for d in demo_documents(stack.material, 1500, start_number=10_000) if d.expect == "delivered"]
    expected = _expected(documents)
    outputs = _fresh_outputs(stack)
    _send(stack, documents)
    assert outputs.wait_for(lambda o: sum(_delivered(o).values()) > sum(expected.values()) // 3, timeout=300)
    killed = stack.hub.worker_processes[0]
    old_pid = killed.pid
    killed.kill()
    assert wait_until(lambda: killed.running and killed.pid != old_pid, timeout=30)  # the supervisor restarted it
    assert_each_delivered_once(stack, outputs, expected)


def test_bad_traffic_does_not_stop_the_hub_serving_others(module_stack: Stack) -> None:
    """Garbage, 0-byte and oversized records and a flood from one sender: another agency's documents still arrive."""
    stack = module_stack
    outputs = _fresh_outputs(stack)
    from kafka import KafkaProducer  # noqa: PLC0415

    producer = KafkaProducer(**stack.connection.options(), acks="all", max_request_size=4 * 1024 * 1024)
    flood = "000.02.00.H41"
    outbox = f"lienthong.outbox.{flood}"
    for n in range(500):
        producer.send(outbox, key=flood.encode(), value=b"\x00\xff garbage %d" % n)
    producer.send(outbox, key=flood.encode(), value=b"")
    producer.send(outbox, key=b"nobody", value=None)  # a tombstone under another key
    producer.send(outbox, key=flood.encode(), value=b"<" * 950_000)
    producer.flush()
    producer.close()
    good = [d for d in demo_documents(stack.material, 40, start_number=30_000) if d.expect == "delivered"]
    good = [d for d in good if d.sender != flood][:10]
    expected = _expected(good)
    _send(stack, good)
    assert outputs.wait_for(lambda o: all(k in _delivered(o) for k in expected), timeout=300)
    assert outputs.wait_for(lambda o: len(o.records["lienthong.deadletter"]) >= 503, timeout=120)
    reasons = Counter(h["lienthong-reason"].decode() for h, _ in outputs.records["lienthong.deadletter"])
    assert reasons["EMPTY"] == 2
    assert reasons["MALFORMED"] >= 501
    outputs.close()


@pytest.mark.parametrize("server", ["kafka", "s3"])
def test_kill_9_of_the_broker_or_the_store_mid_run_loses_and_duplicates_nothing(
    module_stack: Stack, server: str
) -> None:
    """Kafka or SeaweedFS SIGKILLed mid-run is restarted by `up`: every delivery exactly once, the ledger verifies."""
    stack = module_stack
    first = 50_000 if server == "kafka" else 60_000  # other documents for each run: the hub is the module's
    documents = [d for d in demo_documents(stack.material, 1200, start_number=first) if d.expect == "delivered"]
    expected = _expected(documents)
    outputs = _fresh_outputs(stack)
    _send(stack, documents)
    assert outputs.wait_for(lambda o: sum(_delivered(o).values()) > sum(expected.values()) // 3, timeout=300)
    if server == "kafka":
        kafka = stack.hub.kafka
        assert kafka is not None
        old_pid = kafka.process(0).pid
        kafka.kill(0)
        assert wait_until(lambda: kafka.process(0).running and kafka.process(0).pid != old_pid, timeout=60)
    else:
        s3 = stack.hub.s3
        assert s3 is not None
        s3.kill()
        assert wait_until(lambda: s3.running, timeout=60)
    assert_each_delivered_once(stack, outputs, expected)
    process = "broker" if server == "kafka" else "object store"
    assert _metrics(stack)[f'lienthong_restarts_total{{process="{process}"}}'] == 1  # counted, as systemd would log
