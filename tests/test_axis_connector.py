"""The national-axis connector against ``lienthong axis-sim``, on one running hub (started by ``lienthong up``).

The simulator has three registered systems: the hub (``LIENTHONG``, for the local agencies and the hub's own
OrganId), the government office (``VPCP``, for the axis-routed demo agency and an agency the hub's directory does not
list, whose certificate comes from a second trusted CA), and ``ROGUE``, which may send as a local agency's OrganId
at the axis. Tests build on each other in file order (one hub, one simulator).
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from kafka import KafkaConsumer

from adapters.axis_connector import CRASH_HOOK_ENV
from adapters.dms import HubClient
from adapters.vxp import VxpClient
from hub.demo import demo_status
from hub.records import DEADLETTER, LEDGER, inbox_topic, status_topic
from hub.settings import DEFAULT_HUB_ORGAN_ID
from hub.up import wait_until
from schemas import Edoc, StatusMessage, build_document, parse
from schemas.examples import example_edoc
from signer import devpki
from signer.keys import PemKey
from signer.sign import sign_document
from storage.ledger import LedgerEvent, decode_ledger_record
from tests.support.axis_sim import AxisSim, start_axis_sim
from tests.support.hub_fixtures import Outputs, Stack, demo_material, start_stack

pytestmark = pytest.mark.servers

SENDER = "000.01.00.H41"  # a local agency
LOCAL = "000.00.00.H41"  # another
AXIS_AGENCY = "000.00.00.G22"  # in the directory, route axis
UNLISTED = "000.88.00.H88"  # reached through the axis, not in the hub's directory
HUB_SECRET = "hub-secret-at-the-axis"
VPCP_SECRET = "vpcp-secret"
ROGUE_SECRET = "rogue-secret"
FORWARDED = "đã chuyển lên Trục liên thông văn bản quốc gia tới"
QUEUED = "đang chờ gửi lên Trục liên thông văn bản quốc gia tới"


@dataclass
class World:
    """The running hub, the simulator, and the keys the axis side signs with."""

    stack: Stack
    axis: AxisSim
    crash_file: Path
    unlisted: PemKey  # UNLISTED's key, from a CA the hub trusts
    stranger: PemKey  # UNLISTED's name on a key from a CA the hub does not trust
    outputs: Outputs

    @property
    def vpcp(self) -> VxpClient:
        """The government office's system at the axis."""
        return self.axis.client("VPCP", VPCP_SECRET)

    def hub_client(self, organ_id: str) -> HubClient:
        """A local agency's DMS (the hub's own principal: the tests drive any agency)."""
        return HubClient(self.stack.connection, organ_id=organ_id)


def _extra_pki(folder: Path) -> tuple[Path, Path, Path, PemKey, PemKey]:
    """A second trusted root and CA with CRLs, a leaf for UNLISTED, and an untrusted leaf with the same name."""
    now = datetime.now(UTC)
    window: dict[str, Any] = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=30)}
    root = devpki.make_root("Other Province Root", **window)
    ca = devpki.make_ca(root, "Other Province CA", **window)
    leaf = devpki.make_leaf(ca, "Unlisted agency", organ_id=UNLISTED, **window)
    stranger = devpki.make_leaf(devpki.make_root("Untrusted Root", **window), "Stranger", organ_id=UNLISTED, **window)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "root.pem").write_bytes(root.cert_pem())
    (folder / "ca.pem").write_bytes(ca.cert_pem())
    crls = b"".join(
        devpki.make_crl(
            issuer, [], this_update=now - timedelta(hours=1), next_update=now + timedelta(days=30)
        ).public_bytes(serialization.Encoding.PEM)
        for issuer in (ca,)
    )
    (folder / "ca-crl.pem").write_bytes(crls)
    root_crl = devpki.make_crl(root, [], this_update=now - timedelta(hours=1), next_update=now + timedelta(days=30))
    (folder / "root-crl.pem").write_bytes(root_crl.public_bytes(serialization.Encoding.PEM))
    keys = [PemKey.load(i.key_pem(), i.cert_pem() + i.chain_pem()) for i in (leaf, stranger)]
    return folder / "root.pem", folder / "ca.pem", folder, keys[0], keys[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The simulator, then a hub whose settings point at it (so ``lienthong up`` runs the connector)."""
    base = tmp_path_factory.mktemp("axis")
    material = demo_material(base / "data" / "demo")
    root, ca, extra, unlisted, stranger = _extra_pki(base / "extra-pki")
    agencies = base / "axis-agencies.yaml"
    systems = [
        {"system_id": "LIENTHONG", "secret": HUB_SECRET, "agencies": [*material.local_agencies, DEFAULT_HUB_ORGAN_ID]},
        {"system_id": "VPCP", "secret": VPCP_SECRET, "agencies": [AXIS_AGENCY, UNLISTED]},
        {"system_id": "ROGUE", "secret": ROGUE_SECRET, "agencies": [SENDER]},
    ]
    agencies.write_text(yaml.safe_dump({"systems": systems}), encoding="utf-8")
    axis = start_axis_sim(base / "axis-sim", agencies=agencies)
    crash_file = base / "crash-point"
    os.environ[CRASH_HOOK_ENV] = str(crash_file)  # read by the connector `lienthong up` starts (test-only hook)
    trust = material.trust_dir
    try:
        stack = start_stack(
            base / "data",
            axis_url=axis.endpoint,
            axis_system_id="LIENTHONG",
            axis_secret=HUB_SECRET,
            axis_poll_seconds=0.5,
            trust=(trust / "root.pem", root),
            intermediates=(trust / "ca.pem", ca),
            crls=(trust / "ca-crl.pem", trust / "root-crl.pem", extra / "ca-crl.pem", extra / "root-crl.pem"),
        )
    except BaseException:
        axis.stop()
        raise
    finally:
        os.environ.pop(CRASH_HOOK_ENV, None)
    outputs = Outputs(stack.connection)
    try:
        yield World(stack, axis, crash_file, unlisted, stranger, outputs)
    finally:
        outputs.close()
        stack.hub.stop()
        axis.stop()


_numbers = iter(range(1000, 10**6))


def _edoc(sender: str, recipients: tuple[str, ...], key: PemKey, notation: str = "LT-AXIS") -> bytes:
    edoc = example_edoc(
        sender=sender, recipients=recipients, number=next(_numbers), notation=notation, day=datetime.now(UTC).date()
    )
    return sign_document(build_document(edoc), key)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mailbox(client: VxpClient, messagetype: str = "edoc") -> dict[str, bytes]:
    """The docId → bytes of what waits in ``client``'s mailbox."""
    items = client.received(messagetype)["data"]
    return {i["docId"]: base64.b64decode(client.get_edoc(i["docId"])["data"]) for i in items}


def _take_from_mailbox(client: VxpClient, data: bytes, messagetype: str = "edoc", timeout: float = 60) -> str:
    """Wait for ``data`` in the mailbox, mark it done; its docId."""
    found: list[str] = []

    def arrived() -> bool:
        found[:] = [d for d, body in _mailbox(client, messagetype).items() if body == data]
        return bool(found)

    assert wait_until(arrived, timeout=timeout), "never reached the axis mailbox"
    assert client.update_status(found[0], "done")["status"] == "OK"
    return found[0]


def _document_id(document: bytes) -> str:
    message = parse(document).message
    assert isinstance(message, Edoc)
    return message.document_id


def _statuses(world: World, organ_id: str, document: bytes) -> list[StatusMessage]:
    """The statuses on ``organ_id``'s status topic about ``document``."""
    wanted = _document_id(document)
    found = []
    for _, value in world.outputs.records[status_topic(organ_id)]:
        message = parse(value).message
        if isinstance(message, StatusMessage) and message.response_for.document_id == wanted:
            found.append(message)
    return found


def _inbox_count(world: World, organ_id: str, data: bytes) -> int:
    return sum(value == data for _, value in world.outputs.records[inbox_topic(organ_id)])


def _dead_letters(world: World, data: bytes) -> list[dict[str, bytes]]:
    return [headers for headers, value in world.outputs.records[DEADLETTER] if value == data]


def _send_to_axis_agency(world: World) -> bytes:
    """A new document from SENDER to the axis agency, sent to the hub through SENDER's outbox."""
    document = _edoc(SENDER, (AXIS_AGENCY,), world.stack.material.keys[SENDER])
    client = world.hub_client(SENDER)
    client.send(document)
    client.close()
    return document


# --- both ways --------------------------------------------------------------------------------------------------


def test_local_document_reaches_the_axis_byte_for_byte_and_the_sender_hears_queued_then_forwarded(world: World) -> None:
    """A document for an axis agency reaches its axis mailbox unchanged, sent once; 01 queued, then 01 forwarded."""
    document = _send_to_axis_agency(world)
    _take_from_mailbox(world.vpcp, document)
    assert world.axis.stats()["sends"][_sha(document)] == 1
    assert world.outputs.wait_for(lambda _: len(_statuses(world, SENDER, document)) >= 2, timeout=60)
    first, second = _statuses(world, SENDER, document)
    assert (first.status_code, second.status_code) == ("01", "01")
    assert QUEUED in first.description
    assert FORWARDED in second.description
    assert second.sender.organ_id == DEFAULT_HUB_ORGAN_ID
    axis_doc_id = second.description.rsplit("mã trên trục: ", 1)[1].rstrip(")")
    events = _ledger_events(world, lambda e: e.detail.get("axis_doc_id") == axis_doc_id)
    assert [(e.verdict, e.sha256, e.detail["recipient"]) for e in events] == [
        ("sent-to-axis", _sha(document), AXIS_AGENCY)
    ]


def _ledger_events(world: World, wanted: Callable[[LedgerEvent], bool]) -> list[LedgerEvent]:
    """The events on lienthong.ledger that ``wanted`` picks (waiting a little for them to arrive)."""
    consumer = KafkaConsumer(
        LEDGER,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=3000,
        **world.stack.connection.options(),
    )
    try:
        return [e for m in consumer for e in decode_ledger_record(m.value)[0] if wanted(e)]
    finally:
        consumer.close()


def test_axis_document_reaches_the_local_inbox_and_its_status_reaches_the_axis(world: World) -> None:
    """From an axis agency to a local one: the inbox gets the bytes; the local 03 goes back to the axis agency."""
    material = world.stack.material
    document = _edoc(AXIS_AGENCY, (LOCAL,), material.keys[AXIS_AGENCY])
    assert world.vpcp.send_edoc(document, sender=AXIS_AGENCY)["status"] == "OK"
    assert world.outputs.wait_for(lambda _: _inbox_count(world, LOCAL, document) == 1, timeout=60)
    assert world.axis.stats()["mailboxes"]["LIENTHONG"]["edoc"] == 0  # taken and marked done
    assert _metric(_metrics(world), 'lienthong_axis_received_total{outcome="accepted",type="edoc"}') >= 1
    answer = demo_status(material, document, by=LOCAL, code="03")
    client = world.hub_client(LOCAL)
    client.send(answer)
    client.close()
    _take_from_mailbox(world.vpcp, answer, "status")
    assert world.axis.stats()["sends"][_sha(answer)] == 1


def test_axis_status_about_a_local_document_reaches_its_sender(world: World) -> None:
    """The axis agency's 03 about a local agency's document arrives on that agency's status topic, unchanged."""
    material = world.stack.material
    document = _send_to_axis_agency(world)
    _take_from_mailbox(world.vpcp, document)
    answer = demo_status(material, document, by=AXIS_AGENCY, code="03")
    assert world.vpcp.send_edoc(answer, sender=AXIS_AGENCY, messagetype="status")["status"] == "OK"
    assert world.outputs.wait_for(lambda o: any(v == answer for _, v in o.records[status_topic(SENDER)]), timeout=60)


# --- who may send through the axis ------------------------------------------------------------------------------


def test_axis_document_claiming_a_local_agency_is_refused(world: World) -> None:
    """A document through the axis whose From/OrganId is a local agency: SENDER_MISMATCH, nothing delivered."""
    material = world.stack.material
    document = _edoc(SENDER, (LOCAL,), material.keys[SENDER], notation="LT-ROGUE")
    rogue = world.axis.client("ROGUE", ROGUE_SECRET)
    assert rogue.send_edoc(document, sender=SENDER)["status"] == "OK"
    assert world.outputs.wait_for(lambda _: bool(_dead_letters(world, document)), timeout=60)
    assert _dead_letters(world, document)[0]["lienthong-reason"] == b"SENDER_MISMATCH"
    world.outputs.poll(2.0)
    assert _inbox_count(world, LOCAL, document) == 0
    assert _statuses(world, SENDER, document) == []  # the impersonated agency is not told anything


def test_unlisted_axis_sender_whose_certificate_chains_is_accepted(world: World) -> None:
    """An agency not in the directory, reached through the axis, signed by a trusted CA: delivered, no pin needed."""
    document = _edoc(UNLISTED, (LOCAL,), world.unlisted)
    assert world.vpcp.send_edoc(document, sender=UNLISTED)["status"] == "OK"
    assert world.outputs.wait_for(lambda _: _inbox_count(world, LOCAL, document) == 1, timeout=60)


def test_unlisted_axis_sender_whose_certificate_does_not_chain_is_refused_through_the_axis(world: World) -> None:
    """The same agency on a key the anchors do not reach: refused, and its 02 goes back to it through the axis."""
    document = _edoc(UNLISTED, (LOCAL,), world.stranger)
    assert world.vpcp.send_edoc(document, sender=UNLISTED)["status"] == "OK"
    assert world.outputs.wait_for(lambda _: bool(_dead_letters(world, document)), timeout=60)
    assert _dead_letters(world, document)[0]["lienthong-reason"] == b"NO_CERTIFICATE_CHAIN_FOUND"
    assert _inbox_count(world, LOCAL, document) == 0
    wanted = _document_id(document)
    answers: list[StatusMessage] = []

    def answered() -> bool:
        for body in _mailbox(world.vpcp, "status").values():
            message = parse(body).message
            if isinstance(message, StatusMessage) and message.response_for.document_id == wanted:
                answers.append(message)
        return bool(answers)

    assert wait_until(answered, timeout=60)
    assert answers[0].status_code == "02"
    assert "NO_CERTIFICATE_CHAIN_FOUND" in answers[0].description


# --- faults -----------------------------------------------------------------------------------------------------


def _connector_pid(world: World) -> int | None:
    connector = world.stack.hub._axis_connector
    return connector.pid if connector is not None and connector.running else None


def test_connector_killed_between_send_and_record_does_not_send_again(world: World) -> None:
    """SIGKILL right after the axis accepted a send: the restarted connector asks the axis and does not resend."""
    before = _connector_pid(world)
    world.crash_file.write_text("after-send", encoding="utf-8")
    document = _send_to_axis_agency(world)
    assert wait_until(lambda: _connector_pid(world) not in (None, before), timeout=90), (
        "the connector was not restarted"
    )
    assert not world.crash_file.exists()  # the hook fired
    assert world.outputs.wait_for(
        lambda _: any(FORWARDED in s.description for s in _statuses(world, SENDER, document)), timeout=90
    )
    _take_from_mailbox(world.vpcp, document)
    assert world.axis.stats()["sends"][_sha(document)] == 1


def test_connector_killed_between_produce_and_done_delivers_once(world: World) -> None:
    """SIGKILL after the document was produced but before updateStatus done: fetched again, delivered once."""
    material = world.stack.material
    before = _connector_pid(world)
    world.crash_file.write_text("after-produce", encoding="utf-8")
    document = _edoc(AXIS_AGENCY, (LOCAL,), material.keys[AXIS_AGENCY])
    assert world.vpcp.send_edoc(document, sender=AXIS_AGENCY)["status"] == "OK"
    assert wait_until(lambda: _connector_pid(world) not in (None, before), timeout=90), (
        "the connector was not restarted"
    )
    assert wait_until(lambda: world.axis.stats()["mailboxes"]["LIENTHONG"]["edoc"] == 0, timeout=90)
    assert world.outputs.wait_for(lambda _: _inbox_count(world, LOCAL, document) >= 1, timeout=60)
    world.outputs.poll(3.0)
    assert _inbox_count(world, LOCAL, document) == 1


def test_axis_down_for_60_s_in_the_middle_of_1000_documents_each_is_sent_exactly_once(world: World) -> None:
    """1,000 documents for the axis, the axis down 60 s midway: all sent once each; the metrics show the link."""
    material = world.stack.material
    senders = material.local_agencies[:3]
    documents = {
        s: [_edoc(s, (AXIS_AGENCY,), material.keys[s], notation="LT-BULK") for _ in range(334)] for s in senders
    }
    wanted = {_sha(d) for batch in documents.values() for d in batch}
    assert len(wanted) >= 1000
    for sender, batch in documents.items():
        client = world.hub_client(sender)
        client.send_many(batch)
        client.close()

    def sent() -> int:
        sends = world.axis.stats()["sends"]
        return sum(1 for sha in wanted if sha in sends)

    assert wait_until(lambda: sent() >= 200, timeout=120, every=0.2)
    world.axis.outage(60)
    during = sent()
    assert during < len(wanted), "every document was sent before the outage began"
    assert wait_until(lambda: sent() == len(wanted), timeout=300, every=2.0)
    counts = Counter({sha: n for sha, n in world.axis.stats()["sends"].items() if sha in wanted})
    assert set(counts.values()) == {1}
    metrics = _metrics(world)
    assert _metric(metrics, 'lienthong_axis_sent_total{type="edoc"}') >= len(wanted)
    assert _metric(metrics, 'lienthong_axis_errors_total{operation="send to the axis"}') >= 1
    assert _metric(metrics, "lienthong_axis_last_success_timestamp_seconds") > 0
    assert "lienthong_axis_queued" in metrics


def _metrics(world: World) -> str:
    """The hub's /metrics page (the connector's metrics are collected there, like the workers')."""
    url = f"http://127.0.0.1:{world.stack.settings.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def _metric(text: str, sample: str) -> float:
    """The value of ``sample`` (a name, with its labels if it has any) on a /metrics page; 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0
