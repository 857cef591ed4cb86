"""``lienthong axis-sim``: a stand-alone national axis speaking VXP (``../shared/VXP.md``), for tests and the demo.

Registered systems (systemId + secret, the agencies each may send for and receives for) come from a YAML file::

    systems:
      - {system_id: HUB, secret: "...", agencies: [000.00.00.H41, 000.01.00.H41], admin: true}
    auto_reply:            # agencies the simulator itself answers for, with statuses 01 then 03, signed
      - {organ_id: 000.00.00.G22, key: g22/key.pem, cert: g22/cert.pem, chain: g22/chain.pem}
    directory:             # getAgenciesList & co. (default: every agency named above)
      - {code: 000.00.00.G22, name: Văn phòng Chính phủ, pcode: "", mail: vpcp@example.gov.vn}

Paths are relative to the YAML file. Every operation of VXP.md is served at ``/vxp/<operation>`` with
``adapters.vxp`` (same HMAC, envelope and error codes as the facade). Routing, as the real axis does it: an edoc
goes to each system listing one of its recipients (the ``to`` parameter when sent, else ``To/OrganId`` minus the
agencies of the sending system itself, which delivers to its own), a status to the systems listing
``ResponseFor/OrganId``; each (send, recipient system) gets its own fresh docId. State lives under the data folder
(``adapters._axis_sim_store``) and survives a restart.

Test controls on the same port, answered to 127.0.0.1 only: ``POST /_sim/outage?seconds=N`` (every /vxp call is
HTTP 503 with a FAIL UNAVAILABLE envelope for N seconds; 0 ends it), ``POST /_sim/slow?seconds=X`` (each /vxp call
is handled at once but answered X seconds later, so a client that gives up holds an in-doubt send), and
``GET /_sim/stats`` (accepted bodies by SHA-256, items waiting per mailbox).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import yaml
from aiohttp import web
from cryptography import x509

from adapters._axis_sim_store import (
    KINDS,
    MailboxItem,
    PendingReply,
    Recipient,
    SentRecord,
    SimStore,
    new_doc_id,
    now_text,
)
from adapters.vxp import (
    CRLF,
    DEFAULT_TIMESTAMP_WINDOW,
    DOC_ID_PATTERN,
    OPERATIONS,
    Authenticated,
    VxpCode,
    VxpError,
    authenticate,
    encode,
    fail,
    hash_file,
    ok,
)
from schemas import build_status, parse
from schemas._checks import VIETNAM_TZ, organ_id_problem
from schemas._safe import DEFAULT_MAX_BYTES
from schemas.errors import HubError, InvalidDocument
from schemas.model import Edoc, Organization, ResponseFor, StatusMessage
from signer.keys import PemKey, SigningKeyError
from signer.sign import sign_document

__all__ = [
    "DEFAULT_AUTO_REPLY_DELAY",
    "AutoReply",
    "AxisSimulator",
    "DirectoryEntry",
    "SimConfig",
    "SimConfigError",
    "SimSystem",
    "load_config",
    "serve",
]

#: How long an auto-replying agency takes before each status: "a little later", yet quick enough for tests.
DEFAULT_AUTO_REPLY_DELAY: Final = 0.2
#: The SDK sends the edXML followed by CRLF; the document limit is the hub's.
_MAX_BODY: Final = DEFAULT_MAX_BYTES + len(CRLF)
_STATUS_FOR_CODE: Final = {  # HTTP status of downloadEdoc's errors (the SDK writes a 200's body to the file)
    VxpCode.NOT_FOUND: 404,
    VxpCode.FORBIDDEN: 403,
    VxpCode.UNAVAILABLE: 503,
    VxpCode.INTERNAL: 500,
}
_AUTH_CODES: Final = {
    VxpCode.AUTH_MISSING,
    VxpCode.UNKNOWN_SYSTEM,
    VxpCode.BAD_SIGNATURE,
    VxpCode.HEADER_MISMATCH,
    VxpCode.STALE_TIMESTAMP,
}
_REPLY_TEXT: Final = {"01": "Đã nhận văn bản", "03": "Đã tiếp nhận văn bản"}
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1"})


# --- configuration -----------------------------------------------------------------------------------------------


class SimConfigError(HubError):
    """The agencies file is missing or wrong (the message names the field)."""


@dataclass(frozen=True)
class SimSystem:
    """A registered system: who may call, and for which agencies it sends and receives."""

    system_id: str
    secret: str = field(repr=False)
    agencies: frozenset[str]
    admin: bool = False


@dataclass(frozen=True)
class AutoReply:
    """An agency the simulator answers for, with the key it signs statuses with."""

    organ_id: str
    key: PemKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class DirectoryEntry:
    """An agency as getAgenciesList and its siblings show it."""

    code: str
    name: str
    pcode: str = ""
    mail: str = ""


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator is told at start-up."""

    systems: tuple[SimSystem, ...]
    auto_reply: Mapping[str, AutoReply] = field(default_factory=dict)
    directory: tuple[DirectoryEntry, ...] = ()

    @property
    def secrets(self) -> dict[str, str]:
        """Each systemId's secret, for ``adapters.vxp.authenticate``."""
        return {s.system_id: s.secret for s in self.systems}

    def system(self, system_id: str) -> SimSystem:
        """The registered system ``system_id`` (it authenticated, so it exists)."""
        return next(s for s in self.systems if s.system_id == system_id)

    def receivers(self, organ_id: str) -> list[str]:
        """The systems that receive for ``organ_id``."""
        return [s.system_id for s in self.systems if organ_id in s.agencies]


def _field(where: str, entry: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = entry.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise SimConfigError(f"{where}.{name}: a non-empty string is required")
    return str(value).strip()


def _entries(raw: Mapping[str, Any], name: str, *, required: bool = False) -> list[Mapping[str, Any]]:
    value = raw.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise SimConfigError(f"{name}: a non-empty list is required" if required else f"{name}: a list is required")
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise SimConfigError(f"{name}[{index}]: a mapping is required")
    return value


def _organ_id(where: str, value: object) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    problem = organ_id_problem(text) if text else "it is empty or not a string"
    if problem:
        raise SimConfigError(f"{where}: {value!r} is not an OrganId ({problem})")
    return text


def _system(index: int, entry: Mapping[str, Any]) -> SimSystem:
    where = f"systems[{index}]"
    system_id = _field(where, entry, "system_id")
    if not DOC_ID_PATTERN.match(system_id):  # it names a folder of the mailboxes
        raise SimConfigError(f"{where}.system_id: {system_id!r} may hold letters, digits, '.', '_' and '-' only")
    agencies = entry.get("agencies")
    if not isinstance(agencies, list):
        raise SimConfigError(f"{where}.agencies: a list of OrganIds is required")
    admin = entry.get("admin", False)
    if not isinstance(admin, bool):
        raise SimConfigError(f"{where}.admin: true or false")
    return SimSystem(
        system_id=system_id,
        secret=_field(where, entry, "secret"),
        agencies=frozenset(_organ_id(f"{where}.agencies[{i}]", a) for i, a in enumerate(agencies)),
        admin=admin,
    )


def _systems(raw: Mapping[str, Any]) -> tuple[SimSystem, ...]:
    systems = tuple(_system(i, e) for i, e in enumerate(_entries(raw, "systems", required=True)))
    ids = [s.system_id for s in systems]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise SimConfigError(f"systems: system_id {duplicates[0]} is listed twice")
    return systems


def _auto_reply(index: int, entry: Mapping[str, Any], base: Path) -> AutoReply:
    where = f"auto_reply[{index}]"
    organ_id = _organ_id(f"{where}.organ_id", entry.get("organ_id"))
    paths = {name: base / _field(where, entry, name) for name in ("key", "cert")}
    chain_name = _field(where, entry, "chain", required=False)
    try:
        certificates = x509.load_pem_x509_certificates(paths["cert"].read_bytes())
        chain = certificates[1:]
        if chain_name:
            chain += x509.load_pem_x509_certificates((base / chain_name).read_bytes())
        key = PemKey.load(paths["key"].read_bytes(), paths["cert"].read_bytes())
    except (OSError, ValueError, SigningKeyError) as exc:
        raise SimConfigError(f"{where}: cannot load its key, certificate or chain: {exc}") from exc
    return AutoReply(organ_id, key, tuple(c for c in chain if c != key.certificate))


def load_config(path: Path) -> SimConfig:
    """Read and check the agencies file; ``SimConfigError`` names the first thing wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SimConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SimConfigError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SimConfigError(f"{path}: a mapping with 'systems' is required")
    try:
        systems = _systems(raw)
        replies = {
            r.organ_id: r for i, e in enumerate(_entries(raw, "auto_reply")) for r in [_auto_reply(i, e, path.parent)]
        }
        directory = tuple(
            DirectoryEntry(
                code=_organ_id(f"directory[{i}].code", e.get("code")),
                name=_field(f"directory[{i}]", e, "name"),
                pcode=_field(f"directory[{i}]", e, "pcode", required=False),
                mail=_field(f"directory[{i}]", e, "mail", required=False),
            )
            for i, e in enumerate(_entries(raw, "directory"))
        )
    except SimConfigError as exc:
        raise SimConfigError(f"{path}: {exc}") from exc
    if not directory:
        codes = sorted({a for s in systems for a in s.agencies} | set(replies))
        directory = tuple(DirectoryEntry(code, code) for code in codes)
    return SimConfig(systems, replies, directory)


# --- the server --------------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Answer:
    """What a /vxp handler produced: a JSON envelope (HTTP 200) or raw bytes."""

    reply: dict[str, Any] | None = None
    raw: bytes | None = None
    http_status: int = 200


class AxisSimulator:
    """The simulated axis: its configuration, its store, the test controls and the aiohttp application."""

    def __init__(
        self,
        config: SimConfig,
        data: Path,
        *,
        clock: Callable[[], datetime] = _utc_now,
        window: timedelta = DEFAULT_TIMESTAMP_WINDOW,
        auto_reply_delay: float = DEFAULT_AUTO_REPLY_DELAY,
    ) -> None:
        self.config = config
        self.store = SimStore(data, clock=clock)
        self._clock = clock
        self._window = window
        self._reply_delay = auto_reply_delay
        self._outage_until = 0.0  # time.monotonic() until which every call is refused
        self._slow = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._operations: dict[str, Callable[[Authenticated, bytes], _Answer]] = {
            "sendEdoc": self._send_edoc,
            "getReceivedEdocList": self._received,
            "getEdoc": self._get_edoc,
            "downloadEdoc": self._download_edoc,
            "updateStatus": self._update_status,
            "getSentEdocList": self._sent,
            "countReceiveEdoc": lambda caller, _: self._count(caller, "edoc"),
            "countReceiveStatus": lambda caller, _: self._count(caller, "status"),
            "getAgenciesList": self._agencies,
            "getAgenciesListQD20": self._agencies_qd20,
            "getSynchronizeUnit": self._synchronize_unit,
            "registerAgency": self._register_agency,
            "deleteAgency": self._delete_agency,
        }
        assert set(self._operations) == set(OPERATIONS)

    def application(self) -> web.Application:
        """The aiohttp application: /vxp/<operation> and the /_sim controls."""
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/vxp/{operation}", self._vxp)
        app.router.add_post("/_sim/outage", self._control(self._set_outage))
        app.router.add_post("/_sim/slow", self._control(self._set_slow))
        app.router.add_get("/_sim/stats", self._control(self._stats))
        app.router.add_route("*", "/{path:.*}", self._elsewhere)
        return app

    def start_auto_replies(self) -> None:
        """Resume the auto-replies a previous run left unanswered (call on the running loop)."""
        for pending in self.store.pending_replies():
            self._schedule(pending)

    async def close(self) -> None:
        """Cancel the auto-replies under way (they stay on disk and resume at the next start)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- HTTP --------------------------------------------------------------------------------------------------

    async def _vxp(self, request: web.Request) -> web.StreamResponse:
        operation = request.match_info["operation"]
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            error = VxpError(VxpCode.TOO_LARGE, f"the body is over {_MAX_BODY} bytes")
            return self._json(operation, fail(error), 413 if operation == "downloadEdoc" else 200)
        if time.monotonic() < self._outage_until:
            error = VxpError(VxpCode.UNAVAILABLE, "the axis is down for maintenance; try again later")
            return self._json(operation, fail(error), 503)
        answer = self._answer(operation, request, body)
        if self._slow > 0:
            await asyncio.sleep(self._slow)
        if answer.raw is not None:
            return web.Response(body=answer.raw, content_type="application/octet-stream")
        assert answer.reply is not None
        return self._json(operation, answer.reply, answer.http_status)

    async def _elsewhere(self, request: web.Request) -> web.Response:
        """Any other path: a FAIL envelope too, never an HTML page."""
        error = VxpError(VxpCode.UNKNOWN_OPERATION, f"nothing is served at {request.path[:200]}; try /vxp/<operation>")
        return self._json("", fail(error), 404)

    def _json(self, operation: str, reply: dict[str, Any], status: int) -> web.Response:
        if operation == "sendEdoc":
            reply.setdefault("DocId", "")  # always present, even on FAIL
        return web.Response(body=encode(reply), status=status, content_type="application/json")

    def _answer(self, operation: str, request: web.Request, body: bytes) -> _Answer:
        """Run one operation; every failure becomes a FAIL envelope (downloadEdoc: with a non-200 status)."""
        handler = self._operations.get(operation)
        if handler is None:
            unknown = VxpError(VxpCode.UNKNOWN_OPERATION, f"no operation {operation!r}")
            return _Answer(fail(unknown), http_status=404)
        try:
            caller = authenticate(request.headers.items(), self.config.secrets, now=self._clock(), window=self._window)
            return handler(caller, body)
        except VxpError as exc:
            error = exc
        except Exception:  # noqa: BLE001 - nothing crashes the server: log it, answer INTERNAL
            traceback.print_exc(file=sys.stderr)
            error = VxpError(VxpCode.INTERNAL, "the simulator failed on its own; try again later")
        status = 200
        if operation == "downloadEdoc":
            status = 401 if error.code in _AUTH_CODES else _STATUS_FOR_CODE.get(error.code, 400)
        return _Answer(fail(error), http_status=status)

    def _control(
        self, handler: Callable[[web.Request], dict[str, Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            if request.remote not in _LOOPBACK:
                return web.json_response({"error": "test controls answer 127.0.0.1 only"}, status=403)
            try:
                return web.json_response(handler(request))
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)

        return answer

    @staticmethod
    def _seconds(request: web.Request) -> float:
        text = request.query.get("seconds", "")
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"seconds={text!r} is not a number") from None
        if not 0 <= seconds <= 24 * 3600:
            raise ValueError(f"seconds={text} is not between 0 and 86400")
        return seconds

    def _set_outage(self, request: web.Request) -> dict[str, Any]:
        seconds = self._seconds(request)
        self._outage_until = time.monotonic() + seconds if seconds else 0.0
        return {"outage_seconds": seconds}

    def _set_slow(self, request: web.Request) -> dict[str, Any]:
        self._slow = self._seconds(request)
        return {"slow_seconds": self._slow}

    def _stats(self, _request: web.Request) -> dict[str, Any]:
        counts = self.store.counts()
        for system in self.config.systems:
            counts.setdefault(system.system_id, dict.fromkeys(KINDS, 0))
        return {"sends": self.store.sends(), "mailboxes": counts}

    # --- sendEdoc ----------------------------------------------------------------------------------------------

    def _send_edoc(self, caller: Authenticated, body: bytes) -> _Answer:
        system = self.config.system(caller.system_id)
        sender = caller.require("from")
        if sender not in system.agencies:
            raise VxpError(
                VxpCode.FROM_NOT_ALLOWED, f"Don vi gui {sender} khong dung voi ma da dang ky: {caller.system_id}"
            )
        kind = _message_type(caller)
        data = body.removesuffix(CRLF)
        if not data:
            raise VxpError(VxpCode.BAD_BODY, "the body is empty")
        signed_hash = caller.require("hash-file").lower()
        digest = hashlib.sha256(data).hexdigest()
        if signed_hash not in {hash_file(data), digest}:
            raise VxpError(VxpCode.BAD_BODY, "hash-file is not the SHA-256 of the body")
        try:
            message = parse(data).message
        except InvalidDocument as exc:
            raise VxpError(VxpCode.BAD_BODY, f"not an edXML document: {exc}") from exc
        if message.kind != kind:
            raise VxpError(VxpCode.BAD_PARAMETER, f"messagetype is {kind} but the body is an edXML {message.kind}")
        if message.sender.organ_id != sender:
            raise VxpError(
                VxpCode.BAD_PARAMETER, f"from is {sender} but the document's From/OrganId is {message.sender.organ_id}"
            )
        record = self._route(caller, system, message, data, digest)
        return _Answer(ok(DocId=record.doc_id))

    def _recipients(self, caller: Authenticated, system: SimSystem, message: Edoc | StatusMessage) -> list[str]:
        """The agencies a send is for: the ``to`` parameter when sent, else what the document names."""
        named = caller.get("to").strip()
        if named:
            return _to_parameter(named)
        if isinstance(message, StatusMessage):
            return [message.response_for.organ_id]
        # The sending system delivers to its own agencies; the axis carries the rest.
        codes = [r.organ_id for r in message.recipients if r.organ_id not in system.agencies]
        if not codes:
            raise VxpError(VxpCode.BAD_PARAMETER, "To/OrganId names no agency outside the sending system")
        return list(dict.fromkeys(codes))

    def _route(
        self, caller: Authenticated, system: SimSystem, message: Edoc | StatusMessage, data: bytes, digest: str
    ) -> SentRecord:
        codes = self._recipients(caller, system, message)
        for code in codes:
            if not self.config.receivers(code) and code not in self.config.auto_reply:
                raise VxpError(VxpCode.BAD_PARAMETER, f"no system receives for the recipient {code}")
        if isinstance(message, Edoc):
            title = message.subject
            notation = f"{message.code.code_number}/{message.code.code_notation}"
        else:
            title = f"Trạng thái {message.status_code}"
            notation = message.response_for.code
        record = SentRecord(
            doc_id=new_doc_id(),
            system=system.system_id,
            message_type=message.kind,
            from_code=message.sender.organ_id,
            title=title,
            notation=notation,
            sent_time=now_text(self._clock()),
            sha256=digest,
        )
        record = self._deliver_all(record, codes, data)
        self.store.record_send(record)
        return record

    def _deliver_all(self, record: SentRecord, codes: list[str], data: bytes) -> SentRecord:
        """One mailbox item per recipient system; an auto-replying agency without a system gets a pending reply."""
        by_system: dict[str, list[str]] = {}
        for code in codes:
            for system_id in self.config.receivers(code):
                by_system.setdefault(system_id, []).append(code)
        recipients: list[Recipient] = []
        for system_id, to_codes in by_system.items():
            item = self.store.deliver(
                system_id,
                record.message_type,
                data,
                from_code=record.from_code,
                to_codes=tuple(to_codes),
                sender=record,
            )
            recipients += [Recipient(code, system_id, item.doc_id) for code in to_codes]
        for code in codes:
            if code in self.config.auto_reply and record.message_type == "edoc":
                receiver_doc_id = next((r.receiver_doc_id for r in recipients if r.to_code == code), new_doc_id())
                if not any(r.to_code == code for r in recipients):
                    recipients.append(Recipient(code, "", receiver_doc_id))
                pending = PendingReply(receiver_doc_id, code, record.system, record.doc_id)
                self.store.add_pending_reply(pending, data)
                self._schedule(pending)
        return replace(record, recipients=tuple(recipients))

    # --- auto-replies ------------------------------------------------------------------------------------------

    def _schedule(self, pending: PendingReply) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._auto_reply(pending))
        except RuntimeError:  # no loop yet (built outside the server): start_auto_replies() picks it up
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_reply(self, pending: PendingReply) -> None:
        """Answer a document as its recipient would: status 01 (arrived), then 03 (accepted)."""
        try:
            document = parse(self.store.pending_reply_data(pending)).message
        except (OSError, InvalidDocument):
            self.store.finish_reply(pending)
            return
        assert isinstance(document, Edoc)  # only edocs were queued
        for code, progress in (("01", "processing"), ("03", "done")):
            await asyncio.sleep(self._reply_delay)
            data = self._signed_status(pending.organ_id, document, code)
            sender = SentRecord(new_doc_id(), "", "status", pending.organ_id, "", "", now_text(self._clock()), "")
            to_code = document.sender.organ_id
            for system_id in self.config.receivers(to_code):
                self.store.deliver(
                    system_id, "status", data, from_code=pending.organ_id, to_codes=(to_code,), sender=sender
                )
            self.store.reply_progress(pending, progress)
        self.store.finish_reply(pending)

    def _signed_status(self, organ_id: str, document: Edoc, code: str) -> bytes:
        reply = self.config.auto_reply[organ_id]
        names = {e.code: e.name for e in self.config.directory}
        status = StatusMessage(
            sender=Organization(organ_id=organ_id, organ_name=names.get(organ_id, "")),
            response_for=ResponseFor.answering(document),
            status_code=code,
            timestamp=self._clock().astimezone(VIETNAM_TZ),
            description=_REPLY_TEXT[code],
        )
        return sign_document(build_status(status), reply.key, chain=reply.chain)

    # --- receiving ---------------------------------------------------------------------------------------------

    def _received(self, caller: Authenticated, _body: bytes) -> _Answer:
        kind = _message_type(caller)
        items = self.store.pending(caller.system_id, kind)
        since, until = _date(caller, "fromDate"), _date(caller, "toDate")
        listed = [i.listed() for i in items if _within(i.created, since, until)]
        return _Answer(ok(data=listed))

    def _item(self, caller: Authenticated) -> MailboxItem:
        doc_id = caller.require("docId")
        item = self.store.find(caller.system_id, doc_id) if DOC_ID_PATTERN.match(doc_id) else None
        if item is None:
            raise VxpError(VxpCode.NOT_FOUND, f"no document {doc_id} in this system's mailbox")
        return item

    def _get_edoc(self, caller: Authenticated, _body: bytes) -> _Answer:
        data = self.store.read(self._item(caller))
        return _Answer(ok(data=base64.b64encode(data).decode("ascii")))

    def _download_edoc(self, caller: Authenticated, _body: bytes) -> _Answer:
        return _Answer(raw=self.store.read(self._item(caller)))

    def _update_status(self, caller: Authenticated, _body: bytes) -> _Answer:
        status = caller.require("status").lower()
        if status not in {"done", "fail", "processing"}:
            raise VxpError(VxpCode.BAD_PARAMETER, f"status {status!r} is not done, fail or processing")
        self.store.update(self._item(caller), status)
        return _Answer(ok())

    def _count(self, caller: Authenticated, kind: str) -> _Answer:
        return _Answer(ok(count=len(self.store.pending(caller.system_id, kind))))

    def _sent(self, caller: Authenticated, _body: bytes) -> _Answer:
        kind = _message_type(caller)
        records = self.store.sent(caller.system_id, kind, caller.get("docId").strip())
        return _Answer(ok(data=[item for record in records for item in record.listed()]))

    # --- the directory -----------------------------------------------------------------------------------------

    def _directory(self) -> list[dict[str, Any]]:
        """Every agency, configured then registered through the API, each with its ``deleted`` flag."""
        entries = {
            e.code: {"code": e.code, "name": e.name, "pcode": e.pcode, "mail": e.mail} for e in self.config.directory
        }
        for code, change in self.store.directory_changes.items():
            entries[code] = {**entries.get(code, {"code": code, "name": code, "pcode": "", "mail": ""}), **change}
        return [
            {"id": n, "deleted": False, "version": 1, "modifyDate": "", **e} for n, e in enumerate(entries.values(), 1)
        ]

    def _agencies(self, _caller: Authenticated, _body: bytes) -> _Answer:
        listed = [
            {"id": e["id"], "pid": e["pcode"], "code": e["code"], "name": e["name"], "mail": e["mail"], "oldCode": ""}
            for e in self._directory()
            if not e["deleted"]
        ]
        return _Answer(ok(data=listed))

    def _agencies_qd20(self, _caller: Authenticated, _body: bytes) -> _Answer:
        listed = [
            {"id": e["id"], "code": e["code"], "name": e["name"], "mail": e["mail"], "code102": e["code"]}
            for e in self._directory()
            if not e["deleted"]
        ]
        return _Answer(ok(data=listed))

    def _synchronize_unit(self, _caller: Authenticated, _body: bytes) -> _Answer:
        fields = ("id", "pid", "code", "name", "mail", "version", "centerCode", "deleted", "modifyDate", "isAgency")
        listed = [
            {
                name: value
                for name, value in {**e, "pid": e["pcode"], "centerCode": "", "isAgency": True}.items()
                if name in fields
            }
            for e in self._directory()
        ]
        return _Answer(ok(data=listed))

    def _admin(self, caller: Authenticated) -> None:
        if not self.config.system(caller.system_id).admin:
            raise VxpError(VxpCode.FORBIDDEN, f"system {caller.system_id} may not change the directory")

    def _register_agency(self, caller: Authenticated, body: bytes) -> _Answer:
        self._admin(caller)
        try:
            raw = json.loads(body or b"{}")
        except ValueError as exc:
            raise VxpError(VxpCode.BAD_BODY, f"the body is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise VxpError(VxpCode.BAD_BODY, "the body is not a JSON object")
        code = str(raw.get("code") or "").strip()
        if not code or organ_id_problem(code):
            raise VxpError(VxpCode.BAD_PARAMETER, f"code {code!r} is not an OrganId")
        entry = {
            "code": code,
            "name": str(raw.get("name") or code),
            "pcode": str(raw.get("pcode") or ""),
            "mail": str(raw.get("mail") or ""),
            "deleted": False,
            "version": int(self.store.directory_changes.get(code, {}).get("version", 1)) + 1,
            "modifyDate": now_text(self._clock()),
        }
        self.store.change_directory(code, entry)
        return _Answer(ok())

    def _delete_agency(self, caller: Authenticated, _body: bytes) -> _Answer:
        self._admin(caller)
        code = caller.require("AgencyCode")
        known = {e["code"]: e for e in self._directory() if not e["deleted"]}
        if code not in known:
            raise VxpError(VxpCode.NOT_FOUND, f"no agency {code} in the directory")
        entry = {**known[code], "deleted": True, "version": int(known[code]["version"]) + 1}
        entry["modifyDate"] = now_text(self._clock())
        entry.pop("id", None)
        self.store.change_directory(code, entry)
        return _Answer(ok())


def _message_type(caller: Authenticated) -> str:
    service = caller.get("servicetype", "eDoc").strip()
    if service.lower() != "edoc":
        raise VxpError(VxpCode.BAD_PARAMETER, f"servicetype {service!r} is not eDoc")
    kind = caller.require("messagetype").lower()
    if kind not in KINDS:
        raise VxpError(VxpCode.BAD_PARAMETER, f"messagetype {kind!r} is not edoc or status")
    return kind


def _to_parameter(text: str) -> list[str]:
    """The ``to`` parameter: ``[{"OrganId": "…"}, …]`` (plain strings accepted too)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise VxpError(VxpCode.BAD_PARAMETER, f"to is not JSON: {exc}") from exc
    codes: list[str] = []
    for entry in raw if isinstance(raw, list) else [None]:
        value = entry
        if isinstance(entry, dict):
            value = next((v for k, v in entry.items() if str(k).lower() == "organid"), None)
        if not isinstance(value, str) or not value.strip():
            raise VxpError(VxpCode.BAD_PARAMETER, 'to is not a list of {"OrganId": "..."}')
        codes.append(value.strip())
    if not codes:
        raise VxpError(VxpCode.BAD_PARAMETER, "to names no recipient")
    return list(dict.fromkeys(codes))


def _date(caller: Authenticated, name: str) -> datetime | None:
    """fromDate/toDate: ISO 8601 (a date or a time) or dd/MM/yyyy, in Vietnam time when no offset is given."""
    text = caller.get(name).strip()
    if not text:
        return None
    for parse_text in (datetime.fromisoformat, lambda t: datetime.strptime(t, "%d/%m/%Y")):  # noqa: DTZ007
        try:
            value = parse_text(text)
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=VIETNAM_TZ)
    raise VxpError(VxpCode.BAD_PARAMETER, f"{name} {text!r} is not yyyy-MM-dd[THH:mm:ss] nor dd/MM/yyyy")


def _within(created: str, since: datetime | None, until: datetime | None) -> bool:
    at = datetime.fromisoformat(created)
    return (since is None or at >= since) and (until is None or at <= until)


# --- running it --------------------------------------------------------------------------------------------------


async def _serve(config: SimConfig, data: Path, host: str, port: int) -> int:
    simulator = AxisSimulator(config, data)
    runner = web.AppRunner(simulator.application(), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"lienthong axis-sim: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    bound = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    simulator.start_auto_replies()
    print(f"axis-sim listening on http://{host}:{bound}/vxp", flush=True)
    await stop.wait()
    await simulator.close()
    await runner.cleanup()
    return 0


def serve(config: SimConfig, data: Path, *, host: str = "127.0.0.1", port: int = 0) -> int:
    """Run the simulator until SIGTERM or SIGINT; prints its endpoint once ready. Returns the exit code."""
    data.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_serve(config, data, host, port))
