"""``lienthong axis-sim``: every VXP operation against the simulator, a subprocess, with ``adapters.vxp``'s client.

One simulator serves the module (systems A and B, agency G22 auto-replying with the test PKI's key); the restart
test starts its own. No broker is needed.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from adapters.axis_sim import load_config
from adapters.vxp import CRLF, VxpClientError, format_timestamp, hash_file, sign_request
from hub.cli import main
from hub.demo import DEMO_AGENCIES, write_axis_sim_agencies
from schemas import build_document, build_status, parse
from schemas.examples import example_edoc, example_status
from schemas.model import Edoc
from signer.organ import certificate_organ_id
from signer.policy import TrustPolicy
from signer.verify import verify_document
from tests.support.axis_sim import AxisSim, axis_sim
from tests.support.hub_fixtures import demo_material
from tests.support.pki_fixtures import AGENCY_RSA_ORGAN_ID, FIXED_NOW, TestPki

A, SECRET_A, ORGAN_A = "SYS-A", "secret-a", "000.00.00.H41"
B, SECRET_B, ORGAN_B = "SYS-B", "secret-b", "000.00.00.H13"
AUTO = AGENCY_RSA_ORGAN_ID  # 000.00.00.G22, answered by the simulator itself

_numbers = iter(range(1000, 100000))


def edoc(sender: str = ORGAN_A, recipients: tuple[str, ...] = (ORGAN_B,)) -> bytes:
    """A fresh unsigned công văn (each with its own number, so each is a different document)."""
    return build_document(example_edoc(sender=sender, recipients=recipients, number=next(_numbers)))


def write_agencies(folder: Path, pki_dir: Path) -> Path:
    """Systems A (admin: no) and B (admin), and G22 auto-replying with the test PKI's RSA agency key."""
    path = folder / "agencies.yaml"
    document = {
        "systems": [
            {"system_id": A, "secret": SECRET_A, "agencies": [ORGAN_A]},
            {"system_id": B, "secret": SECRET_B, "agencies": [ORGAN_B], "admin": True},
        ],
        "auto_reply": [
            {"organ_id": AUTO, "key": str(pki_dir / "agency-rsa.key"), "cert": str(pki_dir / "agency-rsa.pem")},
        ],
        "directory": [
            {"code": ORGAN_A, "name": "UBND tỉnh Nghệ An"},
            {"code": ORGAN_B, "name": "UBND tỉnh Bình Dương", "mail": "vanthu@binhduong.gov.vn"},
            {"code": AUTO, "name": "Văn phòng Chính phủ"},
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sim(tmp_path_factory, pki_dir):
    """One simulator for the module."""
    folder = tmp_path_factory.mktemp("axis")
    with axis_sim(folder / "data", agencies=write_agencies(folder, pki_dir)) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def client_a(sim):
    """System A's client (agency H41)."""
    client = sim.client(A, SECRET_A)
    yield client
    client.close()


@pytest.fixture(scope="module")
def client_b(sim):
    """System B's client (agency H13, the directory's administrator)."""
    client = sim.client(B, SECRET_B)
    yield client
    client.close()


def drain(client, messagetype="edoc"):
    """Mark everything waiting in a mailbox done, so each test starts from an empty list."""
    for item in client.received(messagetype)["data"]:
        assert client.update_status(item["docId"], "done")["status"] == "OK"


def wait_for(predicate, timeout=15.0):
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_document_and_status_travel_byte_for_byte(client_a, client_b):
    """A's document reaches B's mailbox byte for byte (getEdoc and downloadEdoc), B's status 03 reaches A's."""
    drain(client_a, "status")
    drain(client_b)
    data = edoc()
    sent = client_a.send_edoc(data, sender=ORGAN_A)
    assert sent["status"] == "OK"
    assert re.fullmatch(r"AX-[0-9a-f]{32}", sent["DocId"])
    assert (
        client_b.call("countReceiveEdoc", [("servicetype", "eDoc"), ("messagetype", "edoc")], body=b"{}")["count"] == 1
    )
    [item] = client_b.received("edoc")["data"]
    assert item["from"] == ORGAN_A
    assert item["to"] == ORGAN_B
    assert item["messageType"] == "edoc"
    assert item["docId"] != sent["DocId"]
    assert base64.b64decode(client_b.get_edoc(item["docId"])["data"]) == data
    assert client_b.download_edoc(item["docId"]) == (200, data)

    sent_list = client_a.sent("edoc", sent["DocId"])["data"]
    assert [(s["toCode"], s["receiverDocId"], s["receiveStatus"]) for s in sent_list] == [
        (ORGAN_B, item["docId"], "new")
    ]
    assert sent_list[0]["notation"].endswith("/VPCP-TTĐT")
    assert sent_list[0]["title"].startswith("V/v triển khai")
    assert client_b.update_status(item["docId"], "done")["status"] == "OK"
    assert client_b.received("edoc")["data"] == []
    assert client_a.sent("edoc", sent["DocId"])["data"][0]["receiveStatus"] == "done"

    message = parse(data).message
    assert isinstance(message, Edoc)
    status = build_status(example_status(message, by=ORGAN_B, code="03"))
    reply = client_b.send_edoc(status, sender=ORGAN_B, messagetype="status")
    assert reply["status"] == "OK", reply
    [answer] = client_a.received("status")["data"]
    assert answer["from"] == ORGAN_B
    assert client_a.download_edoc(answer["docId"]) == (200, status)
    count = client_a.call("countReceiveStatus", [("servicetype", "eDoc"), ("messagetype", "status")], body=b"{}")
    assert count["count"] == 1
    assert client_b.sent("status")["data"][-1]["toCode"] == ORGAN_A


def test_each_send_gets_a_fresh_doc_id_and_stats_count_it(sim, client_a, client_b):
    """The same body sent twice is two sends with two DocIds, and the stats count 2 for its SHA-256."""
    data = edoc()
    first = client_a.send_edoc(data, sender=ORGAN_A)["DocId"]
    second = client_a.send_edoc(data, sender=ORGAN_A)["DocId"]
    assert first != second
    stats = sim.stats()
    assert stats["sends"][hashlib.sha256(data).hexdigest()] == 2
    assert stats["mailboxes"][B]["edoc"] == len(client_b.received("edoc")["data"]) >= 2
    drain(client_b)
    assert sim.stats()["mailboxes"][B]["edoc"] == 0


def test_from_not_registered_is_refused_as_the_real_axis_says(sim, client_a, client_b):
    """A ``from`` that is not one of the caller's agencies: FAIL 2003 with the real axis's text; nothing sent."""
    drain(client_b)
    data = edoc(sender=ORGAN_B, recipients=(ORGAN_A,))
    reply = client_a.send_edoc(data, sender=ORGAN_B)
    assert reply == {
        "status": "FAIL",
        "ErrorCode": "2003",
        "ErrorDesc": f"Don vi gui {ORGAN_B} khong dung voi ma da dang ky: {A}",
        "DocId": "",
    }
    assert hashlib.sha256(data).hexdigest() not in sim.stats()["sends"]


def test_refusals_carry_their_codes_and_deliver_nothing(sim, client_a, client_b):
    """Bad hash-file, an invalid edXML (its element path named), an unknown recipient, others' docIds, bad secret."""
    drain(client_b)
    data = edoc()
    bad_hash = client_a.call(
        "sendEdoc",
        [("from", ORGAN_A), ("servicetype", "eDoc"), ("messagetype", "edoc"), ("hash-file", hash_file(b"other"))],
        body=data + CRLF,
        content_type="application/octet-stream",
    )
    assert (bad_hash["ErrorCode"], bad_hash["DocId"]) == ("2002", "")
    invalid = re.sub(rb"<edXML:Subject>.*?</edXML:Subject>", b"", data, flags=re.DOTALL)
    refused = client_a.send_edoc(invalid, sender=ORGAN_A)
    assert refused["ErrorCode"] == "2002"
    assert "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Subject" in refused["ErrorDesc"]
    assert client_a.send_edoc(b"\x00garbage", sender=ORGAN_A)["ErrorCode"] == "2002"
    assert client_a.send_edoc(b"", sender=ORGAN_A)["ErrorCode"] == "2002"
    nobody = client_a.send_edoc(edoc(recipients=("000.99.00.H99",)), sender=ORGAN_A)
    assert nobody["ErrorCode"] == "2005"
    assert "000.99.00.H99" in nobody["ErrorDesc"]
    wrong_kind = client_a.send_edoc(data, sender=ORGAN_A, messagetype="status")
    assert wrong_kind["ErrorCode"] == "2005"
    assert client_b.received("edoc")["data"] == []

    mine = client_a.send_edoc(data, sender=ORGAN_A)["DocId"]
    [item] = client_b.received("edoc")["data"]
    for doc_id in (item["docId"], mine, "../../etc/passwd"):
        assert client_a.get_edoc(doc_id)["ErrorCode"] == "3001"
        status, body = client_a.download_edoc(doc_id)
        assert status == 404
        assert json.loads(body)["ErrorCode"] == "3001"
    assert client_b.update_status(item["docId"], "read")["ErrorCode"] == "2005"
    assert client_b.received("eDocx")["ErrorCode"] == "2005"

    intruder = sim.client(A, "not-the-secret")
    assert intruder.received()["ErrorCode"] == "1003"
    assert intruder.download_edoc(item["docId"])[0] == 401
    stranger = sim.client("SYS-Z", "whatever")
    assert stranger.received()["ErrorCode"] == "1002"
    assert client_a.call("noSuchOperation")["ErrorCode"] == "4002"
    intruder.close()
    stranger.close()
    drain(client_b)


def test_sloppy_sdk_requests_are_accepted(sim, client_b):
    """An old timestamp, a lower-case ``docid``, lingering unsigned headers and ``Expect: 100-continue`` work."""
    drain(client_b)
    sim.client(A, SECRET_A).send_edoc(edoc(), sender=ORGAN_A)
    [item] = client_b.received("edoc")["data"]
    stamp = format_timestamp(datetime.now(UTC) - timedelta(hours=20))
    headers = sign_request(B, SECRET_B, [("docid", item["docId"]), ("filePath", "C:\\edoc\\x.edxml")], timestamp=stamp)
    headers |= {"XroadVnpt-status": "done", "XroadVnpt-messagetype": "edoc", "Expect": "100-continue"}
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    connection.request("POST", "/vxp/getEdoc", body=b"{}", headers=headers)
    response = connection.getresponse()
    reply = json.loads(response.read())
    connection.close()
    assert reply["status"] == "OK", reply
    assert base64.b64decode(reply["data"]).startswith(b"<?xml")
    drain(client_b)


def test_directory_operations_and_admin_only_changes(client_a, client_b):
    """The three directory lists answer with ``data``; registerAgency/deleteAgency are for the admin system only."""
    agencies = client_a.call("getAgenciesList")
    assert {a["code"] for a in agencies["data"]} == {ORGAN_A, ORGAN_B, AUTO}
    assert {"id", "pid", "code", "name", "mail", "oldCode"} <= set(agencies["data"][0])
    assert any(a["name"] == "Văn phòng Chính phủ" for a in agencies["data"])
    qd20 = client_a.call("getAgenciesListQD20", [("level", "1")])["data"]
    assert {"id", "code", "name", "mail", "code102"} <= set(qd20[0])
    units = client_a.call("getSynchronizeUnit")["data"]
    assert {"version", "centerCode", "deleted", "modifyDate", "isAgency"} <= set(units[0])

    body = json.dumps({"id": "", "pcode": "", "code": "000.05.00.H41", "name": "Sở Xây dựng", "mail": "", "mobile": ""})
    assert client_a.call("registerAgency", body=body.encode())["ErrorCode"] == "4001"
    assert client_b.call("registerAgency", body=body.encode())["status"] == "OK"
    assert "000.05.00.H41" in {a["code"] for a in client_a.call("getAgenciesList")["data"]}
    assert client_a.call("deleteAgency", [("AgencyCode", "000.05.00.H41")], body=b"{}")["ErrorCode"] == "4001"
    assert client_b.call("deleteAgency", [("AgencyCode", "000.05.00.H41")], body=b"{}")["status"] == "OK"
    assert "000.05.00.H41" not in {a["code"] for a in client_a.call("getAgenciesList")["data"]}
    deleted = [u for u in client_a.call("getSynchronizeUnit")["data"] if u["code"] == "000.05.00.H41"]
    assert deleted[0]["deleted"] is True


def test_outage_answers_503_unavailable_then_recovers(sim, client_a):
    """During an outage every call is HTTP 503 with FAIL 5001 and nothing is accepted; afterwards all works again."""
    data = edoc()
    sim.outage(60)
    try:
        status, body = client_a.call_raw("getReceivedEdocList", [("servicetype", "eDoc"), ("messagetype", "edoc")])
        assert status == 503
        assert json.loads(body)["ErrorCode"] == "5001"
        refused = client_a.send_edoc(data, sender=ORGAN_A)
        assert (refused["status"], refused["ErrorCode"]) == ("FAIL", "5001")
    finally:
        sim.outage(0)
    assert hashlib.sha256(data).hexdigest() not in sim.stats()["sends"]
    assert client_a.send_edoc(data, sender=ORGAN_A)["status"] == "OK"


def test_slow_answers_outlast_a_short_client_timeout(sim):
    """In slow mode a client with a short timeout gets no answer; with slow mode off it does."""
    impatient = sim.client(A, SECRET_A, timeout=0.3)
    sim.slow(3)
    try:
        with pytest.raises(VxpClientError):
            impatient.received()
    finally:
        sim.slow(0)
        impatient.close()
    assert sim.client(A, SECRET_A, timeout=5).received()["status"] == "OK"


def test_auto_reply_sends_signed_statuses_01_then_03(pki: TestPki, client_a):
    """A document to an auto-replying agency is answered with statuses 01 then 03, signed by that agency's key."""
    drain(client_a, "status")
    data = edoc(recipients=(AUTO,))
    sent = client_a.send_edoc(data, sender=ORGAN_A)
    assert sent["status"] == "OK"
    items = wait_for(lambda: (found := client_a.received("status")["data"]) and len(found) >= 2 and found)
    policy = TrustPolicy(anchors=(pki.root.cert,), intermediates=(pki.ca.cert,), crls=(pki.crl, pki.root_crl))
    codes = []
    for item in items:
        assert item["from"] == AUTO
        status, signed = client_a.download_edoc(item["docId"])
        assert status == 200
        report = verify_document(signed, policy, at=FIXED_NOW)
        assert report.indication == "TOTAL_PASSED", report
        message = parse(signed).message
        assert message.kind == "status"
        assert message.sender.organ_id == AUTO
        assert message.response_for.document_id == parse(data).message.document_id
        codes.append(message.status_code)
    assert codes == ["01", "03"]
    wait_for(lambda: client_a.sent("edoc", sent["DocId"])["data"][0]["receiveStatus"] == "done")
    drain(client_a, "status")


def test_state_survives_a_restart(tmp_path, pki_dir):
    """Mailboxes, sends and stats are on disk: after SIGTERM (exit 0) and a restart, all is still there."""
    agencies = write_agencies(tmp_path, pki_dir)
    simulator: AxisSim
    with axis_sim(tmp_path / "data", agencies=agencies) as simulator:
        data = edoc()
        sent = simulator.client(A, SECRET_A).send_edoc(data, sender=ORGAN_A)["DocId"]
        waiting = simulator.client(B, SECRET_B).received()["data"]
        restarted = simulator.restart()
        assert simulator.process.returncode == 0
    try:
        client_b = restarted.client(B, SECRET_B)
        assert client_b.received()["data"] == waiting
        assert client_b.download_edoc(waiting[0]["docId"]) == (200, data)
        assert restarted.client(A, SECRET_A).sent("edoc", sent)["data"][0]["receiverDocId"] == waiting[0]["docId"]
        assert restarted.stats()["sends"] == {hashlib.sha256(data).hexdigest(): 1}
    finally:
        assert restarted.stop() == 0


def test_a_bad_agencies_file_is_refused_in_one_line(tmp_path, capsys):
    """A wrong agencies file: exit 2 and one line naming the field (the command, run in-process)."""
    path = tmp_path / "agencies.yaml"
    path.write_text("systems:\n  - {system_id: A, agencies: [000.00.00.H41]}\n", encoding="utf-8")
    code = main(["axis-sim", "--port", "0", "--data", str(tmp_path), "--agencies", str(path)])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"lienthong axis-sim: {path}: systems[0].secret: a non-empty string is required"
    ]
    path.write_text("systems: [\n", encoding="utf-8")
    assert main(["axis-sim", "--port", "0", "--data", str(tmp_path), "--agencies", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) >= 1
    assert main(["axis-sim", "--port", "0", "--data", str(tmp_path / "none")]) == 2
    assert "agencies.yaml" in capsys.readouterr().err


def test_demo_agencies_file_lets_the_axis_agency_answer(tmp_path):
    """The demo's agencies file registers the hub and auto-replies for the axis agency with a cert naming it."""
    material = demo_material(tmp_path / "demo")
    path = write_axis_sim_agencies(
        material,
        tmp_path / "axis" / "agencies.yaml",
        system_id="000.00.99.H41",
        secret="s3",
        hub_organ_id="000.00.99.H41",
    )
    assert path.stat().st_mode & 0o077 == 0
    config = load_config(path)
    [system] = config.systems
    assert system.system_id == "000.00.99.H41"
    assert set(material.local_agencies) | {"000.00.99.H41"} == set(system.agencies)
    axis = [oid for oid, (_, route) in DEMO_AGENCIES.items() if route == "axis"]
    assert set(config.auto_reply) == set(axis)
    for oid in axis:
        assert certificate_organ_id(config.auto_reply[oid].key.certificate) == oid
        assert config.auto_reply[oid].chain
