"""The VXP facade's state in the object store: each agency's mailbox and what it sent, shared by every facade.

Everything is create-only (the archive bucket has object lock: nothing is ever overwritten or deleted), so a state
change is a new object and the state is what the objects say:

- ``vxp/mailbox/<organ>/<kind>/items/<docId>``: one record of ``lienthong.inbox.<organ>`` (kind ``edoc``) or
  ``lienthong.status.<organ>`` (kind ``status``), its value byte for byte (a claim check stays a claim check and is
  resolved when read); metadata: ``from``, ``received`` and, for statuses, what they answer.
- ``vxp/mailbox/<organ>/<kind>/state/<docId>/<time>-<status>``: one ``updateStatus`` (``done``, ``fail``,
  ``processing``); its content is the description. An item with a ``done`` is never listed again, whatever arrives
  later (a record read again after a crash finds its item there and changes nothing).
- ``vxp/sent/<organ>/<kind>/<DocId>``: what an agency sent through the facade (JSON), for ``getSentEdocList``.

A mailbox docId is ``<from>_<first 32 hex of the record's SHA-256>_<recipient>``: the same record read again gives
the same docId (stable across restarts), two recipients of one document get two docIds. Immutable things (items,
sent records) are cached per process; the lists (``items/``, ``state/``) are read from the store on every call, so
that several facades share one state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from hub.records import CLAIM_CHECK_MAGIC, ClaimCheck
from schemas import parse
from schemas._checks import VIETNAM_TZ
from schemas.errors import HubError
from schemas.model import Edoc, StatusMessage
from storage.objectstore import ObjectExists, ObjectNotFound, ObjectStore

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "KINDS",
    "MAILBOX_STATUSES",
    "Mailbox",
    "MailboxError",
    "MailboxItem",
    "SentRecord",
    "describe_sent",
    "format_created",
    "item_fields",
    "mailbox_doc_id",
    "parse_list_date",
    "sent_doc_id",
    "sent_rows",
]

KINDS: Final = ("edoc", "status")
#: What updateStatus accepts; ``new`` is an item nobody marked yet.
MAILBOX_STATUSES: Final = ("done", "fail", "processing")
#: Items per getReceivedEdocList, oldest first: a DMS marks them done and asks again for the next ones.
DEFAULT_LIST_LIMIT: Final = 500
_ROOT: Final = "vxp/"
_SAFE: Final = re.compile(r"[^A-Za-z0-9.-]")
_DESC_LIMIT: Final = 500  # characters of a status description kept in metadata


class MailboxError(HubError):
    """A mailbox item that cannot be read back (a claim check whose object is gone or altered)."""


def _safe(text: str) -> str:
    """``text`` reduced to what a docId (a file name) may hold; ``_`` separates a docId's parts."""
    return _SAFE.sub("-", text)[:60] or "unknown"


def sent_doc_id(sender: str, body: bytes) -> str:
    """The ``DocId`` sendEdoc answers: ``<from>_<first 32 hex of the body's SHA-256>`` (the same body, the same id)."""
    return f"{_safe(sender)}_{hashlib.sha256(body).hexdigest()[:32]}"


def mailbox_doc_id(sender: str, value_sha256: str, recipient: str) -> str:
    """A mailbox docId: unique per (record, recipient), the same whenever that record is read again."""
    return f"{_safe(sender)}_{value_sha256[:32]}_{_safe(recipient)}"


def format_created(at: datetime) -> str:
    """``created_time`` as lists show it: ISO 8601 in Vietnam time to the second, e.g. 2026-12-01T10:18:28+07:00."""
    return at.astimezone(VIETNAM_TZ).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class MailboxItem:
    """One received document or status, with its latest updateStatus."""

    doc_id: str
    kind: str  # edoc | status
    sender: str
    recipient: str
    received: datetime
    key: str
    claim: bool
    status: str = "new"  # new | processing | fail (done items are not listed)
    status_desc: str = ""
    updated: datetime | None = None
    about: str = ""  # statuses: the DocumentId they answer
    about_organ: str = ""  # statuses: that document's sender
    code: str = ""  # statuses: the status code (01..16)
    status_time: str = ""  # statuses: their own timestamp (ISO)


@dataclass(frozen=True)
class SentRecord:
    """One sendEdoc through the facade: enough for getSentEdocList."""

    doc_id: str
    kind: str
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    notation: str
    title: str
    sent: datetime

    def to_json(self) -> bytes:
        """The stored form."""
        body = {
            "docId": self.doc_id,
            "kind": self.kind,
            "from": self.sender,
            "to": list(self.recipients),
            "documentId": self.document_id,
            "notation": self.notation,
            "title": self.title,
            "sent": self.sent.isoformat(),
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SentRecord:
        """Read the stored form back."""
        body = json.loads(data)
        return cls(
            str(body["docId"]),
            str(body["kind"]),
            str(body["from"]),
            tuple(str(t) for t in body["to"]),
            str(body["documentId"]),
            str(body["notation"]),
            str(body["title"]),
            datetime.fromisoformat(body["sent"]),
        )


def describe_sent(sender: str, kind: str, doc_id: str, data: bytes, at: datetime) -> SentRecord:
    """The record of a sendEdoc of ``data`` (an edXML the facade parsed already; it parses again, cheaply)."""
    message = parse(data).message
    if isinstance(message, Edoc):
        recipients = tuple(o.organ_id for o in message.recipients)
        notation = f"{message.code.code_number}/{message.code.code_notation}"
        return SentRecord(doc_id, kind, sender, recipients, message.document_id, notation, message.subject, at)
    about = message.response_for
    return SentRecord(doc_id, kind, sender, (about.organ_id,), about.document_id, about.code, message.status_code, at)


class Mailbox:
    """Mailboxes and sent records of the agencies a facade serves, in one object store (thread-safe)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._items: dict[str, MailboxItem] = {}  # key → item as stored (immutable)
        self._sent: dict[str, SentRecord] = {}
        self._lock = threading.Lock()

    # --- writing ---------------------------------------------------------------------------------------------

    def ingest(self, recipient: str, kind: str, key: bytes | None, value: bytes, *, at: datetime) -> str:
        """File one record of ``recipient``'s inbox (``edoc``) or status topic (``status``); its docId.

        Create-only: a record filed already (read again after a crash) changes nothing, not even a ``done``.
        """
        sha = hashlib.sha256(value).hexdigest()
        claim = value.startswith(CLAIM_CHECK_MAGIC)
        sender = (key or b"").decode("utf-8", "replace")
        metadata: dict[str, str] = {}
        if not claim:
            try:
                message = parse(value).message
            except HubError:  # the hub delivers only what it parsed; keep anything else as it came
                message = None
            if message is not None:
                sender = message.sender.organ_id
            if isinstance(message, StatusMessage):
                metadata |= {
                    "about": message.response_for.document_id,
                    "about-organ": message.response_for.organ_id,
                    "code": message.status_code,
                    "status-time": message.timestamp.isoformat(),
                    "desc": message.description[:_DESC_LIMIT],
                }
        doc_id = mailbox_doc_id(sender, sha, recipient)
        metadata |= {"from": sender, "received": at.astimezone(UTC).isoformat(), "claim": "1" if claim else "0"}
        with contextlib.suppress(ObjectExists):
            self._store.put(self._item_key(recipient, kind, doc_id), value, metadata=metadata)
        return doc_id

    def update_status(self, recipient: str, doc_id: str, status: str, description: str, *, at: datetime) -> str:
        """Record ``status`` (done, fail, processing) of ``recipient``'s ``doc_id``; its kind (``KeyError``: none)."""
        kind = self.kind_of(recipient, doc_id)
        if kind is None:
            raise KeyError(doc_id)
        stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = f"{self._prefix(recipient, kind)}state/{doc_id}/{stamp}-{status}"
        with contextlib.suppress(ObjectExists):  # the same microsecond twice: one record is enough
            self._store.put(key, description.encode("utf-8"))
        return kind

    def record_sent(self, record: SentRecord) -> None:
        """Keep what ``record.sender`` sent (create-only: the same DocId again changes nothing)."""
        with contextlib.suppress(ObjectExists):
            self._store.put(self._sent_key(record.sender, record.kind, record.doc_id), record.to_json())

    # --- reading ---------------------------------------------------------------------------------------------

    def kind_of(self, recipient: str, doc_id: str) -> str | None:
        """Which mailbox of ``recipient`` holds ``doc_id`` (None: neither; another agency's is never looked at)."""
        for kind in KINDS:
            key = self._item_key(recipient, kind, doc_id)
            if key in self._items or self._store.exists(key):
                return kind
        return None

    def read(self, recipient: str, doc_id: str) -> bytes:
        """The bytes of ``doc_id`` in ``recipient``'s mailbox (a claim check resolved); ``KeyError`` if none."""
        kind = self.kind_of(recipient, doc_id)
        if kind is None:
            raise KeyError(doc_id)
        item = self._item(self._item_key(recipient, kind, doc_id))
        value = self._store.get(item.key)
        if not item.claim:
            return value
        check = ClaimCheck.from_bytes(value)
        try:
            data = self._store.get(check.key)
        except ObjectNotFound as exc:
            raise MailboxError(f"{doc_id}: the claimed object {check.key} is gone") from exc
        if hashlib.sha256(data).hexdigest() != check.sha256:
            raise MailboxError(f"{doc_id}: the claimed object {check.key} does not match its SHA-256")
        return data

    def pending(self, recipient: str, kind: str, *, limit: int = DEFAULT_LIST_LIMIT) -> list[MailboxItem]:
        """Items of one mailbox not marked done, oldest first, at most ``limit``."""
        prefix = self._prefix(recipient, kind)
        states = self._states(prefix)
        items = []
        for key in self._store.list(f"{prefix}items/"):
            doc_id = key.rsplit("/", 1)[1]
            marks = states.get(doc_id, [])
            if any(status == "done" for _, status, _ in marks):
                continue
            item = self._item(key)
            if marks:
                stamp, status, state_key = max(marks)
                when = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
                description = self._store.get(state_key).decode("utf-8", "replace") if status == "fail" else ""
                item = _with_state(item, status, description, when)
            items.append(item)
        items.sort(key=lambda i: (i.received, i.doc_id))
        return items[:limit]

    def count(self, recipient: str, kind: str) -> int:
        """How many items of one mailbox are not marked done."""
        return len(self.pending(recipient, kind, limit=1 << 62))

    def statuses(self, recipient: str) -> list[MailboxItem]:
        """Every status ``recipient`` received (done or not): what answers the documents it sent."""
        return [self._item(key) for key in self._store.list(f"{self._prefix(recipient, 'status')}items/")]

    def sent(self, sender: str, kind: str) -> list[SentRecord]:
        """What ``sender`` sent through the facade, oldest first."""
        records = []
        for key in self._store.list(f"{_ROOT}sent/{sender}/{kind}/"):
            with self._lock:
                record = self._sent.get(key)
            if record is None:
                record = SentRecord.from_json(self._store.get(key))
                with self._lock:
                    self._sent[key] = record
            records.append(record)
        records.sort(key=lambda r: (r.sent, r.doc_id))
        return records

    # --- keys and the cache ----------------------------------------------------------------------------------

    @staticmethod
    def _prefix(recipient: str, kind: str) -> str:
        return f"{_ROOT}mailbox/{recipient}/{kind}/"

    def _item_key(self, recipient: str, kind: str, doc_id: str) -> str:
        return f"{self._prefix(recipient, kind)}items/{doc_id}"

    @staticmethod
    def _sent_key(sender: str, kind: str, doc_id: str) -> str:
        return f"{_ROOT}sent/{sender}/{kind}/{doc_id}"

    def _states(self, prefix: str) -> dict[str, list[tuple[str, str, str]]]:
        """The (time, status, key) of every updateStatus of one mailbox, by docId."""
        states: dict[str, list[tuple[str, str, str]]] = {}
        for key in self._store.list(f"{prefix}state/"):
            parts = key[len(prefix) :].split("/")
            if len(parts) == 3 and "-" in parts[2]:  # noqa: PLR2004 - state/<docId>/<time>-<status>
                stamp, status = parts[2].split("-", 1)
                states.setdefault(parts[1], []).append((stamp, status, key))
        return states

    def _item(self, key: str) -> MailboxItem:
        with self._lock:
            item = self._items.get(key)
        if item is not None:
            return item
        info = self._store.stat(key)
        meta = info.metadata
        parts = key.split("/")  # vxp/mailbox/<organ>/<kind>/items/<docId>
        item = MailboxItem(
            doc_id=parts[-1],
            kind=parts[-3],
            sender=meta.get("from", ""),
            recipient=parts[-4],
            received=datetime.fromisoformat(meta.get("received", "1970-01-01T00:00:00+00:00")),
            key=key,
            claim=meta.get("claim") == "1",
            about=meta.get("about", ""),
            about_organ=meta.get("about-organ", ""),
            code=meta.get("code", ""),
            status_time=meta.get("status-time", ""),
            status_desc=meta.get("desc", ""),
        )
        with self._lock:
            self._items[key] = item
        return item


def _with_state(item: MailboxItem, status: str, description: str, when: datetime) -> MailboxItem:
    return replace(item, status=status, status_desc=description or item.status_desc, updated=when)


def item_fields(item: MailboxItem) -> dict[str, Any]:
    """A getReceivedEdocList entry (VXP.md's fields; ``to`` a string)."""
    return {
        "docId": item.doc_id,
        "serviceType": "eDoc",
        "messageType": item.kind,
        "created_time": format_created(item.received),
        "updated_time": format_created(item.updated or item.received),
        "from": item.sender,
        "to": item.recipient,
        "status": item.status,
        "status_desc": item.status_desc,
    }


def sent_rows(
    records: Iterable[SentRecord], statuses: Iterable[MailboxItem], *, hub_organ_id: str
) -> list[dict[str, Any]]:
    """The getSentEdocList rows: one per (sent record, recipient), with that recipient's latest status.

    ``statuses`` are those the sender received: a recipient's own answer names the recipient in ``from``; the
    hub's transport status (01 forwarded, 02 refused) is the row's ``sendStatus``.
    """
    latest: dict[tuple[str, str], MailboxItem] = {}
    for item in statuses:
        if not item.about:
            continue
        slot = (item.about, item.sender)
        if slot not in latest or (item.status_time, item.doc_id) > (latest[slot].status_time, latest[slot].doc_id):
            latest[slot] = item
    rows = []
    for record in records:
        hub = latest.get((record.document_id, hub_organ_id))
        for recipient in record.recipients:
            answer = latest.get((record.document_id, recipient))
            rows.append(
                {
                    "serviceType": "eDoc",
                    "receiverDocId": mailbox_doc_id(record.sender, record.doc_id.rsplit("_", 1)[-1], recipient),
                    "toCode": recipient,
                    "receiveStatus": answer.code if answer else "",
                    "receiveStatusDesc": answer.status_desc if answer else "",
                    "receivedTime": answer.status_time if answer else "",
                    "title": record.title,
                    "messageType": record.kind,
                    "notation": record.notation,
                    "sentTime": format_created(record.sent),
                    "sendStatus": hub.code if hub else "sent",
                    "sendStatusDesc": hub.status_desc if hub else "",
                    "senderDocId": record.doc_id,
                    "fromCode": record.sender,
                }
            )
    return rows


def parse_list_date(text: str, *, end: bool) -> datetime:
    """fromDate/toDate: ``yyyy-MM-dd`` (a whole day), ISO 8601, or the VXP timestamp; Vietnam time if no zone."""
    from adapters.vxp import parse_timestamp  # noqa: PLC0415 - avoid a cycle at import

    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = datetime.fromisoformat(text).replace(tzinfo=VIETNAM_TZ)
        return day.replace(hour=23, minute=59, second=59, microsecond=999999) if end else day
    if re.fullmatch(r"\d{2}/\d{2}/\d{4}", text):
        day = datetime.strptime(text, "%d/%m/%Y").replace(tzinfo=VIETNAM_TZ)
        return day.replace(hour=23, minute=59, second=59, microsecond=999999) if end else day
    try:
        return parse_timestamp(text)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=VIETNAM_TZ)
