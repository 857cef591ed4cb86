"""End to end on the real embedded stack: SeaweedFS, Kafka, hub worker processes, the DMS SDK and foreign clients.

The tests share one hub (``module_stack``: a hub takes tens of seconds to start and stop); each counts only the
records and metric increments that follow its own start (``Outputs.skip_existing``, ``_metrics`` before and after).
The dead-letter replay has a hub of its own (it replays every UNKNOWN_RECIPIENT dead letter there is), and runs
first: a hub started in this process points the process's metrics folder at its own (``PROMETHEUS_MULTIPROC_DIR``),
so it must be stopped before the module's hub starts.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections import Counter

import pytest

from adapters.dms import HubClient
from hub.demo import DemoDocument, demo_documents, demo_status
from hub.up import wait_until
from storage.ledger import Ledger, verify_log
from storage.s3 import S3ObjectStore
from tests.support.hub_fixtures import Outputs, Stack

pytestmark = pytest.mark.servers


def _send(stack: Stack, documents: list[DemoDocument]) -> None:
    by_sender: dict[str, list[bytes]] = {}
    for document in documents:
        by_sender.setdefault(document.sender, []).append(document.data)
    for sender, batch in by_sender.items():
        client = HubClient(stack.connection, organ_id=sender)
        client.send_many(batch)
        client.close()


def _expected(documents: list[DemoDocument]) -> Counter[tuple[str, str]]:
    """(topic, sha256) → 1 for every delivery a valid document must produce."""
    axis = "000.00.00.G22"
    out: Counter[tuple[str, str]] = Counter()
    for document in documents:
        if document.expect == "delivered":
            sha = hashlib.sha256(document.data).hexdigest()
            for recipient in document.recipients:
                topic = "lienthong.axis.outbound" if recipient == axis else f"lienthong.inbox.{recipient}"
                out[topic, sha] += 1
    return out


def _delivered(outputs: Outputs) -> Counter[tuple[str, str]]:
    return Counter((topic, headers["lienthong-sha256"].decode()) for topic, headers, _ in outputs.deliveries())


def _store(stack: Stack) -> S3ObjectStore:
    s = stack.settings
    return S3ObjectStore.connect(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_bucket, create_bucket=False)


def _ledger_consistent(stack: Stack) -> None:
    """Wait for a tree head over the whole log, then check every segment and head."""
    store = _store(stack)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ledger = Ledger.open(store)
        head = ledger.head()
        if head is not None and head.size == ledger.size and ledger.size:
            break
        time.sleep(0.25)
    report = verify_log(store, [stack.hub.seal_certificate()])
    assert report.ok, report.to_text()


def _fresh_outputs(stack: Stack) -> Outputs:
    """Outputs that count only the records produced from now on (the module's hub served earlier tests)."""
    outputs = Outputs(stack.connection)
    outputs.skip_existing()
    return outputs


def test_dead_letters_are_listed_and_a_replay_after_a_fix_delivers_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A document refused for an unknown recipient is delivered once when replayed after the directory learns it."""
    from hub.cli import main  # noqa: PLC0415

    document = next(
        d for d in demo_documents(stack.material, 200, start_number=6000) if d.expect == "UNKNOWN_RECIPIENT"
    )
    sha = hashlib.sha256(document.data).hexdigest()
    outputs = Outputs(stack.connection)
    _send(stack, [document])
    assert outputs.wait_for(lambda o: len(o.records["lienthong.deadletter"]) >= 1, timeout=120)
    capsys.readouterr()
    assert main(["deadletter", "list", "--data", str(stack.settings.data_dir), "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["reason"], e["sha256"], e["sender"]) for e in listed] == [("UNKNOWN_RECIPIENT", sha, document.sender)]
    # The operator adds the missing agency (served through the axis, a signed directory record) and replays.
    data = str(stack.settings.data_dir)
    assert main(["agency", "add", "000.99.00.H99", "--name", "Late", "--route", "axis", "--data", data]) == 0
    time.sleep(3)  # the workers follow the directory topic
    for _ in range(2):  # the second replay must not deliver again
        replay = ["deadletter", "replay", "--reason", "UNKNOWN_RECIPIENT", "--data", str(stack.settings.data_dir)]
        assert main(replay) == 0
        assert outputs.wait_for(lambda o: ("lienthong.axis.outbound", sha) in _delivered(o), timeout=120)
    outputs.poll(8.0)
    assert _delivered(outputs)[("lienthong.axis.outbound", sha)] == 1
    replayed = [h for h, v in outputs.records["lienthong.axis.outbound"] if v == document.data]
    assert replayed[0]["lienthong-indication"] == b"TOTAL_PASSED"
    outputs.close()


def test_documents_reach_each_recipient_once_and_invalid_ones_are_answered(module_stack: Stack) -> None:
    """Valid documents reach each recipient once, byte for byte; invalid ones get a dead letter and a status 02."""
    stack = module_stack
    documents = list(demo_documents(stack.material, 300, start_number=1000))
    expected = _expected(documents)
    outputs = _fresh_outputs(stack)
    before = _metrics(stack)
    _send(stack, documents)
    invalid = [d for d in documents if d.expect != "delivered"]
    assert outputs.wait_for(
        lambda o: (
            sum(_delivered(o).values()) >= sum(expected.values())
            and len(o.records["lienthong.deadletter"]) >= len(invalid)
        ),
        timeout=240,
    ), f"delivered {sum(_delivered(outputs).values())} of {sum(expected.values())}"
    outputs.poll(2.0)
    assert _delivered(outputs) == expected  # exactly once each, nothing else
    originals = {hashlib.sha256(d.data).hexdigest(): d.data for d in documents}
    for _topic, headers, value in outputs.deliveries():
        assert value == originals[headers["lienthong-sha256"].decode()]  # byte for byte
        assert headers["lienthong-indication"] == b"TOTAL_PASSED"
    reasons = Counter(h["lienthong-reason"].decode() for h, _ in outputs.records["lienthong.deadletter"])
    assert reasons == Counter(d.expect for d in invalid)
    rejections = [
        (topic, headers)
        for topic, items in outputs.records.items()
        if topic.startswith("lienthong.status.")
        for headers, _ in items
        if headers.get("lienthong-reason")
    ]
    assert Counter(h["lienthong-reason"].decode() for _, h in rejections) == Counter(d.expect for d in invalid)
    # A recipient answers 03; it reaches the original sender's status topic, byte for byte.
    document = next(d for d in documents if d.expect == "delivered" and "000.00.00.G22" not in d.recipients)
    status = demo_status(stack.material, document.data, by=document.recipients[0], code="03")
    HubClient(stack.connection, organ_id=document.recipients[0]).send(status)
    status_topic = f"lienthong.status.{document.sender}"
    assert outputs.wait_for(lambda o: any(v == status for _, v in o.records[status_topic]), timeout=60)
    outputs.close()
    _ledger_consistent(stack)
    _metrics_count(stack, documents, before)


def _metrics(stack: Stack) -> dict[str, float]:
    """The hub's /metrics, as {sample line without value: value}."""
    url = f"http://127.0.0.1:{stack.settings.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _metrics_count(stack: Stack, documents: list[DemoDocument], before: dict[str, float]) -> None:
    """/metrics counts what happened: documents by outcome and reason, dead letters, ledger size, lag back to 0.

    ``before`` is /metrics read before ``documents`` were sent: the counters must have grown by exactly them.
    """
    samples = _metrics(stack)

    def grown(name: str) -> float:
        return samples[name] - before.get(name, 0.0)

    valid = sum(1 for d in documents if d.expect == "delivered")
    assert grown('lienthong_documents_total{outcome="delivered",reason="",stage="route"}') == valid
    for reason, n in Counter(d.expect for d in documents if d.expect != "delivered").items():
        assert grown(f'lienthong_dead_letters_total{{reason="{reason}"}}') == n
    assert samples["lienthong_ledger_size"] > before.get("lienthong_ledger_size", 0.0)
    assert grown("lienthong_end_to_end_seconds_count") >= len(documents)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # lag is read every 2 s; everything is processed, so it returns to 0
        lag = {k: v for k, v in _metrics(stack).items() if k.startswith("lienthong_consumer_lag{")}
        if lag and not any(lag.values()):
            break
        time.sleep(0.5)
    assert 'lienthong_consumer_lag{topic="lienthong.outbox.*"}' in lag
    assert not any(lag.values()), lag


def test_foreign_kafka_clients_speak_the_topic_contract(module_stack: Stack) -> None:
    """A librdkafka producer and consumer (confluent-kafka) use the topic contract: same bytes, DESIGN.md headers."""
    stack = module_stack
    confluent_kafka = pytest.importorskip("confluent_kafka")
    document = next(d for d in demo_documents(stack.material, 5, start_number=5000) if d.expect == "delivered")
    outputs = _fresh_outputs(stack)
    producer = confluent_kafka.Producer({**stack.connection.librdkafka(), "acks": "all"})
    producer.produce(f"lienthong.outbox.{document.sender}", key=document.sender.encode(), value=document.data)
    assert producer.flush(30) == 0
    recipient = next(r for r in document.recipients if r != "000.00.00.G22")
    consumer = confluent_kafka.Consumer(
        {**stack.connection.librdkafka(), "group.id": "foreign-dms", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([f"lienthong.inbox.{recipient}"])
    deadline = time.monotonic() + 120
    message = None
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        # The inbox holds earlier tests' documents too (one hub for the module): read on to this one.
        if message is not None and (message.error() is not None or message.value() == document.data):
            break
    consumer.close()
    assert message is not None
    assert message.error() is None
    assert message.value() == document.data
    headers = dict(message.headers())
    assert headers["lienthong-sha256"].decode() == hashlib.sha256(document.data).hexdigest()
    assert {"lienthong-doc-id", "lienthong-indication", "lienthong-received-at"} <= set(headers)
    # Every recipient served before the next test counts its own deliveries on this hub.
    assert outputs.wait_for(lambda o: _delivered(o) == _expected([document]), timeout=120)
    outputs.close()


def test_log_level_info_puts_the_workers_directory_and_assignments_in_their_logs(module_stack: Stack) -> None:
    """At log_level info (the test stacks' level) a worker's log says when it read the directory and was assigned."""
    assert wait_until(lambda: "directory read:" in module_stack.logs(lines=100_000), timeout=120)
    assert "newly assigned partitions" in module_stack.logs(lines=100_000)


def test_field_quirks_are_delivered_and_counted_per_agency(module_stack: Stack) -> None:
    """A document with a UUID DocumentId is delivered and counted in lienthong_edxml_warnings_total for its sender."""
    stack = module_stack
    import dataclasses  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from schemas import build_document  # noqa: PLC0415
    from schemas.examples import example_edoc  # noqa: PLC0415
    from signer.sign import sign_document  # noqa: PLC0415

    sender, recipient = "000.01.00.H41", "000.02.00.H41"
    edoc = example_edoc(sender=sender, recipients=(recipient,), number=7701, day=datetime.now(UTC).date())
    edoc = dataclasses.replace(edoc, document_id="0f8fad5b-d9cb-469f-a165-70867728950e")
    data = sign_document(build_document(edoc), stack.material.keys[sender])
    warning = f'lienthong_edxml_warnings_total{{agency="{sender}",code="UUID_DOCUMENT_ID"}}'
    counted = _metrics(stack).get(warning, 0.0)
    outputs = _fresh_outputs(stack)
    client = HubClient(stack.connection, organ_id=sender)
    client.send(data)
    client.close()
    assert outputs.wait_for(lambda o: any(v == data for _, v in o.records[f"lienthong.inbox.{recipient}"]), timeout=120)
    outputs.close()
    deadline = time.monotonic() + 30  # counted just after the deliveries are acknowledged
    while _metrics(stack).get(warning, 0.0) == counted and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _metrics(stack).get(warning) == counted + 1


def test_a_forged_ledger_record_is_refused_and_counted(module_stack: Stack) -> None:
    """Forged "delivered" events on lienthong.ledger (no MAC, a wrong key's MAC) never reach the ledger; it verifies."""
    stack = module_stack
    from datetime import UTC, datetime  # noqa: PLC0415

    from kafka import KafkaProducer  # noqa: PLC0415

    from hub.cli import main  # noqa: PLC0415
    from hub.ledger_mac import H_MAC, ledger_mac  # noqa: PLC0415
    from schemas import parse  # noqa: PLC0415
    from storage.ledger import EventKind, LedgerEvent, encode_ledger_record  # noqa: PLC0415

    before, after = [d for d in demo_documents(stack.material, 20, start_number=7800) if d.expect == "delivered"][:2]
    forged_id = "000.01.00.H41,2026/01/02,999/FORGED"
    forged = encode_ledger_record(
        [
            LedgerEvent(
                kind=EventKind.DELIVERED,
                sha256=hashlib.sha256(b"never sent").hexdigest(),
                document_id=forged_id,
                actor="hub",
                time=datetime.now(UTC),
                verdict="sent",
                detail={"recipient": "000.02.00.H41"},
            )
        ],
        (),
    )
    outputs = _fresh_outputs(stack)
    refused = {reason: f'lienthong_ledger_refused_total{{reason="{reason}"}}' for reason in ("missing_mac", "bad_mac")}
    counted = {reason: _metrics(stack).get(name, 0.0) for reason, name in refused.items()}
    _send(stack, [before])
    # With the hub's own super-user connection, as a misconfigured ACL would let anyone write the topic.
    producer = KafkaProducer(**stack.connection.options(), acks="all")
    producer.send("lienthong.ledger", value=forged)
    producer.send("lienthong.ledger", value=forged, headers=[(H_MAC, ledger_mac(b"not the key" * 3, forged))])
    producer.flush()
    producer.close()
    _send(stack, [after])  # its events follow the forgeries on the one partition: once stored, both were judged
    expected = _expected([before, after])
    assert outputs.wait_for(lambda o: _delivered(o) == expected, timeout=120)
    outputs.close()
    wanted = {parse(d.data).message.document_id for d in (before, after)}
    store = _store(stack)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ledger = Ledger.open(store)
        ids = {ledger.event(i).document_id for i in range(ledger.size)}
        if wanted <= ids:
            break
        time.sleep(0.5)
    assert wanted <= ids
    assert forged_id not in ids
    samples = _metrics(stack)
    assert samples[refused["missing_mac"]] == counted["missing_mac"] + 1
    assert samples[refused["bad_mac"]] == counted["bad_mac"] + 1
    _ledger_consistent(stack)
    assert main(["ledger", "verify", "--data", str(stack.settings.data_dir)]) == 0
