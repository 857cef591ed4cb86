"""The VXP facade's state in the object store: each agency's mailbox and what it sent, shared by every facade.

Everything is create-only (the archive bucket has object lock: nothing is ever overwritten or deleted), so a state
change is a new object, and each prefix is an append-only log whose keys start with the UTC time of the write
(``<time>`` below, ``yyyymmddThhmmssffffffZ``):

- ``vxp/mailbox/<organ>/<kind>/items/<time>_<docId>``: one record of ``lienthong.inbox.<organ>`` (kind ``edoc``)
  or ``lienthong.status.<organ>`` (kind ``status``), its value byte for byte (a claim check stays a claim check and
  is resolved when read); statuses carry what they answer in metadata.
- ``vxp/mailbox/<organ>/<kind>/state/<time>_<docId>_<status>``: one ``updateStatus`` (``done``, ``fail``,
  ``processing``); its content is the description. An item with a ``done`` is never listed again, whatever
  arrives later (a record read again after a crash adds an item with the same docId, which changes nothing).
- ``vxp/sent/<organ>/<kind>/<time>_<DocId>``: what an agency sent through the facade (JSON), for getSentEdocList.

A mailbox docId is ``<from>_<first 32 hex of the record's SHA-256>_<recipient>``: the same record read again gives
the same docId (stable across restarts), two recipients of one document get two docIds. Each facade process tails
the logs (``start_after`` a minute before the newest key it saw, for writers whose clocks differ a little), so a call
costs what changed since the previous one; the logs are the state, so several facades share it and a restart
rebuilds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
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
    "sent_doc_id_of",
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
#: Bytes of recently filed items a process keeps, so that a DMS fetching what was just filed costs no GET (items are
#: written once and never change, so a copy cannot go stale).
_RECENT_BYTES: Final = 32 * 1024 * 1024
_CLAIM_CHECK_MAX: Final = 4096  # bytes: a claim check is a small JSON object; anything larger is a document


class MailboxError(HubError):
    """A mailbox item that cannot be read back (a claim check whose object is gone or altered)."""


def _safe(text: str) -> str:
    """``text`` reduced to what a docId (a file name) may hold; ``_`` separates a docId's parts."""
    return _SAFE.sub("-", text)[:60] or "unknown"


def sent_doc_id(sender: str, body: bytes) -> str:
    """The ``DocId`` sendEdoc answers: ``<from>_<first 32 hex of the body's SHA-256>`` (the same body, the same id)."""
    return sent_doc_id_of(sender, hashlib.sha256(body).hexdigest())


def sent_doc_id_of(sender: str, body_sha256: str) -> str:
    """``sent_doc_id`` of a body known by its SHA-256 (hex): one streamed, never held whole."""
    return f"{_safe(sender)}_{body_sha256[:32]}"


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
    status: str = "new"  # new | processing | fail (done items are not listed)
    status_desc: str = ""
    updated: datetime | None = None
    about: str = ""  # statuses: the DocumentId they answer
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


def describe_sent(sender: str, kind: str, doc_id: str, message: Edoc | StatusMessage, at: datetime) -> SentRecord:
    """The record of a sendEdoc of ``message`` (parsed from the body by the facade)."""
    if isinstance(message, Edoc):
        recipients = tuple(o.organ_id for o in message.recipients)
        notation = f"{message.code.code_number}/{message.code.code_notation}"
        return SentRecord(doc_id, kind, sender, recipients, message.document_id, notation, message.subject, at)
    about = message.response_for
    return SentRecord(doc_id, kind, sender, (about.organ_id,), about.document_id, about.code, message.status_code, at)


_STAMP: Final = "%Y%m%dT%H%M%S%fZ"  # fixed width: keys sort by time
_STAMP_LEN: Final = 22
#: How far back each listing looks again: another facade's write stamped by its clock may land behind our cursor.
_RELIST: Final = timedelta(seconds=60)
#: How stale a view may be before a call lists the store again (this process's own writes show at once).
_REFRESH_EVERY: Final = 0.5


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_STAMP)


def _unstamp(text: str) -> datetime:
    return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)


@dataclass
class _Log:
    """One append-only prefix, tailed: what was listed so far, and where the next listing starts."""

    prefix: str
    cursor: str = ""
    seen: set[str] = field(default_factory=set)

    def tail(self, store: ObjectStore) -> list[str]:
        """The keys written since the last call (each once), oldest first."""
        fresh = [k for k in store.list(self.prefix, start_after=self.cursor) if k not in self.seen]
        if fresh:
            self.seen.update(fresh)
            newest = _unstamp(max(fresh)[len(self.prefix) :][:_STAMP_LEN])
            self.cursor = self.prefix + _stamp(newest - _RELIST)
            self.seen = {k for k in self.seen if k > self.cursor}  # keys behind the cursor are never listed again
        return fresh


@dataclass
class _View:
    """One mailbox as this process knows it: items by docId and their latest updateStatus."""

    items: _Log
    states: _Log
    keys: dict[str, str] = field(default_factory=dict)  # docId → its item's key (the first written)
    latest: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # docId → (time, status, key)
    done: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refreshed: float = -1e9  # time.monotonic() of the last listing


class Mailbox:
    """Mailboxes and sent records of the agencies a facade serves, in one object store (thread-safe).

    Each prefix is an append-only log whose keys start with the time they were written; a process tails them
    (``start_after`` a minute before the newest key it saw), so a call costs what changed since the last one, not
    the mailbox's whole history.
    """

    def __init__(self, store: ObjectStore, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._clock = clock
        self._views: dict[tuple[str, str], _View] = {}
        self._sent_logs: dict[tuple[str, str], tuple[_Log, list[SentRecord]]] = {}
        self._metadata: dict[str, MailboxItem] = {}  # status item key → what its metadata says (immutable)
        self._descriptions: dict[str, str] = {}  # fail state key → its description (immutable)
        self._recent: OrderedDict[str, bytes] = OrderedDict()  # item key → its inline document, newest last
        self._recent_bytes = 0
        self._lock = threading.Lock()

    # --- writing ---------------------------------------------------------------------------------------------

    def ingest(self, recipient: str, kind: str, key: bytes | None, value: bytes) -> str:
        """File one record of ``recipient``'s inbox (``edoc``) or status topic (``status``); its docId.

        A record filed again (read again after a crash) gets a second item object with the same docId, which
        every reader takes as the first one: nothing reappears, nothing marked done comes back.
        """
        claim = value.startswith(CLAIM_CHECK_MAGIC)
        sha = hashlib.sha256(value).hexdigest()
        if claim:  # the document's own SHA-256, which the claim check names: one document, one docId either way
            with contextlib.suppress(HubError):
                sha = ClaimCheck.from_bytes(value).sha256
        sender = (key or b"").decode("utf-8", "replace")
        metadata: dict[str, str] = {"claim": "1" if claim else "0"}
        if kind == "status" and not claim:
            try:
                message = parse(value).message
            except HubError:  # the hub relays only what it parsed; keep anything else as it came
                message = None
            if isinstance(message, StatusMessage):
                sender = message.sender.organ_id
                metadata |= {
                    "about": message.response_for.document_id,
                    "code": message.status_code,
                    "status-time": message.timestamp.isoformat(),
                    "desc": message.description[:_DESC_LIMIT],
                }
        doc_id = mailbox_doc_id(sender, sha, recipient)
        item_key = f"{self._prefix(recipient, kind)}items/{_stamp(self._clock())}_{doc_id}"
        with contextlib.suppress(ObjectExists):
            self._store.put(item_key, value, metadata=metadata)
        if not claim:
            self._remember(item_key, value)
        view = self._view(recipient, kind)
        with view.lock:  # this process sees its own write at once
            view.items.seen.add(item_key)
            view.keys.setdefault(doc_id, item_key)
        return doc_id

    def update_status(self, recipient: str, doc_id: str, status: str, description: str) -> str:
        """Record ``status`` (done, fail, processing) of ``recipient``'s ``doc_id``; its kind (``KeyError``: none)."""
        kind, _ = self._find(recipient, doc_id)
        key = f"{self._prefix(recipient, kind)}state/{_stamp(self._clock())}_{doc_id}_{status}"
        with contextlib.suppress(ObjectExists):  # the same microsecond twice: one record is enough
            self._store.put(key, description.encode("utf-8"))
        view = self._view(recipient, kind)
        with view.lock:  # this process sees its own change at once
            view.states.seen.add(key)
            self._apply_state(view, key)
        return kind

    def record_sent(self, record: SentRecord) -> None:
        """Keep what ``record.sender`` sent."""
        key = f"{_ROOT}sent/{record.sender}/{record.kind}/{_stamp(record.sent)}_{record.doc_id}"
        with contextlib.suppress(ObjectExists):
            self._store.put(key, record.to_json())

    # --- reading ---------------------------------------------------------------------------------------------

    def read(self, recipient: str, doc_id: str) -> bytes:
        """The bytes of ``doc_id`` in ``recipient``'s mailbox (a claim check resolved); ``KeyError`` if none."""
        _, key = self._find(recipient, doc_id)
        with self._lock:
            recent = self._recent.get(key)
        if recent is not None:
            return recent
        value = self._store.get(key)
        if not value.startswith(CLAIM_CHECK_MAGIC) or self._store.stat(key).metadata.get("claim") != "1":
            return value
        check = ClaimCheck.from_bytes(value)
        try:
            data = self._store.get(check.key)
        except ObjectNotFound as exc:
            raise MailboxError(f"{doc_id}: the claimed object {check.key} is gone") from exc
        if hashlib.sha256(data).hexdigest() != check.sha256:
            raise MailboxError(f"{doc_id}: the claimed object {check.key} does not match its SHA-256")
        return data

    def claim_of(self, recipient: str, doc_id: str) -> ClaimCheck | None:
        """The claim check ``doc_id``'s item is, when it is one (its object is then streamed); ``KeyError``: none."""
        _, key = self._find(recipient, doc_id)
        info = self._store.stat(key)
        if info.metadata.get("claim") != "1" or info.size > _CLAIM_CHECK_MAX:
            return None
        return ClaimCheck.from_bytes(self._store.get(key))

    def _remember(self, item_key: str, value: bytes) -> None:
        """Keep ``value`` as the bytes of ``item_key``, forgetting the oldest beyond ``_RECENT_BYTES``."""
        if len(value) > _RECENT_BYTES // 8:
            return
        with self._lock:
            if item_key in self._recent:
                return
            self._recent[item_key] = value
            self._recent_bytes += len(value)
            while self._recent_bytes > _RECENT_BYTES:
                _, dropped = self._recent.popitem(last=False)
                self._recent_bytes -= len(dropped)

    def pending(self, recipient: str, kind: str, *, limit: int = DEFAULT_LIST_LIMIT) -> list[MailboxItem]:
        """Items of one mailbox not marked done, oldest first, at most ``limit``."""
        view = self._refresh(recipient, kind)
        with view.lock:
            listed = [(doc_id, key, view.latest.get(doc_id)) for doc_id, key in view.keys.items()]
            done = set(view.done)
        items = []
        for doc_id, key, state in listed:
            if doc_id in done:
                continue
            item = self._from_key(key, recipient, kind)
            if state is not None:
                stamp, status, state_key = state
                description = self._description(state_key) if status == "fail" else ""
                item = replace(item, status=status, status_desc=description, updated=_unstamp(stamp))
            items.append(item)
        items.sort(key=lambda i: (i.received, i.doc_id))
        return items[:limit]

    def count(self, recipient: str, kind: str) -> int:
        """How many items of one mailbox are not marked done."""
        return len(self.pending(recipient, kind, limit=1 << 62))

    def statuses(self, recipient: str) -> list[MailboxItem]:
        """Every status ``recipient`` received (done or not), with what each answers: for getSentEdocList."""
        view = self._refresh(recipient, "status")
        with view.lock:
            keys = list(view.keys.values())
        found = []
        for key in keys:
            with self._lock:
                item = self._metadata.get(key)
            if item is None:
                meta = self._store.stat(key).metadata
                item = replace(
                    self._from_key(key, recipient, "status"),
                    about=meta.get("about", ""),
                    code=meta.get("code", ""),
                    status_time=meta.get("status-time", ""),
                    status_desc=meta.get("desc", ""),
                )
                with self._lock:
                    self._metadata[key] = item
            found.append(item)
        return found

    def sent(self, sender: str, kind: str) -> list[SentRecord]:
        """What ``sender`` sent through the facade, oldest first."""
        with self._lock:
            log, records = self._sent_logs.setdefault((sender, kind), (_Log(f"{_ROOT}sent/{sender}/{kind}/"), []))
        fresh = log.tail(self._store)
        known = {r.doc_id for r in records}
        for key in fresh:
            record = SentRecord.from_json(self._store.get(key))
            if record.doc_id not in known:
                known.add(record.doc_id)
                records.append(record)
        return sorted(records, key=lambda r: (r.sent, r.doc_id))

    # --- the views -------------------------------------------------------------------------------------------

    @staticmethod
    def _prefix(recipient: str, kind: str) -> str:
        return f"{_ROOT}mailbox/{recipient}/{kind}/"

    def _view(self, recipient: str, kind: str) -> _View:
        with self._lock:
            view = self._views.get((recipient, kind))
            if view is None:
                prefix = self._prefix(recipient, kind)
                view = self._views[(recipient, kind)] = _View(_Log(f"{prefix}items/"), _Log(f"{prefix}state/"))
            return view

    def _refresh(self, recipient: str, kind: str, *, force: bool = False) -> _View:
        """The view, with what other processes wrote (listed at most every ``_REFRESH_EVERY`` s unless forced)."""
        view = self._view(recipient, kind)
        with view.lock:
            if not force and time.monotonic() - view.refreshed < _REFRESH_EVERY:
                return view
            view.refreshed = time.monotonic()
            for key in view.items.tail(self._store):
                doc_id = key[len(view.items.prefix) + _STAMP_LEN + 1 :]
                view.keys.setdefault(doc_id, key)
            for key in view.states.tail(self._store):
                self._apply_state(view, key)
        return view

    @staticmethod
    def _apply_state(view: _View, key: str) -> None:
        stamp, rest = key[len(view.states.prefix) :].split("_", 1)
        doc_id, status = rest.rsplit("_", 1)
        if status == "done":
            view.done.add(doc_id)
        if doc_id not in view.latest or view.latest[doc_id][0] < stamp:
            view.latest[doc_id] = (stamp, status, key)

    def _find(self, recipient: str, doc_id: str) -> tuple[str, str]:
        """(kind, item key) of ``doc_id`` in ``recipient``'s mailboxes; ``KeyError`` if neither holds it."""
        for refresh in (False, True):
            for kind in KINDS:
                view = self._refresh(recipient, kind, force=refresh)
                with view.lock:
                    key = view.keys.get(doc_id)
                if key is not None:
                    return kind, key
        raise KeyError(doc_id)

    def _from_key(self, key: str, recipient: str, kind: str) -> MailboxItem:
        """What an item's key says: when it arrived, and who sent it (the docId's first part)."""
        name = key.rsplit("/", 1)[1]
        stamp, doc_id = name[:_STAMP_LEN], name[_STAMP_LEN + 1 :]
        return MailboxItem(doc_id, kind, doc_id.split("_", 1)[0], recipient, _unstamp(stamp), key)

    def _description(self, state_key: str) -> str:
        with self._lock:
            text = self._descriptions.get(state_key)
        if text is None:
            text = self._store.get(state_key).decode("utf-8", "replace")
            with self._lock:
                self._descriptions[state_key] = text
        return text


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
