"""The trust boundary on the real broker: per-agency principals, ACLs, outboxes and credentials (issue 11).

Attacks are made as a DMS would make them: a plain confluent-kafka client configured from an agency's own
credentials JSON (or none), against a running ``lienthong up``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from adapters.dms import HubClient
from adapters.kafka import KafkaConnection
from hub.access import ADMIN_USER, AXIS_USER, AccessError, access_plan, agency_user, issue_credentials
from hub.demo import demo_documents
from hub.directory import Agency, Directory, Route
from tests.support.hub_fixtures import Outputs, Stack

SENDER, OTHER = "000.01.00.H41", "000.02.00.H41"


# --- the plan (no server) ---------------------------------------------------------------------------------------


def test_an_agency_may_write_only_its_outbox_and_read_only_its_inbox_and_statuses() -> None:
    """The plan gives an agency exactly its outbox (write), inbox and status topic (read) and groups dms.<id>.*."""
    directory = Directory([Agency(SENDER, "A", Route.LOCAL), Agency("000.00.00.G22", "axis", Route.AXIS)])
    plan = access_plan(directory, hub_user="lienthong-hub", consumer_group="lienthong-hub")
    mine = {(g.resource, g.name, g.operation, g.prefixed) for g in plan if g.principal == agency_user(SENDER)}
    assert mine == {
        ("TOPIC", f"lienthong.outbox.{SENDER}", "WRITE", False),
        ("TOPIC", f"lienthong.outbox.{SENDER}", "DESCRIBE", False),
        ("TOPIC", f"lienthong.inbox.{SENDER}", "READ", False),
        ("TOPIC", f"lienthong.inbox.{SENDER}", "DESCRIBE", False),
        ("TOPIC", f"lienthong.status.{SENDER}", "READ", False),
        ("TOPIC", f"lienthong.status.{SENDER}", "DESCRIBE", False),
        ("GROUP", f"dms.{SENDER}.", "READ", True),
    }
    assert not any(g.principal == agency_user("000.00.00.G22") for g in plan)  # axis agencies have no login here
    admin_writes = {g.name for g in plan if g.principal == ADMIN_USER and g.operation == "WRITE"}
    assert admin_writes == {"lienthong.directory"}
    assert plan == access_plan(directory, hub_user="lienthong-hub", consumer_group="lienthong-hub")  # stable


def test_the_axis_connector_writes_only_the_axis_inbound_topic_statuses_and_the_ledger() -> None:
    """lienthong-axis reads axis.outbound and writes axis.inbound, status topics and the ledger; no agency's outbox."""
    directory = Directory([Agency(SENDER, "A", Route.LOCAL), Agency("000.00.00.G22", "axis", Route.AXIS)])
    plan = access_plan(directory, hub_user="lienthong-hub", consumer_group="lienthong-hub")
    writes = {(g.name, g.prefixed) for g in plan if g.principal == AXIS_USER and g.operation == "WRITE"}
    assert writes == {("lienthong.axis.inbound", False), ("lienthong.status.", True), ("lienthong.ledger", False)}
    reads = {g.name for g in plan if g.principal == AXIS_USER and g.operation == "READ"}
    assert reads == {"lienthong.axis.outbound", "lienthong.directory", "axis."}


# --- the running hub --------------------------------------------------------------------------------------------


@pytest.fixture(name="stack", scope="module")
def shared_stack(module_stack: Stack) -> Stack:
    """One running hub for the whole module."""
    return module_stack


@pytest.fixture(scope="module")
def issued(stack: Stack) -> dict[str, dict[str, Any]]:
    """Credentials of two agencies and of the administrator, as `agency credentials --json` gives them."""
    return {
        SENDER: issue_credentials(stack.settings, SENDER),
        OTHER: issue_credentials(stack.settings, OTHER),
        "admin": issue_credentials(stack.settings, None),
    }


def _kafka() -> Any:
    return pytest.importorskip("confluent_kafka")


def _produce(config: dict[str, Any], topic: str, value: bytes, **extra: Any) -> Any:
    """Produce one record; the delivery error (None when the broker accepted it)."""
    kafka = _kafka()
    errors: list[Any] = []
    producer = kafka.Producer({"message.timeout.ms": 15000, **config})
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: errors.append(err), **extra)
    producer.flush(30)
    return errors[0] if errors else "no delivery report"


def _consume_error(config: dict[str, Any], topic: str, group: str) -> Any:
    """The first error a consumer gets reading ``topic`` in ``group`` (None if it read a record)."""
    kafka = _kafka()
    consumer = kafka.Consumer({**config, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None:
                return message.error()
        return "nothing read"
    finally:
        consumer.close()


def _code(error: Any) -> Any:
    """A librdkafka error's code (or what was returned instead, for the failure message)."""
    return error.code() if hasattr(error, "code") else error


def _first(options: dict[str, Any], topics: list[str], value: bytes, *, group: str | None = None) -> Any:
    """The first record with ``value`` on ``topics``, read with kafka-python from the beginning (2 minutes at most)."""
    from kafka import KafkaConsumer  # noqa: PLC0415

    consumer = KafkaConsumer(
        *topics, group_id=group, auto_offset_reset="earliest", consumer_timeout_ms=120_000, **options
    )
    try:
        return next(m for m in consumer if m.value == value)
    finally:
        consumer.close()


def _end_offset(connection: KafkaConnection, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = KafkaConsumer(group_id=None, **connection.options())
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def _values_since(connection: KafkaConnection, topic: str, total_before: int) -> list[bytes]:
    """The values on ``topic`` (one partition or more) past the first ``total_before`` records, in no order."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = KafkaConsumer(group_id=None, consumer_timeout_ms=3000, **connection.options())
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        values = [record.value or b"" for record in consumer]
        return values[total_before:] if len(partitions) == 1 else values
    finally:
        consumer.close()


def _document(stack: Stack, sender: str, number: int) -> Any:
    documents = demo_documents(stack.material, 60, start_number=number)
    return next(d for d in documents if d.expect == "delivered" and d.sender == sender)


@pytest.mark.servers
def test_an_agency_configured_from_its_credentials_sends_and_receives(
    stack: Stack, issued: dict[str, dict[str, Any]]
) -> None:
    """From its credentials JSON alone, a DMS sends with confluent-kafka and receives with kafka-python."""
    document = _document(stack, SENDER, 40_000)
    recipient = next(r for r in document.recipients if r != "000.00.00.G22")
    mine = issued[SENDER]
    assert _produce({**mine["kafka"], "acks": "all"}, mine["topics"]["outbox"], document.data) is None
    theirs = issue_credentials(stack.settings, recipient, rotate=True) if recipient not in issued else issued[recipient]
    got = _first(theirs["kafka_python"], [theirs["topics"]["inbox"]], document.data, group=f"dms.{recipient}.test")
    headers = {k: bytes(v) for k, v in got.headers}
    assert headers["lienthong-sha256"].decode() == hashlib.sha256(document.data).hexdigest()


@pytest.mark.servers
def test_an_agency_cannot_write_or_read_what_is_not_its_own(stack: Stack, issued: dict[str, dict[str, Any]]) -> None:
    """Another agency's outbox, any inbox, the ledger, the directory, a work lane refuse its writes; nothing lands."""
    kafka = _kafka()
    config = {**issued[SENDER]["kafka"], "acks": "all"}
    denied = kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    targets = [
        f"lienthong.outbox.{OTHER}",
        f"lienthong.inbox.{OTHER}",
        f"lienthong.inbox.{SENDER}",
        "lienthong.ledger",
        "lienthong.directory",
        "lienthong.work.bulk",
        "lienthong.work.retry",  # held documents: only the hub re-queues them
        f"lienthong.status.{OTHER}",
    ]
    before = {t: _end_offset(stack.connection, t) for t in targets}
    for topic in targets:
        error = _produce(config, topic, b"forged")
        assert _code(error) == denied, topic
    # The hub itself may write the ledger and the directory meanwhile: what counts is that no forged record landed.
    assert not [t for t in targets if b"forged" in _values_since(stack.connection, t, before[t])]
    reading = _consume_error(issued[SENDER]["kafka"], f"lienthong.inbox.{OTHER}", f"dms.{SENDER}.spy")
    assert _code(reading) == denied
    group = _consume_error(issued[SENDER]["kafka"], f"lienthong.inbox.{SENDER}", f"dms.{OTHER}.borrowed")
    assert _code(group) == kafka.KafkaError.GROUP_AUTHORIZATION_FAILED


@pytest.mark.servers
@pytest.mark.parametrize("login", ["none", "wrong password", "unknown user"])
def test_clients_without_valid_credentials_are_refused(
    stack: Stack, issued: dict[str, dict[str, Any]], login: str
) -> None:
    """No SASL, a wrong password or an unknown user: the broker authenticates no one, and nothing is written."""
    kafka = _kafka()
    config = dict(issued[SENDER]["kafka"])
    if login == "none":
        config = {"bootstrap.servers": config["bootstrap.servers"], "security.protocol": "PLAINTEXT"}
    elif login == "wrong password":
        config["sasl.password"] = "not-" + config["sasl.password"]
    else:
        config["sasl.username"] = "agency-000.77.00.H41"
    errors: list[Any] = []
    producer = kafka.Producer({**config, "message.timeout.ms": 4000, "error_cb": errors.append})
    before = _end_offset(stack.connection, f"lienthong.outbox.{SENDER}")
    delivered: list[Any] = []
    producer.produce(f"lienthong.outbox.{SENDER}", value=b"x", on_delivery=lambda err, _m: delivered.append(err))
    producer.flush(20)
    assert delivered
    assert delivered[0] is not None  # never acknowledged
    assert _end_offset(stack.connection, f"lienthong.outbox.{SENDER}") == before
    if login != "none":
        assert any(e.code() == kafka.KafkaError._AUTHENTICATION for e in errors), errors


@pytest.mark.servers
def test_credentials_are_shown_once_and_rotation_revokes_the_old_password(stack: Stack) -> None:
    """Issuing twice is refused; --rotate gives a new password and the old one no longer logs in."""
    agency = "000.03.00.H41"
    first = issue_credentials(stack.settings, agency)
    with pytest.raises(AccessError, match="already issued"):
        issue_credentials(stack.settings, agency)
    second = issue_credentials(stack.settings, agency, rotate=True)
    assert second["kafka"]["sasl.password"] != first["kafka"]["sasl.password"]
    assert second["vxp"]["secret"] != first["vxp"]["secret"]
    outbox = second["topics"]["outbox"]
    assert _produce(second["kafka"], outbox, b"probe") is None
    assert _produce({**first["kafka"], "message.timeout.ms": 4000}, outbox, b"probe") is not None
    with pytest.raises(AccessError, match="not in the hub's directory"):
        issue_credentials(stack.settings, "000.77.00.H41")


@pytest.mark.servers
def test_the_administrator_reads_every_topic_but_writes_only_the_directory(
    stack: Stack, issued: dict[str, dict[str, Any]]
) -> None:
    """The administrator's credentials read inboxes and dead letters and cannot send as an agency."""
    kafka = _kafka()
    admin = issued["admin"]["kafka"]
    assert _consume_error(admin, "lienthong.deadletter", "admin.test") in (None, "nothing read")
    error = _produce(admin, f"lienthong.outbox.{SENDER}", b"as an agency")
    assert _code(error) == kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED


@pytest.mark.servers
def test_a_signed_document_of_another_agency_sent_on_ones_own_outbox_is_refused(
    stack: Stack, issued: dict[str, dict[str, Any]]
) -> None:
    """Replaying another agency's signed document (with its OrganId as key) on one's outbox is a SENDER_MISMATCH."""
    document = _document(stack, OTHER, 41_000)
    outputs = Outputs(stack.connection)
    mine = issued[SENDER]
    assert _produce(mine["kafka"], mine["topics"]["outbox"], document.data, key=OTHER.encode()) is None
    sha = hashlib.sha256(document.data).hexdigest().encode()

    def refused(o: Outputs) -> bool:
        return any(h.get("lienthong-sha256") == sha for h, _ in o.records["lienthong.deadletter"])

    assert outputs.wait_for(refused, timeout=120)
    letter = next(h for h, _ in outputs.records["lienthong.deadletter"] if h.get("lienthong-sha256") == sha)
    assert letter["lienthong-reason"] == b"SENDER_MISMATCH"
    assert letter["lienthong-sender"] == SENDER.encode()  # the outbox's owner, not the key it gave
    assert not any(v == document.data for _, _, v in outputs.deliveries())
    outputs.close()


@pytest.mark.servers
def test_headers_only_the_hub_writes_are_dropped_at_intake(stack: Stack, issued: dict[str, dict[str, Any]]) -> None:
    """An agency's forged lienthong-* headers never reach a work lane; the lane record is keyed by its outbox."""
    document = _document(stack, SENDER, 42_000)
    forged = [("lienthong-input", b"lienthong.outbox.x/0/0"), ("lienthong-sha256", b"0" * 64), ("x-dms", b"kept")]
    mine = issued[SENDER]
    assert _produce(mine["kafka"], mine["topics"]["outbox"], document.data, key=b"me", headers=forged) is None
    record = _first(stack.connection.options(), ["lienthong.work.bulk", "lienthong.work.urgent"], document.data)
    headers = [(k, bytes(v)) for k, v in record.headers]
    assert record.key == SENDER.encode()
    assert ("x-dms", b"kept") in headers
    assert [v for k, v in headers if k == "lienthong-input"] != [b"lienthong.outbox.x/0/0"]
    assert len([k for k, _ in headers if k == "lienthong-input"]) == 1
    assert not any(k == "lienthong-sha256" for k, _ in headers)


@pytest.mark.servers
def test_the_credentials_command_prints_the_design_json(
    stack: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`agency credentials ORGANID --json` prints one JSON object; asking again without --rotate fails in one line."""
    from hub.cli import main  # noqa: PLC0415

    data = str(stack.settings.data_dir)
    agency = "000.00.00.H41"
    assert main(["agency", "credentials", agency, "--data", data, "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["organ_id"] == agency
    assert {"bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.username", "sasl.password"} <= set(
        issued["kafka"]
    )
    assert set(issued["vxp"]) == {"endpoint", "system_id", "secret"}
    assert main(["agency", "credentials", agency, "--data", data, "--json"]) == 1
    assert "--rotate" in capsys.readouterr().err
    out = tmp_path / "creds.json"
    assert main(["agency", "credentials", agency, "--data", data, "--rotate", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_text())["kafka"]["sasl.password"] != issued["kafka"]["sasl.password"]


@pytest.mark.servers
def test_send_and_receive_take_an_agencys_credentials_file(
    stack: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`send --credentials FILE` publishes to that agency's outbox; `receive --credentials` reads its inbox."""
    from hub.cli import main  # noqa: PLC0415

    document = _document(stack, SENDER, 43_000)
    recipient = next(r for r in document.recipients if r != "000.00.00.G22")
    files = {}
    for agency in (SENDER, recipient):
        files[agency] = tmp_path / f"{agency}.json"
        assert (
            main(
                [
                    "agency",
                    "credentials",
                    agency,
                    "--rotate",
                    "--data",
                    str(stack.settings.data_dir),
                    "--out",
                    str(files[agency]),
                ]
            )
            == 0
        )
    sent = tmp_path / "doc.xml"
    sent.write_bytes(document.data)
    capsys.readouterr()
    assert main(["send", str(sent), "--credentials", str(files[SENDER]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["topic"] == f"lienthong.outbox.{SENDER}"
    assert main(["send", str(sent), "--credentials", str(files[SENDER]), "--as", OTHER]) == 2
    assert "not " + OTHER in capsys.readouterr().err
    sha = hashlib.sha256(document.data).hexdigest()
    receive = ["receive", "--credentials", str(files[recipient]), "--from-beginning", "--timeout", "5", "--json"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert main(receive) == 0
        if sha in capsys.readouterr().out:
            break
    else:
        pytest.fail(f"{recipient} never received {sha}")


def _dead_letter_reason(stack: Stack, data: bytes, send: Callable[[], object]) -> bytes:
    """Send with ``send``; the reason of the dead letter ``data`` gets (it must get one, and no delivery)."""
    outputs = Outputs(stack.connection)
    send()
    assert outputs.wait_for(lambda o: any(v == data for _, v in o.records["lienthong.deadletter"]), timeout=120)
    assert not any(v == data for _, _, v in outputs.deliveries())
    reason = next(h for h, v in outputs.records["lienthong.deadletter"] if v == data)["lienthong-reason"]
    outputs.close()
    return reason


@pytest.mark.servers
def test_a_certificate_naming_another_organ_id_is_refused_even_when_pinned(stack: Stack, tmp_path: Path) -> None:
    """An administrator pins OTHER's key for SENDER too; a document From SENDER signed with it: CERT_ORGAN_MISMATCH."""
    from hub.cli import main  # noqa: PLC0415
    from schemas import build_document  # noqa: PLC0415
    from schemas.examples import example_edoc  # noqa: PLC0415
    from signer.sign import sign_document  # noqa: PLC0415

    cert = tmp_path / "other.pem"
    cert.write_bytes(stack.material.keys[OTHER].certificate.public_bytes(serialization.Encoding.PEM))
    assert main(["agency", "pin", SENDER, "--cert", str(cert), "--data", str(stack.settings.data_dir)]) == 0
    time.sleep(3)  # the workers follow the directory
    edoc = example_edoc(sender=SENDER, recipients=("000.03.00.H41",), number=7702, day=datetime.now(UTC).date())
    data = sign_document(build_document(edoc), stack.material.keys[OTHER])
    client = HubClient(stack.connection, organ_id=SENDER)
    assert _dead_letter_reason(stack, data, lambda: client.send(data)) == b"CERT_ORGAN_MISMATCH"
    client.close()


@pytest.mark.servers
@pytest.mark.parametrize(("who", "code"), [("stranger", "03"), ("recipient", "13"), ("sender", "15")])
def test_statuses_only_from_those_the_document_concerns(stack: Stack, who: str, code: str) -> None:
    """A stranger's 03, a recipient's 13 and the sender's 15 about a delivered document: each refused, with a 02."""
    from hub.demo import demo_status  # noqa: PLC0415

    document = _document(stack, SENDER, 44_000 + len(who))
    recipient = next(r for r in document.recipients if r != "000.00.00.G22")
    outputs = Outputs(stack.connection)
    HubClient(stack.connection, organ_id=SENDER).send(document.data)
    assert outputs.wait_for(lambda o: any(v == document.data for _, _, v in o.deliveries()), timeout=120)
    outputs.close()
    by = {
        "stranger": next(a for a in ("000.00.00.H41", "000.03.00.H41", OTHER) if a not in document.recipients),
        "recipient": recipient,
        "sender": SENDER,
    }[who]
    status = demo_status(stack.material, document.data, by=by, code=code)
    client = HubClient(stack.connection, organ_id=by)
    assert _dead_letter_reason(stack, status, lambda: client.send(status)) == b"STATUS_NOT_ALLOWED"
    client.close()
