"""The national-axis connector: the hub's VXP client at the national axis (README, "National axis").

Outbound: every record of ``lienthong.axis.outbound`` (group ``axis.connector``) is sent with sendEdoc, as the
document's sender (``from``), to the one recipient the record names (its key), as ``edoc`` or ``status``. Never
twice: before the request, a create-only marker ``axis/sends/<sha256>-<recipient>.json`` goes to the object store;
after the axis's reply, a second create-only object ``….sent.json`` records the axis DocId. A marker without its
``.sent.json`` is a send in doubt (the connector died between request and record): the axis is asked first
(getSentEdocList) and the document is sent only if the axis does not list it. After each accepted send, a ledger
event with the axis DocId and, for a document, the hub's 01 "forwarded to the national axis" to the sender's status
topic are produced; then the offset is committed. While the axis is unreachable or answers UNAVAILABLE, the send is
retried with capped exponential backoff (logged once per outage).

Inbound: every ``axis_poll_seconds``, getReceivedEdocList (``edoc``, then ``status``), getEdoc each, produce the
bytes to ``lienthong.axis.inbound`` (acks=all, waited for), then updateStatus ``done``. Bytes that are not edXML at all
are marked ``fail`` with the reason. A crash between produce and ``done`` fetches the document again; the hub's
dedup delivers it once.

Metrics (``lienthong_axis_*``) are written to ``PROMETHEUS_MULTIPROC_DIR`` as the workers' are: ``lienthong up``'s
``/metrics`` serves them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from adapters.kafka import KafkaConnection
from adapters.vxp import VxpClient, VxpClientError, VxpCode, parse_timestamp
from hub.access import AXIS_USER
from hub.ledger_mac import ledger_key, ledger_output
from hub.process import transport_status
from hub.records import (
    AXIS_INBOUND,
    AXIS_OUTBOUND,
    CLAIM_CHECK_MAGIC,
    H_DOC_ID,
    PRODUCER_BATCH_BYTES,
    PRODUCER_LINGER_MS,
    ClaimCheck,
    OutboundRecord,
    status_topic,
)
from hub.settings import HubSettings
from hub.trust import ConfigError
from schemas import parse
from schemas._checks import VIETNAM_TZ
from schemas.errors import DocumentRejected, HubError, InvalidDocument, Problem
from schemas.model import Edoc, StatusMessage
from signer.keys import SigningKey
from storage.ledger import EventKind, LedgerEvent, create_seal_identity
from storage.objectstore import ObjectExists, ObjectNotFound, ObjectStore

__all__ = [
    "CONSUMER_GROUP",
    "CRASH_HOOK_ENV",
    "AxisConnector",
    "AxisMetrics",
    "axis_kafka_connection",
    "forwarded_note",
    "refused_note",
    "run_connector",
]

log = logging.getLogger("lienthong.axis")

#: The connector's consumer group (the ``lienthong-axis`` principal may use ``axis.*``).
CONSUMER_GROUP: Final = "axis.connector"
#: The key in ``DATA/secrets.yaml`` of the ``lienthong-axis`` Kafka password (``lienthong up`` sets it each start).
#: Test-only hook: a file path; when that file exists and names a point (``after-send`` or ``after-produce``), the
#: connector deletes it and kills itself (SIGKILL) right at that point, so that a test can crash it exactly between
#: a send and its record, or between a produce and its ``done``. Unset in production: no effect.
CRASH_HOOK_ENV: Final = "LIENTHONG_TEST_AXIS_CRASH_FILE"

_SENDS_PREFIX = "axis/sends/"
_CLAIMS_PREFIX = "axis/inbound/"
_RETRY_FIRST = 0.5  # seconds before the first retry of an axis, broker or store failure
_RETRY_MAX = 10.0  # the longest wait between retries
_BATCH = 200  # outbound records per poll: statuses and ledger events of a batch share one flush and one commit
_SENT_SKEW = timedelta(minutes=2)  # the axis's clock and ours: how far before a marker an in-doubt send may be dated
_NOT_EDXML = frozenset({"EMPTY", "MALFORMED", "WRONG_NAMESPACE", "DTD_FORBIDDEN", "ENTITY_FORBIDDEN", "TOO_LARGE"})


def forwarded_note(recipient: str, axis_doc_id: str) -> str:
    """The text of the hub's 01 once the axis has accepted a document."""
    return (
        f"Hub lienthong đã chuyển lên Trục liên thông văn bản quốc gia tới: {recipient} (mã trên trục: {axis_doc_id})"
    )


def refused_note(recipient: str, code: str, description: str) -> str:
    """The text of the hub's 02 when the axis refuses a document (its code and words)."""
    return f"Trục liên thông văn bản quốc gia từ chối gửi tới {recipient} (mã lỗi {code}): {description}"


class AxisUnavailable(HubError):
    """The axis is unreachable, refused our credentials, or cannot serve now: retried, never the sender's fault."""


class AxisRefused(HubError):
    """The axis refused this request's content (an ``ErrorCode`` 2xxx): retrying the same bytes cannot help."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"FAIL {code}: {description}")
        self.code = code
        self.description = description


@dataclass(frozen=True)
class AxisMetrics:
    """The axis link's metrics (``lienthong_axis_*``)."""

    queued: Gauge
    sent: Counter
    received: Counter
    errors: Counter
    last_success: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> AxisMetrics:
        """Register the metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry()
        return cls(
            queued=Gauge(
                "lienthong_axis_queued",
                "Records on lienthong.axis.outbound not yet sent to the national axis",
                registry=registry,
                multiprocess_mode="livemax",
            ),
            sent=Counter(
                "lienthong_axis_sent_total",
                "Sent to the national axis (sendEdoc), by type",
                ["type"],
                registry=registry,
            ),
            received=Counter(
                "lienthong_axis_received_total",
                "Taken from the national axis, by type and outcome (accepted: produced, fail: not edXML)",
                ["type", "outcome"],
                registry=registry,
            ),
            errors=Counter(
                "lienthong_axis_errors_total",
                "Failed calls to the axis, the broker or the store (each retried), by operation",
                ["operation"],
                registry=registry,
            ),
            last_success=Gauge(
                "lienthong_axis_last_success_timestamp_seconds",
                "When the national axis last answered a call successfully (Unix time)",
                registry=registry,
                multiprocess_mode="max",
            ),
        )


def axis_kafka_connection(settings: HubSettings) -> KafkaConnection:
    """How the connector reaches Kafka: as ``lienthong-axis`` (the hub's own principal without SASL)."""
    return settings.principal(AXIS_USER, settings.axis_kafka_password)


def _crash_point(point: str) -> None:
    """The test-only hook of ``CRASH_HOOK_ENV`` (see there); nothing at all when the variable is unset."""
    hook = os.environ.get(CRASH_HOOK_ENV)
    if not hook:
        return
    path = Path(hook)
    try:
        wanted = path.read_text(encoding="utf-8").strip()
    except OSError:
        return
    if wanted == point:
        path.unlink(missing_ok=True)
        log.warning("test hook %s: killing the connector %s", CRASH_HOOK_ENV, point)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class _Outbound:
    """One record of ``lienthong.axis.outbound``, resolved: the bytes and what sendEdoc needs."""

    data: bytes
    sha256: str
    recipient: str
    sender: str
    messagetype: str
    notation: str  # the document's number/notation, for matching getSentEdocList after a crash
    message: Edoc | StatusMessage


class AxisConnector:
    """The outbound and inbound loops of one connector process (one at a time per hub: one outbound partition)."""

    def __init__(
        self,
        settings: HubSettings,
        *,
        kafka: KafkaConnection,
        store: ObjectStore,
        client: VxpClient,
        seal: SigningKey,
        metrics: AxisMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._kafka = kafka
        self._store = store
        self._client = client
        self._seal = seal
        self._metrics = metrics
        self._clock = clock
        self._ledger_key = ledger_key(settings)
        self._stop = threading.Event()
        self._down_since: float | None = None  # set while the axis is unreachable: one log line per outage
        self._consumer: Any = None
        self._producer: Any = None

    def stop(self) -> None:
        """Ask the loops to stop after the current call."""
        self._stop.set()

    # --- the main loop ---------------------------------------------------------------------------------------

    def run(self) -> None:
        """Send what is queued and poll the axis every ``axis_poll_seconds``, until ``stop``."""
        from kafka import KafkaConsumer, KafkaProducer  # noqa: PLC0415 - kafka-python only in the process

        self._consumer = KafkaConsumer(
            AXIS_OUTBOUND,
            group_id=CONSUMER_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=24 * 3600 * 1000,  # a send may wait out a long axis outage between polls
            session_timeout_ms=6000,  # a killed connector's partition is handed to its restart within seconds
            heartbeat_interval_ms=1000,
            **self._kafka.options(),
        )
        self._producer = KafkaProducer(
            acks="all",
            linger_ms=PRODUCER_LINGER_MS,
            batch_size=PRODUCER_BATCH_BYTES,
            max_request_size=2 * 1024 * 1024,
            **self._kafka.options(),
        )
        next_poll = 0.0
        try:
            while not self._stop.is_set():
                self._send_batch()
                if time.monotonic() >= next_poll:
                    self._retry("poll the axis", self._poll_axis)
                    next_poll = time.monotonic() + self._settings.axis_poll_seconds
        finally:
            self._consumer.close()
            self._producer.close()

    def _retry(self, what: str, attempt: Callable[[], object]) -> None:
        """Run ``attempt`` until it succeeds (or the connector stops): our own and the axis's failures wait."""
        delay = _RETRY_FIRST
        while not self._stop.is_set():
            try:
                attempt()
            except (AxisUnavailable, VxpClientError, HubError, OSError) as exc:
                self._metrics.errors.labels(what).inc()
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("%s failed (%s); retrying with backoff until it works", what, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            if self._down_since is not None:
                log.warning("%s works again after %.0f s", what, time.monotonic() - self._down_since)
                self._down_since = None
            return

    # --- outbound --------------------------------------------------------------------------------------------

    def _send_batch(self) -> None:
        batches = self._consumer.poll(timeout_ms=500, max_records=_BATCH)
        records = [m for messages in batches.values() for m in messages]
        self._note_queued()
        if not records:
            return
        pending = []
        for message in records:
            if self._stop.is_set():
                return  # uncommitted: the next start takes them again (their markers say what was sent)
            outputs: list[OutboundRecord] = []
            self._retry("send to the axis", functools.partial(_collect, outputs, self._forward, message))
            pending += [
                self._producer.send(o.topic, key=o.key, value=o.value, headers=list(o.headers)) for o in outputs
            ]
        if self._stop.is_set():
            return
        self._retry("produce statuses and ledger events", lambda: self._wait_all(pending))
        self._consumer.commit()
        self._note_queued()

    def _wait_all(self, pending: list[Any]) -> None:
        self._producer.flush()
        for future in pending:
            try:
                future.get(timeout=30)
            except Exception as exc:  # kafka-python raises its own tree; ours to retry
                raise HubError(f"the broker did not accept an axis status or ledger event: {exc}") from exc

    def _note_queued(self) -> None:
        """``lienthong_axis_queued``: records on the outbound topic after the committed offset."""
        consumer = self._consumer
        try:
            assigned = consumer.assignment()
            ends = consumer.end_offsets(list(assigned)) if assigned else {}
            queued = sum(max(0, end - (consumer.committed(tp) or 0)) for tp, end in ends.items())
        except Exception:  # noqa: BLE001 - a metric must not stop the sends
            return
        self._metrics.queued.set(queued)

    def _resolve(self, message: Any) -> _Outbound:
        value: bytes = message.value or b""
        if value.startswith(CLAIM_CHECK_MAGIC):
            check = ClaimCheck.from_bytes(value)
            value = self._store.get(check.key)
            if hashlib.sha256(value).hexdigest() != check.sha256:
                raise DocumentRejected("BAD_CLAIM_CHECK", [Problem("", f"{check.key} does not have the named SHA-256")])
        parsed = parse(value, max_bytes=self._settings.max_document_bytes).message  # the hub verified it
        if isinstance(parsed, StatusMessage):
            notation, messagetype = parsed.response_for.code, "status"
        else:
            notation, messagetype = f"{parsed.code.code_number}/{parsed.code.code_notation}", "edoc"
        return _Outbound(
            value,
            hashlib.sha256(value).hexdigest(),
            (message.key or b"").decode(),
            parsed.sender.organ_id,
            messagetype,
            notation,
            parsed,
        )

    def _forward(self, message: Any) -> list[OutboundRecord]:
        """Send one outbound record unless it was sent already; the ledger and status records to produce."""
        try:
            item = self._resolve(message)
        except (DocumentRejected, ObjectNotFound) as exc:  # the hub checked it: only a lost claim check gets here
            log.error("axis.outbound %d: cannot be sent, skipped: %s", message.offset, exc)  # noqa: TRY400 - known
            self._metrics.errors.labels("unsendable").inc()
            return []
        marker = f"{_SENDS_PREFIX}{item.sha256}-{item.recipient}.json"
        record_key = marker.removesuffix(".json") + ".sent.json"
        started = self._clock()
        try:
            body = {"sha256": item.sha256, "to": item.recipient, "from": item.sender, "started_at": started.isoformat()}
            self._store.put(marker, json.dumps(body).encode())
        except ObjectExists:
            axis_doc_id = self._already_sent(item, marker, record_key)
            if axis_doc_id is not None:
                return self._after_send(item, axis_doc_id)
        try:
            axis_doc_id = self._send(item)
        except AxisRefused as refused:
            return self._refused(item, refused)
        _crash_point("after-send")
        recorded = {"axis_doc_id": axis_doc_id, "sent_at": self._clock().isoformat()}
        with contextlib.suppress(ObjectExists):  # recorded by an earlier attempt of this very send
            self._store.put(record_key, json.dumps(recorded).encode())
        return self._after_send(item, axis_doc_id)

    def _already_sent(self, item: _Outbound, marker: str, record_key: str) -> str | None:
        """The axis DocId of a send that happened before (recorded, or found at the axis), or None to send now."""
        try:
            return str(json.loads(self._store.get(record_key))["axis_doc_id"])
        except ObjectNotFound:
            pass
        started = datetime.fromisoformat(json.loads(self._store.get(marker))["started_at"])
        found = self._find_at_axis(item, since=started - _SENT_SKEW)
        log.warning(
            "send of %s to %s was in doubt (a crash after the request): %s",
            item.sha256[:12],
            item.recipient,
            f"the axis has it as {found}" if found else "the axis does not list it, sending",
        )
        if found is not None:
            self._store.put(record_key, json.dumps({"axis_doc_id": found, "found_at_axis": True}).encode())
        return found

    def _find_at_axis(self, item: _Outbound, *, since: datetime) -> str | None:
        """The axis DocId of ``item`` in getSentEdocList (same from, to, type and notation, sent after ``since``)."""
        reply = self._call(lambda: self._client.sent(item.messagetype))
        for entry in reply.get("data") or []:
            if not isinstance(entry, dict):
                continue
            same = (
                entry.get("fromCode") == item.sender
                and entry.get("toCode") == item.recipient
                and str(entry.get("messageType", item.messagetype)).lower() == item.messagetype
                and entry.get("notation") == item.notation
            )
            sent_at = _sent_time(entry.get("sentTime"))
            if same and (sent_at is None or sent_at >= since):
                return str(entry.get("senderDocId") or entry.get("receiverDocId") or entry.get("docId") or "?")
        return None

    def _send(self, item: _Outbound) -> str:
        # ``to`` names the one recipient of this record: the axis must not also deliver to the document's other
        # recipients (local ones would come back here; other axis ones have records of their own).
        reply = self._call(
            lambda: self._client.send_edoc(
                item.data, sender=item.sender, messagetype=item.messagetype, to=[item.recipient]
            )
        )
        doc_id = str(reply.get("DocId") or "")
        self._metrics.sent.labels(item.messagetype).inc()
        return doc_id

    def _call(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """One axis call; an unreachable axis or a FAIL UNAVAILABLE/INTERNAL is ``AxisUnavailable`` (retried)."""
        try:
            reply = call()
        except VxpClientError as exc:
            raise AxisUnavailable(str(exc)) from exc
        if reply.get("status") != "OK":
            code, desc = str(reply.get("ErrorCode", "")), str(reply.get("ErrorDesc", ""))
            if code.startswith("2"):  # the request's content (VxpCode 2xxx): the document, not the link
                raise AxisRefused(code, desc)
            # Credentials or a lost docId are ours to fix, unavailability the axis's: retried, loudly if not the axis.
            if code not in {VxpCode.UNAVAILABLE.value, VxpCode.INTERNAL.value}:
                log.error("the axis refused a call (%s): %s", code, desc)
            raise AxisUnavailable(f"FAIL {code}: {desc}")
        self._metrics.last_success.set(time.time())
        return reply

    def _after_send(self, item: _Outbound, axis_doc_id: str) -> list[OutboundRecord]:
        """The ledger event of an accepted send and, for a document, the 01 "forwarded" to its sender."""
        now = self._clock()
        document_id = _document_id(item.message)
        event = LedgerEvent(
            kind=EventKind.DELIVERED if item.messagetype == "edoc" else EventKind.STATUS_RELAYED,
            sha256=item.sha256,
            document_id=document_id,
            actor="axis-connector",
            time=now,
            verdict="sent-to-axis",
            detail={"recipient": item.recipient, "axis_doc_id": axis_doc_id},
        )
        outputs = [ledger_output(self._ledger_key, [event])]
        if isinstance(item.message, Edoc) and item.sender != self._settings.hub_organ_id:
            status = transport_status(
                self._seal,
                self._settings.hub_organ_id,
                item.message,
                "01",
                forwarded_note(item.recipient, axis_doc_id),
                now,
            )
            headers = ((H_DOC_ID, item.message.document_id.encode()),)
            outputs.append(OutboundRecord(status_topic(item.sender), item.sender.encode(), status, headers))
        return outputs

    def _refused(self, item: _Outbound, refused: AxisRefused) -> list[OutboundRecord]:
        """The axis will not take this document: a ledger event and, for a document, a 02 to its sender."""
        log.error("the axis refused %s to %s: %s", item.sha256[:12], item.recipient, refused)
        self._metrics.errors.labels("refused by the axis").inc()
        now = self._clock()
        event = LedgerEvent(
            kind=EventKind.REJECTED,
            sha256=item.sha256,
            document_id=_document_id(item.message),
            actor="axis-connector",
            time=now,
            verdict="refused-by-axis",
            detail={"recipient": item.recipient, "error": str(refused)[:500]},
        )
        outputs = [ledger_output(self._ledger_key, [event])]
        if isinstance(item.message, Edoc):
            note = refused_note(item.recipient, refused.code, refused.description)
            status = transport_status(self._seal, self._settings.hub_organ_id, item.message, "02", note, now)
            headers = ((H_DOC_ID, item.message.document_id.encode()),)
            outputs.append(OutboundRecord(status_topic(item.sender), item.sender.encode(), status, headers))
        return outputs

    # --- inbound ---------------------------------------------------------------------------------------------

    def _poll_axis(self) -> None:
        for messagetype in ("edoc", "status"):
            reply = self._call(functools.partial(self._client.received, messagetype))
            for entry in reply.get("data") or []:
                if self._stop.is_set():
                    return
                doc_id = str(entry.get("docId", "")) if isinstance(entry, dict) else ""
                if doc_id:
                    self._take(doc_id, messagetype)

    def _take(self, doc_id: str, messagetype: str) -> None:
        """Take one document: getEdoc, produce it (waited for), updateStatus ``done``; not edXML at all: ``fail``."""
        reply = self._call(lambda: self._client.get_edoc(doc_id))
        try:
            data = base64.b64decode(str(reply.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        reason = _not_edxml(data, self._settings.max_document_bytes)
        if reason is not None:
            log.warning("axis document %s is not edXML, marked fail: %s", doc_id, reason)
            self._call(lambda: self._client.update_status(doc_id, "fail", description=_header_text(reason)))
            self._metrics.received.labels(messagetype, "fail").inc()
            return
        value = data
        if len(data) > self._settings.claim_check_bytes:
            value = ClaimCheck.deposit(self._store, data, prefix=_CLAIMS_PREFIX).to_bytes()
        future = self._producer.send(
            AXIS_INBOUND, key=doc_id.encode(), value=value, headers=[("axis-doc-id", doc_id.encode())]
        )
        self._producer.flush()
        try:
            future.get(timeout=30)
        except Exception as exc:  # kafka-python's own tree; retried by the caller, the axis keeps the document
            raise HubError(f"the broker did not accept axis document {doc_id}: {exc}") from exc
        _crash_point("after-produce")
        self._call(lambda: self._client.update_status(doc_id, "done"))
        self._metrics.received.labels(messagetype, "accepted").inc()


def _collect(into: list[OutboundRecord], forward: Callable[[Any], list[OutboundRecord]], message: Any) -> None:
    into.extend(forward(message))


def _document_id(message: Edoc | StatusMessage) -> str:
    """What the ledger files an event under: a status under the document it is about."""
    return message.response_for.document_id if isinstance(message, StatusMessage) else message.document_id


def _not_edxml(data: bytes, max_bytes: int) -> str | None:
    """Why ``data`` is not an edXML message at all (None: it is one, for the hub to check like any other)."""
    try:
        parse(data, max_bytes=max_bytes)
    except InvalidDocument as exc:
        if exc.reason in _NOT_EDXML:
            return str(exc)[:500]
    return None


def _header_text(text: str) -> str:
    """``text`` as one HTTP header value: ASCII, one line, a few hundred characters."""
    return " ".join(text.encode("ascii", "replace").decode().split())[:300]


def _sent_time(value: object) -> datetime | None:
    """A getSentEdocList ``sentTime``: ISO 8601 (as the simulator writes it) or the VXP header form; else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            return parse_timestamp(value)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=VIETNAM_TZ)


def run_connector(settings: HubSettings) -> int:
    """Build the connector from the settings and run it until SIGTERM/SIGINT; the process exit code."""
    if not settings.axis_url:
        raise ConfigError("axis_url is not set: the connector has no national axis to talk to")
    if not settings.axis_system_id or not settings.axis_secret:
        raise ConfigError("axis_system_id and axis_secret (the hub's credentials at the axis) must be set")
    client = VxpClient(settings.axis_url, settings.axis_system_id, settings.axis_secret)
    connector = AxisConnector(
        settings,
        kafka=axis_kafka_connection(settings),
        store=settings.open_store(max_connections=4),  # one send or fetch at a time, and the ledger's
        client=client,
        seal=create_seal_identity(settings.data_dir),
        metrics=AxisMetrics.create(),
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: connector.stop())
    log.warning("axis connector: %s as %s", settings.axis_url, settings.axis_system_id)
    try:
        connector.run()
    finally:
        client.close()
    return 0
