"""The VXP facade of a running ``lienthong up``, driven by an SDK-like client written from VXP.md (issue 12).

One hub for the module (embedded Kafka and SeaweedFS, one worker, the facade process ``up`` starts). The client
(``tests.support.vxp_sdk``) is as sloppy as the real SDK: headers linger from call to call, ``docId`` and ``docid``
both occur, ``{}`` bodies go with ``Expect: 100-continue``, and its timestamp was made three hours ago.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from adapters.vxp import DOC_ID_PATTERN, VxpCode
from adapters.vxp_mailbox import Mailbox
from hub.access import issue_credentials
from hub.demo import demo_status
from hub.records import outbox_topic
from schemas import build_document
from schemas.examples import example_edoc
from signer.sign import sign_document
from storage.s3 import S3ObjectStore
from tests.support.hub_fixtures import Stack
from tests.support.vxp_sdk import SdkClient, SdkReply, sdk_hash_file

A, B, C = "000.01.00.H41", "000.02.00.H41", "000.03.00.H41"
_WAIT = 60.0


@dataclass
class Clients:
    """SDK clients of three agencies and of the administrator, from their issued credentials."""

    endpoint: str
    secrets: dict[str, str]
    a: SdkClient
    b: SdkClient
    c: SdkClient
    admin: SdkClient


@pytest.fixture(name="stack", scope="module")
def shared_stack(module_stack: Stack) -> Stack:
    """One running hub (and its facade) for the whole module."""
    return module_stack


@pytest.fixture(name="vxp", scope="module")
def vxp_clients(stack: Stack) -> Clients:
    """Credentials issued after the facade started (it reads new secrets without a restart), one client each."""
    issued = {oid: issue_credentials(stack.settings, oid)["vxp"] for oid in (A, B, C)}
    issued["admin"] = issue_credentials(stack.settings, None)["vxp"]
    endpoint = issued[A]["endpoint"]
    assert endpoint == f"http://127.0.0.1:{stack.settings.vxp_port}/vxp"
    secrets = {oid: block["secret"] for oid, block in issued.items()}
    clients = {oid: SdkClient(endpoint, block["system_id"], block["secret"]) for oid, block in issued.items()}
    return Clients(endpoint, secrets, clients[A], clients[B], clients[C], clients["admin"])


def _edoc(stack: Stack, number: int, sender: str = A, recipients: tuple[str, ...] = (B,)) -> bytes:
    edoc = example_edoc(
        sender=sender, recipients=recipients, number=number, notation="LT-VXP", day=datetime.now(UTC).date()
    )
    return sign_document(build_document(edoc), stack.material.keys[sender])


def _ok(reply: SdkReply) -> dict[str, Any]:
    body = reply.json()
    assert body["status"] == "OK", body
    assert body["ErrorCode"] == "0"
    return body


def _refused(reply: SdkReply, code: VxpCode) -> dict[str, Any]:
    body = reply.json()
    assert body["status"] == "FAIL", body
    assert body["ErrorCode"] == code.value, body
    assert body["ErrorDesc"]
    return body


def _wait_for(
    client: SdkClient, kind: str, found: Callable[[dict[str, Any]], bool], *, timeout: float = _WAIT
) -> dict[str, Any]:
    """Poll getReceivedEdocList until an item matches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in _ok(client.received(kind))["data"]:
            if found(item):
                return dict(item)
        time.sleep(0.5)
    raise AssertionError(f"no {kind} item arrived for {client.system_id} within {timeout} s")


@dataclass
class Delivered:
    """A document A sent B through the facade, and its docId in B's mailbox."""

    data: bytes
    sent_id: str
    received_id: str
    item: dict[str, Any]


@pytest.fixture(name="delivered", scope="module")
def delivered_document(stack: Stack, vxp: Clients) -> Delivered:
    """A sends one document (Vietnamese text) to B with sendEdoc; it reaches B's mailbox."""
    data = _edoc(stack, 7001)
    reply = vxp.a.send_edoc(data)
    assert reply.status == 200
    reply.body.decode("ascii")  # the SDK reads sendEdoc's reply as US-ASCII
    sent_id = _ok(reply)["DocId"]
    item = _wait_for(vxp.b, "edoc", lambda i: i["from"] == A)
    return Delivered(data, sent_id, item["docId"], item)


def _outbox_ends(stack: Stack) -> dict[str, int]:
    consumer = KafkaConsumer(**stack.connection.options())
    try:
        partitions = [TopicPartition(outbox_topic(o), p) for o in (A, B, C) for p in range(stack.settings.partitions)]
        return {f"{tp.topic}/{tp.partition}": n for tp, n in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


# --- the exchange ------------------------------------------------------------------------------------------------


def test_a_document_sent_by_a_reaches_b_byte_for_byte(delivered: Delivered, vxp: Clients) -> None:
    """SendEdoc → B's list (VXP.md's fields, `to` a string) → downloadEdoc and getEdoc give the very bytes."""
    assert DOC_ID_PATTERN.match(delivered.sent_id)
    assert delivered.sent_id == f"{A}_{hashlib.sha256(delivered.data).hexdigest()[:32]}"
    assert DOC_ID_PATTERN.match(delivered.received_id)
    assert delivered.received_id != delivered.sent_id  # unique per (document, recipient)
    item = delivered.item
    assert set(item) == {
        "docId", "serviceType", "messageType", "created_time", "updated_time", "from", "to", "status", "status_desc",
    }  # fmt: skip
    assert (item["to"], item["messageType"], item["status"]) == (B, "edoc", "new")
    assert datetime.fromisoformat(item["created_time"]).utcoffset() == timedelta(hours=7)
    download = vxp.b.download_edoc(delivered.received_id)
    assert download.status == 200
    assert download.body == delivered.data
    got = vxp.b.get_edoc(delivered.received_id)
    assert got.continued  # `{}` went after the server's 100 Continue
    assert base64.b64decode(_ok(got)["data"]) == delivered.data
    assert "triển khai liên thông văn bản điện tử" in delivered.data.decode("utf-8")
    assert _ok(vxp.a.send_edoc(delivered.data))["DocId"] == delivered.sent_id  # the same body, the same DocId


def test_status_03_from_b_reaches_a_and_its_sent_list(stack: Stack, vxp: Clients, delivered: Delivered) -> None:
    """B's signed status 03, sent with messagetype status, lands in A's status list and A's getSentEdocList."""
    status = demo_status(stack.material, delivered.data, by=B, code="03")
    _ok(vxp.b.send_edoc(status, messagetype="status"))
    item = _wait_for(vxp.a, "status", lambda i: i["from"] == B)
    assert item["messageType"] == "status"
    assert vxp.a.get_edoc_bytes(item["docId"]) == status
    assert _ok(vxp.a.count("Status"))["count"] >= 1
    deadline = time.monotonic() + _WAIT
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = _ok(vxp.a.sent(doc_id=delivered.sent_id))["data"]
        if rows and rows[0]["receiveStatus"] == "03":
            break
        time.sleep(0.5)
    assert len(rows) == 1
    row = rows[0]
    assert (row["toCode"], row["receiveStatus"], row["senderDocId"], row["fromCode"]) == (B, "03", delivered.sent_id, A)
    assert row["receiverDocId"] == delivered.received_id
    assert row["sendStatus"] == "01"  # the hub's own answer: received and forwarded
    assert row["title"].startswith("V/v triển khai liên thông")  # escaped on the wire, intact once parsed
    sent_statuses = _ok(vxp.b.sent("status"))["data"]
    assert [r["toCode"] for r in sent_statuses] == [A]


def test_done_removes_an_item_for_good_even_across_a_restart(stack: Stack, vxp: Clients, delivered: Delivered) -> None:
    """Processing and fail are shown (fail on the dashboard too); done removes it, after a restart and a re-read."""
    doc_id = delivered.received_id
    _refused(vxp.b.get_edoc("no-such-document"), VxpCode.NOT_FOUND)  # its docId header now lingers in the client
    _ok(vxp.b.update_status(doc_id, "processing"))  # spelt docid: the signed value wins over the lingering one
    listed = {i["docId"]: i for i in _ok(vxp.b.received())["data"]}
    assert listed[doc_id]["status"] == "processing"
    _ok(vxp.b.update_status(doc_id, "fail"))
    assert {i["docId"]: i for i in _ok(vxp.b.received())["data"]}[doc_id]["status"] == "fail"
    assert f"{'vxp':>8} {'fail':<10} {B:<28} 1" in stack.hub.dashboard()
    before = _ok(vxp.b.count())["count"]
    _ok(vxp.b.update_status(doc_id, "done"))
    assert doc_id not in {i["docId"] for i in _ok(vxp.b.received())["data"]}
    assert _ok(vxp.b.count())["count"] == before - 1
    _refused(vxp.b.update_status(doc_id, "archived"), VxpCode.BAD_PARAMETER)

    facade = stack.hub.vxp_facade
    assert facade is not None
    facade.stop()
    facade.start()
    settings = stack.settings
    store = S3ObjectStore.connect(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key, settings.s3_bucket
    )
    Mailbox(store).ingest(B, "edoc", A.encode(), delivered.data)  # read again after a crash
    assert doc_id not in {i["docId"] for i in _ok(vxp.b.received())["data"]}
    assert vxp.b.get_edoc_bytes(doc_id) == delivered.data  # done is not deleted: it can still be fetched


def test_list_dates_filter_and_refuse_what_they_cannot_read(stack: Stack, vxp: Clients, delivered: Delivered) -> None:
    """FromDate/toDate take yyyy-MM-dd (whole days, Vietnam time) or ISO 8601; anything else is BAD_PARAMETER."""
    today = datetime.now(UTC).astimezone().date()
    tomorrow, yesterday = today + timedelta(days=2), today - timedelta(days=2)
    _ok(vxp.c.send_edoc(_edoc(stack, 7002, sender=C, recipients=(B,))))
    item = _wait_for(vxp.b, "edoc", lambda i: i["from"] == C)
    assert any(i["docId"] == item["docId"] for i in _ok(vxp.b.received(fromDate=yesterday.isoformat()))["data"])
    assert _ok(vxp.b.received(fromDate=tomorrow.isoformat()))["data"] == []
    assert _ok(vxp.b.received(toDate=yesterday.isoformat()))["data"] == []
    _refused(vxp.b.received(fromDate="next tuesday"), VxpCode.BAD_PARAMETER)
    assert delivered.received_id  # the list holds C's document beside what A sent


# --- refusals ----------------------------------------------------------------------------------------------------


def test_refusals_are_fail_envelopes_with_their_code_and_deliver_nothing(stack: Stack, vxp: Clients) -> None:
    """Wrong secret, unknown system, altered header, foreign from, garbage, empty, bad hash-file: FAIL, no record."""
    data = _edoc(stack, 7003)
    ends = _outbox_ends(stack)
    wrong_secret = SdkClient(vxp.endpoint, A, "not-the-secret")
    assert _refused(wrong_secret.send_edoc(data), VxpCode.BAD_SIGNATURE)["DocId"]
    _refused(SdkClient(vxp.endpoint, "000.77.00.H41", vxp.secrets[A]).send_edoc(data), VxpCode.UNKNOWN_SYSTEM)
    altered = vxp.a.call(
        "sendEdoc",
        [("from", A), ("servicetype", "eDoc"), ("messagetype", "edoc"), ("hash-file", sdk_hash_file(data))],
        body=data + b"\r\n",
        content_type="application/octet-stream",
        headers={"XroadVnpt-from": C},  # a proxy changed a signed header
    )
    _refused(altered, VxpCode.HEADER_MISMATCH)
    foreign = _refused(vxp.a.send_edoc(data, sender=B), VxpCode.FROM_NOT_ALLOWED)
    assert foreign["ErrorDesc"] == f"Don vi gui {B} khong dung voi ma da dang ky: {A}"
    assert DOC_ID_PATTERN.match(foreign["DocId"])
    _refused(vxp.a.send_edoc(b"\x00\xffnot an edXML at all" * 40), VxpCode.BAD_BODY)
    empty = vxp.a.call(
        "sendEdoc",
        [("from", A), ("servicetype", "eDoc"), ("messagetype", "edoc"), ("hash-file", sdk_hash_file(b""))],
        body=b"",
        content_type="application/octet-stream",
    )
    _refused(empty, VxpCode.BAD_BODY)
    mismatch = vxp.a.call(
        "sendEdoc",
        [("from", A), ("servicetype", "eDoc"), ("messagetype", "edoc"), ("hash-file", sdk_hash_file(b"other"))],
        body=data + b"\r\n",
        content_type="application/octet-stream",
    )
    _refused(mismatch, VxpCode.BAD_BODY)
    _refused(vxp.a.send_edoc(data, messagetype="status"), VxpCode.BAD_PARAMETER)
    stale = SdkClient(vxp.endpoint, A, vxp.secrets[A], age=timedelta(days=2))
    _refused(stale.send_edoc(data), VxpCode.STALE_TIMESTAMP)
    time.sleep(1.0)
    assert _outbox_ends(stack) == ends  # nothing reached any outbox


def test_another_agencys_document_is_not_found_like_a_missing_one(vxp: Clients, delivered: Delivered) -> None:
    """C asking for B's docId gets NOT_FOUND worded as for a docId that never existed (downloadEdoc: a 404)."""
    theirs = _refused(vxp.c.get_edoc(delivered.received_id), VxpCode.NOT_FOUND)
    missing_id = "000.01.00.H41_" + "0" * 32 + "_000.03.00.H41"
    missing = _refused(vxp.c.get_edoc(missing_id), VxpCode.NOT_FOUND)
    assert theirs["ErrorDesc"].replace(delivered.received_id, "X") == missing["ErrorDesc"].replace(missing_id, "X")
    download = vxp.c.download_edoc(delivered.received_id)
    assert download.status == 404
    assert download.json()["ErrorCode"] == VxpCode.NOT_FOUND.value
    _refused(vxp.c.update_status(delivered.received_id, "done"), VxpCode.NOT_FOUND)


def test_unknown_operations_and_paths_are_json_404s(vxp: Clients) -> None:
    """An unknown operation or path answers a FAIL envelope with HTTP 404, never an HTML page."""
    unknown = vxp.a.call("sendEverything")
    assert unknown.status == 404
    _refused(unknown, VxpCode.UNKNOWN_OPERATION)
    elsewhere = vxp.a.raw("../admin", {}, body=b"", method="GET", expect=False)
    assert elsewhere.status == 404
    _refused(elsewhere, VxpCode.UNKNOWN_OPERATION)
    unsigned = vxp.a.raw("downloadEdoc", {"XroadVnpt-docId": "x"}, body=b"", method="GET", expect=False)
    assert unsigned.status == 401
    _refused(unsigned, VxpCode.AUTH_MISSING)


def test_rotated_credentials_work_at_once_and_the_old_secret_stops(stack: Stack, vxp: Clients) -> None:
    """A secret issued while the facade runs is used without a restart; the one it replaced is refused."""
    old = SdkClient(vxp.endpoint, C, vxp.secrets[C])
    _ok(old.count())
    new = issue_credentials(stack.settings, C, rotate=True)["vxp"]
    deadline = time.monotonic() + 10
    while old.count().json()["status"] == "OK" and time.monotonic() < deadline:
        time.sleep(0.2)
    _refused(old.count(), VxpCode.BAD_SIGNATURE)
    _ok(SdkClient(vxp.endpoint, C, new["secret"]).count())
    vxp.c = SdkClient(vxp.endpoint, C, new["secret"])
    vxp.secrets[C] = new["secret"]


# --- the directory -----------------------------------------------------------------------------------------------


def test_directory_lists_and_the_administrators_changes(vxp: Clients) -> None:
    """Agencies lists come from the signed directory; only the administrator may register or delete one."""
    agencies = {row["code"]: row for row in _ok(vxp.a.call("getAgenciesList"))["data"]}
    assert agencies[A]["name"] == "Sở Tư pháp tỉnh Nghệ An"
    assert set(agencies[A]) == {"id", "pid", "code", "name", "mail", "oldCode"}
    qd20 = _ok(vxp.a.call("getAgenciesListQD20", [("level", "1")]))["data"]
    assert {r["code102"] for r in qd20} >= {A, B, C}
    units = {r["code"]: r for r in _ok(vxp.a.call("getSynchronizeUnit"))["data"]}
    assert units[B]["deleted"] is False
    assert set(units[B]) == {
        "id", "pid", "code", "name", "mail", "version", "centerCode", "deleted", "modifyDate", "isAgency",
    }  # fmt: skip

    new = {"id": "9001", "pcode": "", "code": "000.44.00.H41", "name": "Sở Thử nghiệm VXP", "mail": "", "mobile": ""}
    body = json.dumps(new, ensure_ascii=False).encode("utf-8")
    _refused(vxp.a.call("registerAgency", body=body), VxpCode.FORBIDDEN)
    _refused(vxp.a.call("deleteAgency", [("AgencyCode", B)], body=b"{}"), VxpCode.FORBIDDEN)
    _ok(vxp.admin.call("registerAgency", body=body))
    listed = {row["code"]: row for row in _ok(vxp.admin.call("getAgenciesList"))["data"]}
    assert listed["000.44.00.H41"]["name"] == "Sở Thử nghiệm VXP"
    _refused(vxp.admin.call("registerAgency", body=body), VxpCode.BAD_PARAMETER)  # already there
    _refused(vxp.admin.call("registerAgency", body=b"[1, 2]"), VxpCode.BAD_BODY)
    _ok(vxp.admin.call("deleteAgency", [("AgencyCode", "000.44.00.H41")], body=b"{}"))
    assert "000.44.00.H41" not in {row["code"] for row in _ok(vxp.admin.call("getAgenciesList"))["data"]}
    _refused(vxp.admin.call("deleteAgency", [("AgencyCode", "000.44.00.H41")], body=b"{}"), VxpCode.NOT_FOUND)
