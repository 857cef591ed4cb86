"""The signed directory on the real embedded stack: `lienthong agency`, forged records, ledger events, restarts."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from adapters.dms import HubClient
from hub.cli import main
from hub.directory import Agency, Route, load_directory
from hub.signed_directory import sign_record
from hub.up import Hub
from schemas import build_document
from schemas.examples import example_edoc
from signer.devpki import spki_sha256
from signer.sign import sign_document
from storage.ledger import EventKind, create_self_signed_identity, decode_ledger_record
from tests.support.hub_fixtures import Outputs, Stack

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]

SENDER, OTHER, NEW = "000.01.00.H41", "000.02.00.H41", "000.55.00.H55"


@pytest.fixture(name="stack", scope="module")
def shared_stack(module_stack: Stack) -> Stack:
    """One running hub for the whole module."""
    return module_stack


def _agency(stack: Stack, *argv: str) -> int:
    return main(["agency", *argv, "--data", str(stack.settings.data_dir)])


def _listed(stack: Stack, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert _agency(stack, "list", "--json") == 0
    return {row["id"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}


def _document(stack: Stack, sender: str, recipient: str, number: int, *, signed_by: str | None = None) -> bytes:
    edoc = example_edoc(sender=sender, recipients=(recipient,), number=number, day=datetime.now(UTC).date())
    return sign_document(build_document(edoc), stack.material.keys[signed_by or sender])


def _send(stack: Stack, sender: str, data: bytes) -> None:
    client = HubClient(stack.connection, organ_id=sender)
    client.send(data)
    client.close()


def _refused(stack: Stack, reason: str) -> float:
    url = f"http://127.0.0.1:{stack.settings.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    line = f'lienthong_directory_refused_total{{reason="{reason}"}} '
    return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(line))


def _publish(stack: Stack, key: str, value: bytes) -> None:
    producer = KafkaProducer(acks="all", **stack.connection.options())
    producer.send("lienthong.directory", key=key.encode(), value=value)
    producer.flush()
    producer.close()


def _wait(condition: object, timeout: float = 60) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return bool(condition())


def _directory_events(stack: Stack) -> Counter[str]:
    """How many DIRECTORY_CHANGED events name each directory record's SHA-256 on lienthong.ledger."""
    consumer = KafkaConsumer(group_id=None, **stack.connection.options())
    partition = TopicPartition("lienthong.ledger", 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    found: Counter[str] = Counter()
    while consumer.position(partition) < end:
        for messages in consumer.poll(timeout_ms=2000).values():
            for message in messages:
                events, _ = decode_ledger_record(message.value)
                found.update(e.sha256 for e in events if e.kind is EventKind.DIRECTORY_CHANGED)
    consumer.close()
    return found


def test_an_added_agency_with_a_pin_receives_documents(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """`agency add` (with a pin) then `agency pin`: the new agency is listed, signed, and a document reaches it."""
    cert = stack.material.trust_dir.parent / "new-agency.pem"
    cert.write_bytes(stack.material.keys[OTHER].certificate.public_bytes(serialization.Encoding.PEM))
    assert _agency(stack, "add", NEW, "--name", "Sở Mới", "--pin", "ab" * 32) == 0
    assert _agency(stack, "pin", NEW, "--cert", str(cert)) == 0
    assert _agency(stack, "pin", NEW, "--spki", "zz") == 1  # bad hex: one line, nothing written
    assert "not a SHA-256" in capsys.readouterr().err
    row = _listed(stack, capsys)[NEW]
    assert row["route"] == "local"
    assert set(row["cert_spki_sha256"]) == {"ab" * 32, spki_sha256(stack.material.keys[OTHER].certificate)}
    assert len(str(row["signed_by"])) == 64
    time.sleep(3)  # the workers follow the directory topic
    data = _document(stack, SENDER, NEW, 8801)
    outputs = Outputs(stack.connection)
    _send(stack, SENDER, data)
    assert outputs.wait_for(lambda o: any(v == data for _, v in o.records[f"lienthong.inbox.{NEW}"]), timeout=120)
    outputs.close()


def test_a_record_signed_by_an_unknown_key_is_refused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A re-pin signed by a stranger's key is refused and counted; a document signed with the key it pins fails."""
    folder = stack.settings.data_dir / "attacker"
    stranger = create_self_signed_identity(folder / "key.pem", folder / "cert.pem", common_name="attacker")
    before = _listed(stack, capsys)[SENDER]
    attacker_pin = spki_sha256(stack.material.keys[OTHER].certificate)
    forged = Agency(SENDER, "hijacked", Route(str(before["route"])), frozenset({attacker_pin}))
    _publish(stack, SENDER, sign_record(stranger, SENDER, forged, datetime.now(UTC)))
    assert _wait(lambda: _refused(stack, "unknown_key") >= 1)
    assert _listed(stack, capsys)[SENDER] == before
    data = _document(stack, SENDER, NEW, 8802, signed_by=OTHER)  # "From" SENDER, signed by OTHER's key
    outputs = Outputs(stack.connection)
    _send(stack, SENDER, data)
    assert outputs.wait_for(lambda o: any(v == data for _, v in o.records["lienthong.deadletter"]), timeout=120)
    assert not any(v == data for _, _, v in outputs.deliveries())
    outputs.close()


def test_an_unsigned_record_is_refused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A bare JSON entry (the format before signing) and a bare tombstone are refused and counted, never applied."""
    organ_id = "000.66.00.H66"
    entry = {"id": organ_id, "name": "unsigned", "route": "axis", "cert_spki_sha256": []}
    _publish(stack, organ_id, json.dumps(entry).encode())
    producer = KafkaProducer(acks="all", **stack.connection.options())
    producer.send("lienthong.directory", key=SENDER.encode(), value=None)
    producer.flush()
    producer.close()
    assert _wait(lambda: _refused(stack, "unsigned") >= 2)  # the entry and the tombstone
    listed = _listed(stack, capsys)
    assert organ_id not in listed
    assert SENDER in listed


def test_each_applied_change_is_one_ledger_event(stack: Stack) -> None:
    """Every applied record (seeds, add, pin) is one DIRECTORY_CHANGED event; refused ones are none."""
    applied = len(load_directory(stack.material.directory_file)) + 2  # the seeds, add, pin
    assert _wait(lambda: sum(_directory_events(stack).values()) >= applied)
    time.sleep(3)
    events = _directory_events(stack)
    assert sum(events.values()) == applied
    assert set(events.values()) == {1}


def test_a_restart_does_not_seed_over_changes(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """After `agency remove` and a restart, the removed agency stays removed and the added one stays."""
    assert _agency(stack, "remove", OTHER) == 0
    assert _agency(stack, "remove", OTHER) == 1  # unknown now: one line
    assert "not in the directory" in capsys.readouterr().err
    stack.hub.stop()
    stack.hub = Hub(dataclasses.replace(stack.settings), workers=1, progress=lambda _line: None)
    stack.hub.start()
    listed = _listed(stack, capsys)
    assert OTHER not in listed
    assert NEW in listed
    assert _wait(lambda: sum(_directory_events(stack).values()) >= len(listed) + 3)  # + add, pin, remove
    assert set(_directory_events(stack).values()) == {1}  # the restart recorded nothing twice


def test_commands_say_what_to_do_without_a_hub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a started hub's data folder, a command exits 1 with one line naming `lienthong up` as it can be typed."""
    capsys.readouterr()
    assert main(["agency", "list", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f" up --data {tmp_path}`" in err
