"""The VXP facade of a running ``lienthong up``, driven by an SDK-like client written from VXP.md (issue 12).

One hub for the module (embedded Kafka and SeaweedFS, one worker, the facade process ``up`` starts). The client
(``tests.support.vxp_sdk``) is as sloppy as the real SDK: headers linger from call to call, ``docId`` and ``docid``
both occur, ``{}`` bodies go with ``Expect: 100-continue``, and its timestamp was made three hours ago.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaConsumer, TopicPartition

from adapters.vxp import DOC_ID_PATTERN, VxpCode, hash_file, sign_request
from adapters.vxp_facade import VxpFacade, facade_connection
from adapters.vxp_mailbox import DEFAULT_LIST_LIMIT, Mailbox
from hub.access import VXP_USER, issue_credentials
from hub.demo import demo_status
from hub.records import outbox_topic
from hub.settings import HubSettings
from schemas import build_document
from schemas.examples import example_edoc
from signer.sign import sign_document
from storage.objectstore import MemoryObjectStore, ObjectInfo, StoreUnavailable
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
    assert delivered.received_id == f"{A}_{hashlib.sha256(delivered.data).hexdigest()[:32]}_{B}"  # per recipient
    item = delivered.item
    assert set(item) == {
        "docId", "serviceType", "messageType", "created_time", "updated_time", "from", "to", "status", "status_desc",
    }  # fmt: skip
    assert (item["to"], item["messageType"], item["status"]) == (B, "edoc", "new")
    assert datetime.fromisoformat(item["created_time"]).utcoffset() == timedelta(hours=7)
    assert item["updated_time"] == item["created_time"]  # no updateStatus yet
    download = vxp.b.download_edoc(delivered.received_id)
    assert download.status == 200
    assert download.body == delivered.data
    got = vxp.b.get_edoc(delivered.received_id)
    assert got.continued  # `{}` went after the server's 100 Continue
    assert base64.b64decode(_ok(got)["data"]) == delivered.data
    assert "triển khai liên thông văn bản điện tử" in delivered.data.decode("utf-8")
    assert _ok(vxp.a.send_edoc(delivered.data))["DocId"] == delivered.sent_id  # the same body, the same DocId


def test_a_document_over_the_record_limit_travels_as_a_claim_check(stack: Stack, vxp: Clients) -> None:
    """A 2 MB sendEdoc goes to the outbox as a claim check and reaches B's mailbox whole, byte for byte."""
    edoc = example_edoc(
        sender=A,
        recipients=(B,),
        number=7002,
        notation="LT-VXP",
        day=datetime.now(UTC).date(),
        attachment_bytes=1500_000,
    )
    data = sign_document(build_document(edoc), stack.material.keys[A])
    assert len(data) > stack.settings.claim_check_bytes
    _ok(vxp.a.send_edoc(data))
    wanted = f"{A}_{hashlib.sha256(data).hexdigest()[:32]}_{B}"
    item = _wait_for(vxp.b, "edoc", lambda i: i["docId"] == wanted)
    download = vxp.b.download_edoc(item["docId"])
    assert download.status == 200
    assert download.body == data
    assert base64.b64decode(_ok(vxp.b.get_edoc(item["docId"]))["data"]) == data
    _ok(vxp.b.update_status(item["docId"], "done"))


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
    assert listed[doc_id]["updated_time"] >= listed[doc_id]["created_time"]
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
    """FromDate/toDate take yyyy-MM-dd (whole days, Vietnam time) or ISO 8601; anything else is BAD_PARAMETER.

    C's document to B and A also shows getSentEdocList's one row per recipient.
    """
    today = datetime.now(UTC).astimezone().date()
    tomorrow, yesterday = today + timedelta(days=2), today - timedelta(days=2)
    reply = _ok(vxp.c.send_edoc(_edoc(stack, 7002, sender=C, recipients=(B, A))))
    item = _wait_for(vxp.b, "edoc", lambda i: i["from"] == C)
    rows = _ok(vxp.c.sent(doc_id=reply["DocId"]))["data"]
    assert sorted(r["toCode"] for r in rows) == [A, B]  # one row per (document, recipient)
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert any(i["docId"] == item["docId"] for i in _ok(vxp.b.received(fromDate=an_hour_ago))["data"])
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
    assert _refused(wrong_secret.send_edoc(data), VxpCode.BAD_SIGNATURE)["DocId"] == f"{A}_{'0' * 32}"
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
    _refused(vxp.a.send_edoc(_edoc(stack, 7004, sender=C)), VxpCode.FROM_NOT_ALLOWED)  # the edXML's From is C
    _refused(vxp.a.call("getEdoc", [("filePath", "x")], body=b"{}"), VxpCode.MISSING_PARAMETER)
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


def test_the_store_lists_only_keys_after_start_after(stack: Stack) -> None:
    """The object store's list(prefix, start_after=K) gives the keys after K in byte order (mailboxes are tailed so)."""
    s = stack.settings
    store = S3ObjectStore.connect(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_bucket)
    keys = [f"vxp-test/log/2026060{n}T000000000000Z_x" for n in range(1, 6)]
    for key in reversed(keys):
        store.put(key, b"")
    assert list(store.list("vxp-test/log/", start_after=keys[2])) == keys[3:]
    assert list(store.list("vxp-test/log/")) == keys


def test_the_facade_logs_in_as_its_own_principal_with_a_kept_password(stack: Stack) -> None:
    """Up generates lienthong-vxp's password once, keeps it in DATA/secrets.yaml and gives it to the facade."""
    kept = yaml.safe_load((stack.settings.data_dir / "secrets.yaml").read_text(encoding="utf-8"))
    assert kept["vxp_kafka_password"] == stack.settings.vxp_kafka_password != ""
    assert facade_connection(stack.settings).username == VXP_USER


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


# --- the hub's own trouble, in process (no broker needed: these calls fail before reaching it) --------------------


class _BrokenStore(MemoryObjectStore):
    """An object store that is down (every write fails as the S3 adapter reports it)."""

    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:  # noqa: ARG002
        """Fail like an unreachable S3."""
        raise StoreUnavailable(f"object store unreachable for {key!r}")


async def _call_in_process(tmp_path: Path, store: MemoryObjectStore, body: bytes, **settings: Any) -> tuple[int, bytes]:
    (tmp_path / "vxp-secrets.yaml").write_text(yaml.safe_dump({A: "secret-a"}), encoding="utf-8")
    app = VxpFacade(HubSettings(data_dir=tmp_path, **settings), store).application()
    app.cleanup_ctx.clear()  # no Kafka producer: a send that gets as far as the broker fails on its own
    parameters = [("from", A), ("servicetype", "eDoc"), ("messagetype", "edoc"), ("hash-file", hash_file(body))]
    headers = sign_request(A, "secret-a", parameters, content_type="application/octet-stream")
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/vxp/sendEdoc", data=body + b"\r\n", headers=headers)
        return response.status, await response.read()


def _unsigned_edoc() -> bytes:
    return build_document(example_edoc(sender=A, recipients=(B,), number=1, notation="LT-VXP"))


def test_a_body_over_the_limit_is_too_large(tmp_path: Path) -> None:
    """A sendEdoc body over max_document_bytes is refused with TOO_LARGE (and a DocId), as JSON with HTTP 200."""
    status, body = asyncio.run(_call_in_process(tmp_path, MemoryObjectStore(), b"x" * 5000, max_document_bytes=1000))
    reply = json.loads(body)
    assert (status, reply["status"], reply["ErrorCode"]) == (200, "FAIL", VxpCode.TOO_LARGE.value)
    assert DOC_ID_PATTERN.match(reply["DocId"])


def test_the_hubs_own_failures_are_unavailable_or_internal_never_a_traceback(tmp_path: Path) -> None:
    """A store that is down answers UNAVAILABLE (retry later); a failure of the hub's own code answers INTERNAL."""
    # Above claim_check_bytes the document goes to the store before the broker: the store's failure shows.
    status, body = asyncio.run(_call_in_process(tmp_path, _BrokenStore(), _unsigned_edoc(), claim_check_bytes=100))
    reply = json.loads(body)
    assert (status, reply["ErrorCode"]) == (200, VxpCode.UNAVAILABLE.value)
    status, body = asyncio.run(_call_in_process(tmp_path, MemoryObjectStore(), _unsigned_edoc()))
    reply = json.loads(body)
    assert (status, reply["ErrorCode"]) == (200, VxpCode.INTERNAL.value)  # no broker client at all: the hub's fault
    assert b"Traceback" not in body
    assert "NoneType" not in reply["ErrorDesc"]


def test_a_list_gives_at_most_the_limit_oldest_first() -> None:
    """GetReceivedEdocList answers at most DEFAULT_LIST_LIMIT (500) items, oldest first; the rest come once done."""
    ticks = iter(datetime(2026, 6, 1, tzinfo=UTC) + timedelta(seconds=n) for n in range(100))
    mailbox = Mailbox(MemoryObjectStore(), clock=lambda: next(ticks))
    ids = [mailbox.ingest(B, "edoc", A.encode(), f"document {n}".encode()) for n in range(3)]
    assert [i.doc_id for i in mailbox.pending(B, "edoc", limit=2)] == ids[:2]
    mailbox.update_status(B, ids[0], "done", "")
    assert [i.doc_id for i in mailbox.pending(B, "edoc", limit=2)] == ids[1:]
    assert DEFAULT_LIST_LIMIT == 500


def test_the_facade_settings_default_to_port_8080_and_a_one_day_window() -> None:
    """Unless set, the facade listens on 8080 and accepts timestamps up to a day old or ahead (settings, env)."""
    assert (HubSettings().vxp_port, HubSettings().vxp_timestamp_window_seconds) == (8080, 86400)
    overridden = HubSettings.load(env={"LIENTHONG_VXP_TIMESTAMP_WINDOW_SECONDS": "3600"})
    assert overridden.vxp_timestamp_window_seconds == 3600


def test_two_facade_processes_share_one_mailbox_state(stack: Stack) -> None:
    """Two mailboxes over the same store (two facade processes): one files, the other lists; a done in either holds."""
    settings = stack.settings
    store = S3ObjectStore.connect(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key, settings.s3_bucket
    )
    first, second = Mailbox(store), Mailbox(store)
    recipient = "000.77.00.H41"  # a mailbox of its own: nothing else in the module touches it
    doc_ids = [first.ingest(recipient, "edoc", A.encode(), f"shared document {n}".encode()) for n in range(2)]

    def listed(mailbox: Mailbox) -> list[str]:
        return [i.doc_id for i in mailbox.pending(recipient, "edoc")]

    assert _eventually(lambda: listed(second) == doc_ids)
    second.update_status(recipient, doc_ids[0], "done", "")
    assert _eventually(lambda: listed(first) == doc_ids[1:])
    assert first.read(recipient, doc_ids[1]) == b"shared document 1"


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_document_just_filed_is_read_back_without_a_get() -> None:
    """The process that filed an item serves its bytes from memory; another process reads them from the store."""
    store = MemoryObjectStore()
    gets: list[str] = []
    original_get = store.get

    def counting_get(key: str) -> bytes:
        gets.append(key)
        return original_get(key)

    store.get = counting_get  # type: ignore[method-assign]
    filer = Mailbox(store)
    doc_id = filer.ingest(B, "edoc", A.encode(), b"<edXML>filed</edXML>")
    assert filer.read(B, doc_id) == b"<edXML>filed</edXML>"
    assert gets == []
    assert Mailbox(store).read(B, doc_id) == b"<edXML>filed</edXML>"
    assert len(gets) == 1
