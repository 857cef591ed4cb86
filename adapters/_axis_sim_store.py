"""The axis simulator's state on disk: mailboxes, sends, pending auto-replies and directory changes.

Layout under the simulator's data folder (every file written whole: a temporary file, then a rename)::

    mailbox/<system>/<edoc|status>/<docId>.xml    the bytes as sent (without the CRLF)
    mailbox/<system>/<edoc|status>/<docId>.json   the item's metadata (its presence makes the item exist)
    sent/<system>/<docId>.json                    one accepted sendEdoc and each recipient's state
    auto_reply/<docId>.{xml,json}                 a document an auto-replying agency has yet to answer
    directory.json                                agencies registered or deleted through the API

Everything is also kept in memory (loaded at start), so lists and counts never scan the disk. The store is used
from the server's one event loop only, so it needs no lock: each call runs to its end before the next begins.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas._checks import VIETNAM_TZ

__all__ = [
    "KINDS",
    "MailboxItem",
    "PendingReply",
    "Recipient",
    "SentRecord",
    "SimStore",
    "new_doc_id",
    "now_text",
]

#: The two mailboxes of a system, by VXP messagetype.
KINDS = ("edoc", "status")


def new_doc_id() -> str:
    """A fresh docId: never derived from the content, like the real axis (``AX-`` + 32 hex digits)."""
    return f"AX-{uuid.uuid4().hex}"


def now_text(at: datetime) -> str:
    """How the simulator writes times: ISO 8601 in Vietnam time with milliseconds (``created_time`` etc.)."""
    return at.astimezone(VIETNAM_TZ).isoformat(timespec="milliseconds")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a restart) sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    _write_atomically(path, json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8"))


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None for a file that is not one (left over by a crash mid-write)."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class MailboxItem:
    """One document or status waiting in one system's mailbox."""

    doc_id: str
    system: str
    kind: str  # "edoc" or "status"
    from_code: str
    to_codes: tuple[str, ...]
    created: str
    updated: str
    status: str = "new"  # new, processing, fail, done (done leaves the list)
    status_desc: str = "Chua nhan"
    sender_system: str = ""  # "" for a status the simulator wrote itself (auto-reply)
    sender_doc_id: str = ""

    def listed(self) -> dict[str, Any]:
        """The getReceivedEdocList item (``to`` a string, as SDK clients require)."""
        return {
            "docId": self.doc_id,
            "serviceType": "eDoc",
            "messageType": self.kind,
            "created_time": self.created,
            "updated_time": self.updated,
            "from": self.from_code,
            "to": ",".join(self.to_codes),
            "status": self.status,
            "status_desc": self.status_desc,
        }


@dataclass(frozen=True)
class Recipient:
    """One recipient agency of a send and how far its copy got."""

    to_code: str
    system: str  # "" when only the simulator's auto-reply answers for it
    receiver_doc_id: str
    receive_status: str = "new"
    receive_status_desc: str = "Chua nhan"
    received_time: str = ""


@dataclass(frozen=True)
class SentRecord:
    """One accepted sendEdoc."""

    doc_id: str
    system: str
    message_type: str
    from_code: str
    title: str
    notation: str
    sent_time: str
    sha256: str
    recipients: tuple[Recipient, ...] = field(default_factory=tuple)

    def listed(self) -> Iterator[dict[str, Any]]:
        """The getSentEdocList items: one per recipient."""
        for recipient in self.recipients:
            yield {
                "serviceType": "eDoc",
                "receiverDocId": recipient.receiver_doc_id,
                "toCode": recipient.to_code,
                "receiveStatus": recipient.receive_status,
                "title": self.title,
                "messageType": self.message_type,
                "notation": self.notation,
                "receivedTime": recipient.received_time,
                "sentTime": self.sent_time,
                "sendStatus": "sent",
                "sendStatusDesc": "Da gui",
                "senderDocId": self.doc_id,
                "fromCode": self.from_code,
                "receiveStatusDesc": recipient.receive_status_desc,
            }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SentRecord:
        """Read back what ``asdict`` wrote."""
        recipients = tuple(Recipient(**r) for r in value.pop("recipients", ()))
        return cls(**value, recipients=recipients)


@dataclass(frozen=True)
class PendingReply:
    """A document an auto-replying agency still has to answer with statuses 01 and 03."""

    doc_id: str  # the receiver docId of that agency's copy
    organ_id: str
    sender_system: str
    sender_doc_id: str


_STATUS_TEXT = {
    "new": "Chua nhan",
    "processing": "Dang xu ly",
    "fail": "Nhan loi",
    "done": "Da nhan",
}


class SimStore:
    """Mailboxes, sends and pending auto-replies, on disk under ``root`` and in memory."""

    def __init__(self, root: Path, *, clock: Callable[[], datetime]) -> None:
        self.root = root
        self._clock = clock
        self._items: dict[str, dict[str, MailboxItem]] = {}  # system → docId → item (created order)
        self._sent: dict[str, dict[str, SentRecord]] = {}  # system → docId → send
        self._sends: Counter[str] = Counter()
        self._pending: dict[str, PendingReply] = {}
        self.directory_changes: dict[str, dict[str, Any]] = {}
        self._load()

    # --- loading --------------------------------------------------------------------------------------------

    def _load(self) -> None:
        for meta in sorted((self.root / "mailbox").glob("*/*/*.json")):
            value = _read_json(meta)
            if value is not None and meta.with_suffix(".xml").is_file():
                item = MailboxItem(**{**value, "to_codes": tuple(value.get("to_codes", ()))})
                self._items.setdefault(item.system, {})[item.doc_id] = item
        for system, items in self._items.items():
            self._items[system] = dict(sorted(items.items(), key=lambda pair: pair[1].created))
        for path in sorted((self.root / "sent").glob("*/*.json")):
            value = _read_json(path)
            if value is not None:
                record = SentRecord.from_json(value)
                self._sent.setdefault(record.system, {})[record.doc_id] = record
                self._sends[record.sha256] += 1
        for path in sorted((self.root / "auto_reply").glob("*.json")):
            value = _read_json(path)
            if value is not None and path.with_suffix(".xml").is_file():
                pending = PendingReply(**value)
                self._pending[pending.doc_id] = pending
        self.directory_changes = _read_json(self.root / "directory.json") or {}

    # --- paths ----------------------------------------------------------------------------------------------

    def _item_path(self, system: str, kind: str, doc_id: str, suffix: str) -> Path:
        return self.root / "mailbox" / system / kind / f"{doc_id}{suffix}"

    def _sent_path(self, system: str, doc_id: str) -> Path:
        return self.root / "sent" / system / f"{doc_id}.json"

    # --- sending --------------------------------------------------------------------------------------------

    def deliver(
        self, system: str, kind: str, data: bytes, *, from_code: str, to_codes: tuple[str, ...], sender: SentRecord
    ) -> MailboxItem:
        """Put ``data`` into ``system``'s ``kind`` mailbox as a new item with its own docId."""
        stamp = now_text(self._clock())
        item = MailboxItem(
            doc_id=new_doc_id(),
            system=system,
            kind=kind,
            from_code=from_code,
            to_codes=to_codes,
            created=stamp,
            updated=stamp,
            sender_system=sender.system,
            sender_doc_id=sender.doc_id,
        )
        # The bytes first, then the metadata: an item exists once its metadata does.
        _write_atomically(self._item_path(system, kind, item.doc_id, ".xml"), data)
        _write_json(self._item_path(system, kind, item.doc_id, ".json"), {**asdict(item), "to_codes": list(to_codes)})
        self._items.setdefault(system, {})[item.doc_id] = item
        return item

    def record_send(self, record: SentRecord) -> None:
        """Keep an accepted send (after its copies are delivered: the record is what makes the send count)."""
        if record.system:
            _write_json(self._sent_path(record.system, record.doc_id), asdict(record))
            self._sent.setdefault(record.system, {})[record.doc_id] = record
            self._sends[record.sha256] += 1

    def sends(self) -> dict[str, int]:
        """How many times each body (by its SHA-256 hex) was accepted."""
        return dict(self._sends)

    def sent(self, system: str, message_type: str, doc_id: str = "") -> list[SentRecord]:
        """What ``system`` sent of ``message_type`` (one send when ``doc_id`` names it)."""
        records = self._sent.get(system, {})
        chosen = [records[doc_id]] if doc_id in records else [] if doc_id else list(records.values())
        return [r for r in chosen if r.message_type == message_type]

    def _update_recipient(self, item: MailboxItem | PendingReply, status: str, at: str) -> None:
        """Show a recipient's progress in its sender's getSentEdocList."""
        record = self._sent.get(item.sender_system, {}).get(item.sender_doc_id)
        if record is None:
            return
        recipients = tuple(
            replace(
                r,
                receive_status=status,
                receive_status_desc=_STATUS_TEXT[status],
                received_time=at if status == "done" else r.received_time,
            )
            if r.receiver_doc_id == item.doc_id
            else r
            for r in record.recipients
        )
        record = replace(record, recipients=recipients)
        _write_json(self._sent_path(record.system, record.doc_id), asdict(record))
        self._sent[record.system][record.doc_id] = record

    # --- receiving ------------------------------------------------------------------------------------------

    def pending(self, system: str, kind: str) -> list[MailboxItem]:
        """The items of ``system``'s ``kind`` mailbox not yet marked done, oldest first."""
        return [i for i in self._items.get(system, {}).values() if i.kind == kind and i.status != "done"]

    def find(self, system: str, doc_id: str) -> MailboxItem | None:
        """An item of ``system``'s own mailboxes (done or not), or None."""
        return self._items.get(system, {}).get(doc_id)

    def read(self, item: MailboxItem) -> bytes:
        """An item's bytes as they were sent."""
        return self._item_path(item.system, item.kind, item.doc_id, ".xml").read_bytes()

    def update(self, item: MailboxItem, status: str) -> MailboxItem:
        """Mark ``item`` done, fail or processing (done leaves the list; the bytes stay for getEdoc)."""
        stamp = now_text(self._clock())
        item = replace(item, status=status, status_desc=_STATUS_TEXT[status], updated=stamp)
        meta = {**asdict(item), "to_codes": list(item.to_codes)}
        _write_json(self._item_path(item.system, item.kind, item.doc_id, ".json"), meta)
        self._items[item.system][item.doc_id] = item
        self._update_recipient(item, status, stamp)
        return item

    def counts(self) -> dict[str, dict[str, int]]:
        """Items not yet done, by system and mailbox."""
        return {system: {kind: len(self.pending(system, kind)) for kind in KINDS} for system in sorted(self._items)}

    # --- auto-replies ---------------------------------------------------------------------------------------

    def add_pending_reply(self, pending: PendingReply, data: bytes) -> None:
        """Remember that ``pending.organ_id`` has to answer ``data`` (survives a restart until answered)."""
        _write_atomically(self.root / "auto_reply" / f"{pending.doc_id}.xml", data)
        _write_json(self.root / "auto_reply" / f"{pending.doc_id}.json", asdict(pending))
        self._pending[pending.doc_id] = pending

    def pending_replies(self) -> list[PendingReply]:
        """Every auto-reply still to be made."""
        return list(self._pending.values())

    def pending_reply_data(self, pending: PendingReply) -> bytes:
        """The document an auto-reply answers."""
        return (self.root / "auto_reply" / f"{pending.doc_id}.xml").read_bytes()

    def reply_progress(self, pending: PendingReply, status: str) -> None:
        """Show an auto-replying recipient's progress to the sender."""
        self._update_recipient(pending, status, now_text(self._clock()))

    def finish_reply(self, pending: PendingReply) -> None:
        """Forget an answered auto-reply."""
        self._pending.pop(pending.doc_id, None)
        for suffix in (".json", ".xml"):
            (self.root / "auto_reply" / f"{pending.doc_id}{suffix}").unlink(missing_ok=True)

    # --- directory ------------------------------------------------------------------------------------------

    def change_directory(self, code: str, entry: dict[str, Any]) -> None:
        """Keep an agency registered (or marked deleted) through the API."""
        self.directory_changes[code] = entry
        _write_json(self.root / "directory.json", self.directory_changes)
