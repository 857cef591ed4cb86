"""The VXP facade: the national axis's API (``../shared/VXP.md``) served in front of the hub, at ``/vxp/<operation>``.

A DMS written against the axis's SDK points at ``http://HOST:8080/vxp`` with the systemId and secret of
``lienthong agency credentials`` (the ``vxp`` block) and exchanges documents unchanged:

- **sendEdoc** checks ``hash-file`` against the body, that ``from`` is the caller (no systemId sends for another:
  ``FROM_NOT_ALLOWED``), that the body is an edXML of the announced ``messagetype`` from that agency, then writes it
  to ``lienthong.outbox.<from>`` (acks=all, a claim check above ``claim_check_bytes``) and answers ``DocId``.
- **the mailbox** (``adapters.vxp_mailbox``): a consumer (group ``vxp.mailbox``) files every record of the inbox and
  status topic of each agency with a VXP secret into the object store, committing offsets only after the write;
  getReceivedEdocList / getEdoc / downloadEdoc / updateStatus / countReceive* read and mark it there.
- **claim checks** (not VXP operations; signed the same way): ``PUT /vxp/claims`` streams a large document into
  ``claims/<systemId>/<sha256>`` (create-only, completed only if the body hashes to the signed ``sha256``) and
  answers its claim check, for ``lienthong send`` and the SDK; ``GET /vxp/claims`` (signed ``key``) streams an
  archived original back to its sender or recipients, for ``lienthong receive --save``. Agencies hold no S3
  credentials; bodies are streamed (a temporary file, S3 parts), never read whole.
- **the directory**: getAgenciesList, getAgenciesListQD20, getSynchronizeUnit read ``lienthong.directory``;
  registerAgency / deleteAgency (administrator's systemId only) write signed records as ``lienthong agency add|remove``.

Every reply is a JSON envelope (``adapters.vxp``); a failure is a ``FAIL`` with a stable ``ErrorCode``, never an HTML
page or a traceback (a middleware turns anything unexpected into ``INTERNAL``, logged, and the hub's own trouble
into ``UNAVAILABLE``). downloadEdoc's failures carry a non-200 status, since the SDK writes any 200 body to a file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import logging
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final, Self

import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from adapters.kafka import KafkaConnection
from adapters.vxp import (
    CRLF,
    DOC_ID_PATTERN,
    OPERATIONS,
    Authenticated,
    VxpCode,
    VxpError,
    authenticate,
    encode,
    fail,
    ok,
)
from adapters.vxp_mailbox import (
    DEFAULT_LIST_LIMIT,
    MAILBOX_STATUSES,
    Mailbox,
    MailboxError,
    SentRecord,
    describe_sent,
    item_fields,
    parse_list_date,
    sent_doc_id,
    sent_doc_id_of,
    sent_rows,
)
from hub.access import ADMIN_USER, VXP_SECRETS_FILE, VXP_USER, provision_agency
from hub.directory import Agency, DirectoryError, Route
from hub.records import PRODUCER_LINGER_MS, ClaimCheck, inbox_topic, outbox_topic, status_topic
from hub.settings import HubSettings
from hub.signed_directory import (
    DirectoryState,
    admin_signing_key,
    current_directory,
    publish_records,
    read_directory_topic,
    sign_record,
)
from schemas import parse
from schemas._parse import parse_stream
from schemas.errors import DocumentRejected, HubError
from schemas.model import Edoc, ParsedDocument
from storage.objectstore import ObjectExists, ObjectNotFound, ObjectStore, StoreUnavailable

__all__ = ["MAILBOX_GROUP", "VxpFacade", "facade_connection", "run_facade"]

log = logging.getLogger("lienthong.vxp")

#: The facade's consumer group (``lienthong-vxp`` may use ``vxp.*`` groups only).
MAILBOX_GROUP: Final = "vxp.mailbox"
_SEND_TIMEOUT: Final = 30.0  # seconds to wait for the broker's acknowledgement of one document
_SMALL_BODY: Final = 64 * 1024  # every call but sendEdoc carries ``{}``, an empty body or a small JSON object
_DIRECTORY_TTL: Final = 5.0  # seconds a directory read serves the list calls
_CLAIMS_PREFIX: Final = "claims/"  # claims/<systemId>/<sha256>: each agency uploads under its own prefix only
_DOCUMENTS_PREFIX: Final = "documents/"  # the hub's archived originals (hub.process.document_key)
_CHUNK: Final = 256 * 1024  # bytes per read of a streamed body or object
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_COMMIT_EVERY: Final = 1.0  # seconds between the mailbox consumer's offset commits
_NO_BODY_ID: Final = "0" * 32  # the DocId's hash part when the body was never read (refused before it)
_HTTP_STATUS: Final = {  # downloadEdoc's failures (the other calls answer 200: the SDK reads the envelope)
    VxpCode.NOT_FOUND: 404,
    VxpCode.FORBIDDEN: 403,
    VxpCode.TOO_LARGE: 413,
    VxpCode.UNAVAILABLE: 503,
    VxpCode.INTERNAL: 500,
    VxpCode.UNKNOWN_OPERATION: 404,
}
_AUTH_CODES: Final = frozenset(
    {VxpCode.AUTH_MISSING, VxpCode.UNKNOWN_SYSTEM, VxpCode.BAD_SIGNATURE, VxpCode.HEADER_MISMATCH}
)


def facade_connection(settings: HubSettings) -> KafkaConnection:
    """The facade's Kafka principal (``lienthong-vxp``); the hub's own when no password was generated for it."""
    return settings.principal(VXP_USER, settings.vxp_kafka_password)


class _Secrets:
    """``DATA/vxp-secrets.yaml`` (systemId → secret), read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()

    def current(self) -> dict[str, str]:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                loaded = yaml.safe_load(self._path.read_text(encoding="utf-8")) or {}
                self._secrets = {str(k): str(v) for k, v in loaded.items() if v} if isinstance(loaded, dict) else {}
                self._stamp = stamp
            return self._secrets


@dataclass
class _Call:
    """One authenticated call: the request, who made it and what it signed."""

    request: web.Request
    caller: Authenticated

    @property
    def system_id(self) -> str:
        return self.caller.system_id


def _reply(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type="application/json")


def _now() -> datetime:
    return datetime.now(UTC)


class VxpFacade:
    """The facade's state: settings, object store, Kafka clients, the mailbox consumer and the HTTP application."""

    def __init__(
        self,
        settings: HubSettings,
        store: ObjectStore,
        *,
        clock: Callable[[], datetime] = _now,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.mailbox = Mailbox(store, clock=clock)
        self._store = store
        self._clock = clock
        self._connection = facade_connection(settings)
        self._secrets = _Secrets(settings.data_dir / VXP_SECRETS_FILE)
        self._window = timedelta(seconds=settings.vxp_timestamp_window_seconds)
        self._producer: Any = None
        self._consumer_task: asyncio.Task[None] | None = None
        self._directory: tuple[float, DirectoryState] | None = None
        self.failed = Counter(
            "lienthong_vxp_failed_total",
            "Mailbox items a DMS marked fail through the VXP facade (updateStatus fail), by agency",
            ["agency"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._handlers: dict[str, Callable[[_Call], Awaitable[web.StreamResponse]]] = {
            "sendEdoc": self._send_edoc,
            "getReceivedEdocList": self._received_list,
            "getEdoc": self._get_edoc,
            "downloadEdoc": self._download_edoc,
            "updateStatus": self._update_status,
            "getSentEdocList": self._sent_list,
            "countReceiveEdoc": functools.partial(self._count, kind="edoc"),
            "countReceiveStatus": functools.partial(self._count, kind="status"),
            "getAgenciesList": self._agencies,
            "getAgenciesListQD20": self._agencies_qd20,
            "getSynchronizeUnit": self._synchronize_unit,
            "registerAgency": self._register_agency,
            "deleteAgency": self._delete_agency,
        }
        assert set(self._handlers) == set(OPERATIONS)

    # --- the application -------------------------------------------------------------------------------------

    def application(self) -> web.Application:
        """The aiohttp application: ``/vxp/<operation>``, the error middleware, Kafka started and stopped with it."""
        app = web.Application(
            middlewares=[self._envelope_errors], client_max_size=self.settings.max_document_bytes + len(CRLF)
        )
        # Claim checks (README, "Large documents"), before /vxp/{operation}, which would take "claims" for an operation.
        app.router.add_route("PUT", "/vxp/claims", self._claim_upload)
        app.router.add_route("GET", "/vxp/claims", self._claim_download)
        app.router.add_route("*", "/vxp/{operation}", self._dispatch)
        app.cleanup_ctx.append(self._kafka_context)
        return app

    async def _kafka_context(self, _app: web.Application) -> AsyncIterator[None]:
        from aiokafka import AIOKafkaProducer  # noqa: PLC0415 - Kafka only when serving

        self._producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=PRODUCER_LINGER_MS,  # concurrent sends share a request
            max_request_size=2 * 1024 * 1024,
            **self._connection.options(),
        )
        await self._producer.start()
        self._consumer_task = asyncio.create_task(self._mailbox_loop(), name="vxp-mailbox")
        try:
            yield
        finally:
            self._consumer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer_task
            await self._producer.stop()

    @web.middleware
    async def _envelope_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Whatever goes wrong, the caller gets a JSON FAIL envelope (never HTML, never a traceback)."""
        try:
            return await handler(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an envelope; _as_refusal logs the unexpected
            return self._refusal(request, self._as_refusal(request, exc))

    def _as_refusal(self, request: web.Request, exc: Exception) -> VxpError:
        """The refusal ``exc`` means for the caller: theirs as it is, the hub's own as UNAVAILABLE or INTERNAL."""
        if isinstance(exc, VxpError):
            return exc
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            limit = self.settings.max_document_bytes
            return VxpError(VxpCode.TOO_LARGE, f"the body is over the limit of {limit} bytes")
        if isinstance(exc, web.HTTPException):  # aiohttp's own: no such route, a method it refuses
            if exc.status == 404:  # noqa: PLR2004
                return VxpError(VxpCode.UNKNOWN_OPERATION, f"no operation at {request.path}: use /vxp/<operation>")
            return VxpError(VxpCode.BAD_BODY, f"HTTP {exc.status}: {exc.reason}")
        if isinstance(exc, StoreUnavailable | ConnectionError | TimeoutError) or _is_kafka_error(exc):
            log.warning("vxp %s: the hub's store or broker is unavailable: %s", request.path, exc)
            return VxpError(VxpCode.UNAVAILABLE, "the hub cannot reach its broker or object store now; try again later")
        log.error("vxp %s failed", request.path, exc_info=exc)
        return VxpError(VxpCode.INTERNAL, "the hub failed on its own (logged); try again later")

    def _refusal(self, request: web.Request, error: VxpError) -> web.Response:
        operation = request.match_info.get("operation", "")
        if operation == "sendEdoc":  # the SDK reads DocId from every sendEdoc reply
            return _reply(fail(error, DocId=request.get("vxp_doc_id") or self._early_doc_id(request)))
        if error.code is VxpCode.UNKNOWN_OPERATION:
            return _reply(fail(error), 404)
        if operation == "downloadEdoc" or (request.path == "/vxp/claims" and request.method == "GET"):
            status = 401 if error.code in _AUTH_CODES else _HTTP_STATUS.get(error.code, 400)
            return _reply(fail(error), status)
        return _reply(fail(error))

    @staticmethod
    def _early_doc_id(request: web.Request) -> str:
        """A refused send whose body was never read: ``<from>_000…`` (still a valid file name)."""
        sender = next((v for k, v in request.headers.items() if k.lower() == "xroadvnpt-from"), "") or "unknown"
        doc_id = sent_doc_id(sender, b"")
        return doc_id.rsplit("_", 1)[0] + "_" + _NO_BODY_ID

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        operation = request.match_info["operation"]
        handler = self._handlers.get(operation)
        if handler is None:
            error = VxpError(VxpCode.UNKNOWN_OPERATION, f"no operation {operation!r}; see VXP.md for the list")
            return _reply(fail(error), 404)
        return await handler(_Call(request, self._authenticate(request)))

    def _authenticate(self, request: web.Request) -> Authenticated:
        headers = [(k, _text(v)) for k, v in request.headers.items()]
        return authenticate(headers, self._secrets.current(), now=self._clock(), window=self._window)

    # --- sendEdoc --------------------------------------------------------------------------------------------

    async def _send_edoc(self, call: _Call) -> web.StreamResponse:
        sender = call.caller.require("from")
        messagetype = call.caller.require("messagetype").lower()
        expected_hash = call.caller.require("hash-file").strip().lower()
        if sender != call.system_id:
            raise VxpError(
                VxpCode.FROM_NOT_ALLOWED, f"Don vi gui {sender} khong dung voi ma da dang ky: {call.system_id}"
            )
        if messagetype not in {"edoc", "status"}:
            raise VxpError(VxpCode.BAD_PARAMETER, f"messagetype is 'edoc' or 'status', not {messagetype!r}")
        # The body is streamed to a temporary file (never held whole): a document of up to max_document_bytes.
        with await self._spool(call.request, strip_crlf=True) as body:
            call.request["vxp_doc_id"] = doc_id = sent_doc_id_of(sender, body.sha256)
            if not body.size:
                raise VxpError(VxpCode.BAD_BODY, "the body is empty: sendEdoc carries the edXML followed by CRLF")
            if _hash_file(body.sha256) != expected_hash:
                raise VxpError(VxpCode.BAD_BODY, "hash-file is not the SHA-256 of the body (without its trailing CRLF)")
            if body.size > self.settings.claim_check_bytes:
                record = await asyncio.to_thread(self._check_document, sender, messagetype, doc_id, body)
                check = await asyncio.to_thread(self._deposit, sender, body)
                value = check.to_bytes()
            else:
                data = body.file.read()
                record = await asyncio.to_thread(self._check_document, sender, messagetype, doc_id, data)
                value = data
        # The record of the send and the send itself at once: a failure of either is a FAIL, and the DMS's retry
        # of the same body has the same DocId (the record is create-only, the hub drops the duplicate document).
        await asyncio.gather(
            asyncio.to_thread(self.mailbox.record_sent, record),
            asyncio.wait_for(
                self._producer.send_and_wait(outbox_topic(sender), value, key=sender.encode()), _SEND_TIMEOUT
            ),
        )
        return _reply(ok(DocId=doc_id))

    def _check_document(self, sender: str, messagetype: str, doc_id: str, data: bytes | _Body) -> SentRecord:
        """The sent record of ``data``, once it reads as an edXML of ``messagetype`` from ``sender``."""
        limit = self.settings.max_document_bytes
        try:
            parsed: ParsedDocument
            if isinstance(data, _Body):
                parsed = parse_stream(data.chunks(), max_bytes=limit, size=data.size)
            else:
                parsed = parse(data, max_bytes=limit)
            message = parsed.message
        except DocumentRejected as exc:
            raise VxpError(VxpCode.BAD_BODY, f"the body is not an edXML document or status: {exc}") from exc
        kind = "edoc" if isinstance(message, Edoc) else "status"
        if kind != messagetype:
            raise VxpError(VxpCode.BAD_PARAMETER, f"messagetype is {messagetype!r} but the body is an {kind}")
        if message.sender.organ_id != sender:
            raise VxpError(
                VxpCode.FROM_NOT_ALLOWED, f"the edXML's From/OrganId {message.sender.organ_id} is not from={sender}"
            )
        return describe_sent(sender, kind, doc_id, message, self._clock())

    def _deposit(self, system_id: str, body: _Body) -> ClaimCheck:
        """Store ``body`` under ``claims/<systemId>/<sha256>`` create-only (the same bytes again: already there)."""
        key = f"{_CLAIMS_PREFIX}{system_id}/{body.sha256}"
        body.file.seek(0)
        with contextlib.suppress(ObjectExists):  # the key names the content, checked when it was first written
            self._store.put_stream(key, body.file, size=body.size, sha256=body.sha256)
        return ClaimCheck(key, body.sha256, body.size)

    async def _spool(self, request: web.Request, *, strip_crlf: bool = False) -> _Body:
        """The request body in a temporary file, hashed on the way, refused above ``max_document_bytes``.

        aiohttp's ``client_max_size`` bounds ``read()`` only; a streamed body is bounded here.
        """
        limit = self.settings.max_document_bytes + (len(CRLF) if strip_crlf else 0)
        if (request.content_length or 0) > limit:
            raise VxpError(VxpCode.TOO_LARGE, f"the body is over the limit of {limit} bytes")
        spool: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it (the _Body's context)
        try:
            digest = hashlib.sha256()
            held = b""  # the last two bytes, kept back from the digest: they may be sendEdoc's trailing CRLF
            total = 0
            async for chunk in request.content.iter_chunked(_CHUNK):
                total += len(chunk)
                if total > limit:
                    break
                spool.write(chunk)
                both = held + chunk
                digest.update(both[:-2])
                held = both[-2:]
            size = total
            if total > limit:
                raise VxpError(VxpCode.TOO_LARGE, f"the body is over the limit of {limit} bytes")  # noqa: TRY301
            if strip_crlf and held == CRLF:
                size -= len(CRLF)
                spool.truncate(size)
            else:
                digest.update(held)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return _Body(spool, size, digest.hexdigest())

    # --- claim checks: upload and download without S3 credentials ----------------------------------------------

    async def _claim_upload(self, request: web.Request) -> web.StreamResponse:
        """PUT /vxp/claims: store the body under ``claims/<systemId>/<sha256>`` and answer its claim check.

        Signed parameters: ``sha256`` (of the body) and optionally ``key`` (which must be that very key). The hub
        chooses the key from the authenticated systemId, so an agency writes its own prefix only; the write is
        create-only and completes only if the body hashes to ``sha256``, so nothing is ever overwritten.
        """
        caller = self._authenticate(request)
        sha256 = caller.require("sha256").strip().lower()
        if not _SHA256.fullmatch(sha256):
            raise VxpError(VxpCode.BAD_PARAMETER, "sha256 is the body's SHA-256 in 64 hex digits")
        key = f"{_CLAIMS_PREFIX}{caller.system_id}/{sha256}"
        if (asked := caller.get("key")) and asked != key:
            raise VxpError(VxpCode.FORBIDDEN, f"{caller.system_id} may upload to {key} only, not {asked}")
        with await self._spool(request) as body:
            if body.sha256 != sha256:
                raise VxpError(VxpCode.BAD_BODY, f"the body's SHA-256 is {body.sha256}, not {sha256}")
            check = await asyncio.to_thread(self._deposit, caller.system_id, body)
        return _reply(ok(claim={"key": check.key, "sha256": check.sha256, "size": check.size}))

    async def _claim_download(self, request: web.Request) -> web.StreamResponse:
        """GET /vxp/claims: stream the object a claim check delivered to the caller names (signed ``key``).

        Readable: an archived original (``documents/…``) whose sender or recipients include the caller, and the
        caller's own uploads. The object's size and recorded SHA-256 travel as ``Content-Length`` and
        ``X-Lienthong-Sha256``; the client checks the bytes against its claim check.
        """
        caller = self._authenticate(request)
        key = caller.require("key")
        info = await asyncio.to_thread(self._readable, caller.system_id, key)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(info.size),
                "X-Lienthong-Sha256": info.sha256,
            }
        )
        await response.prepare(request)
        await self._stream_object(response, key)
        await response.write_eof()
        return response

    def _readable(self, system_id: str, key: str) -> Any:
        """The object ``key`` when ``system_id`` may read it (FORBIDDEN, or NOT_FOUND, naming the key)."""
        refused = VxpError(VxpCode.FORBIDDEN, f"{system_id} may not read {key!r}")
        own = f"{_CLAIMS_PREFIX}{system_id}/"
        if not key.startswith((own, _DOCUMENTS_PREFIX)):
            raise refused
        try:
            info = self._store.stat(key)
        except ObjectNotFound:
            raise VxpError(VxpCode.NOT_FOUND, f"no object {key!r}") from None
        except ValueError:
            raise refused from None
        if key.startswith(_DOCUMENTS_PREFIX):
            recipients = info.metadata.get("recipients", "").split(",")
            if system_id != info.metadata.get("sender") and system_id not in recipients:
                raise refused
        return info

    async def _stream_object(self, response: web.StreamResponse, key: str, *, encode_chunk: Any = None) -> None:
        """Write the object under ``key`` to ``response`` chunk by chunk (read in a thread, never whole)."""
        stream = await asyncio.to_thread(self._store.open, key)
        try:
            while chunk := await asyncio.to_thread(stream.read, _CHUNK * 3):  # a multiple of 3: whole base64 groups
                await response.write(encode_chunk(chunk) if encode_chunk is not None else chunk)
        finally:
            stream.close()

    # --- the mailbox -----------------------------------------------------------------------------------------

    async def _received_list(self, call: _Call) -> web.StreamResponse:
        kind = _kind(call.caller.get("messagetype") or "edoc")
        items = await asyncio.to_thread(self.mailbox.pending, call.system_id, kind, limit=1 << 62)
        start, end = call.caller.get("fromDate").strip(), call.caller.get("toDate").strip()
        try:
            if start:
                since = parse_list_date(start, end=False)
                items = [i for i in items if i.received >= since]
            if end:
                until = parse_list_date(end, end=True)
                items = [i for i in items if i.received <= until]
        except ValueError as exc:
            raise VxpError(VxpCode.BAD_PARAMETER, f"fromDate/toDate: {exc}") from exc
        return _reply(ok(data=[item_fields(i) for i in items[:DEFAULT_LIST_LIMIT]]))

    def _doc_id(self, call: _Call) -> str:
        doc_id = call.caller.require("docId")
        if not DOC_ID_PATTERN.match(doc_id):
            raise VxpError(VxpCode.NOT_FOUND, f"no document {doc_id!r} in your mailbox")
        return doc_id

    async def _read(self, call: _Call) -> bytes:
        doc_id = self._doc_id(call)
        try:
            return await asyncio.to_thread(self.mailbox.read, call.system_id, doc_id)
        except KeyError:
            raise VxpError(VxpCode.NOT_FOUND, f"no document {doc_id!r} in your mailbox") from None
        except MailboxError as exc:
            log.error("vxp getEdoc: %s", exc)  # noqa: TRY400 - the message says it all
            raise VxpError(VxpCode.INTERNAL, "the hub cannot read that document back now; try again later") from exc

    async def _claim(self, call: _Call) -> ClaimCheck | None:
        """The claim check of the called docId's item when it is one (its object then streams), else None."""
        doc_id = self._doc_id(call)
        try:
            check = await asyncio.to_thread(self.mailbox.claim_of, call.system_id, doc_id)
            if check is not None:
                info = await asyncio.to_thread(self._store.stat, check.key)
                if (info.size, info.sha256) != (check.size, check.sha256):
                    problem = f"{doc_id}: the claimed object {check.key} does not match its claim check"
                    raise MailboxError(problem)  # noqa: TRY301 - reported like the mailbox's own
        except KeyError:
            raise VxpError(VxpCode.NOT_FOUND, f"no document {doc_id!r} in your mailbox") from None
        except (MailboxError, ObjectNotFound) as exc:
            log.error("vxp getEdoc: %s", exc)  # noqa: TRY400 - the message says it all
            raise VxpError(VxpCode.INTERNAL, "the hub cannot read that document back now; try again later") from exc
        return check

    async def _get_edoc(self, call: _Call) -> web.StreamResponse:
        check = await self._claim(call)
        if check is None:
            data = await self._read(call)
            return _reply(ok(data=base64.b64encode(data).decode("ascii")))
        # The envelope around a base64 body streamed from the store: a 100 MB document is never held whole.
        head, _, tail = encode(ok(data="")).rpartition(b'""')
        size = len(head) + 2 + 4 * ((check.size + 2) // 3) + len(tail)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(size)})
        await response.prepare(call.request)
        await response.write(head + b'"')
        await self._stream_object(response, check.key, encode_chunk=base64.b64encode)
        await response.write(b'"' + tail)
        await response.write_eof()
        return response

    async def _download_edoc(self, call: _Call) -> web.StreamResponse:
        check = await self._claim(call)
        if check is None:
            data = await self._read(call)
            return web.Response(body=data, content_type="application/octet-stream")
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(check.size)}
        response = web.StreamResponse(headers=headers)
        await response.prepare(call.request)
        await self._stream_object(response, check.key)
        await response.write_eof()
        return response

    async def _update_status(self, call: _Call) -> web.StreamResponse:
        doc_id = self._doc_id(call)
        status = call.caller.require("status").lower()
        if status not in MAILBOX_STATUSES:
            raise VxpError(VxpCode.BAD_PARAMETER, f"status is one of {', '.join(MAILBOX_STATUSES)}, not {status!r}")
        description = call.caller.get("description") or call.caller.get("status_desc")
        try:
            await asyncio.to_thread(self.mailbox.update_status, call.system_id, doc_id, status, description)
        except KeyError:
            raise VxpError(VxpCode.NOT_FOUND, f"no document {doc_id!r} in your mailbox") from None
        if status == "fail":
            self.failed.labels(call.system_id).inc()
            log.warning("vxp: %s marked %s fail: %s", call.system_id, doc_id, description or "(no description)")
        return _reply(ok())

    async def _count(self, call: _Call, kind: str) -> web.StreamResponse:
        count = await asyncio.to_thread(self.mailbox.count, call.system_id, kind)
        return _reply(ok(count=count))

    async def _sent_list(self, call: _Call) -> web.StreamResponse:
        kind = _kind(call.caller.get("messagetype") or "edoc")
        records = await asyncio.to_thread(self.mailbox.sent, call.system_id, kind)
        wanted = call.caller.get("docId").strip()
        if wanted:
            records = [r for r in records if r.doc_id == wanted]
        statuses = await asyncio.to_thread(self.mailbox.statuses, call.system_id)
        return _reply(ok(data=sent_rows(records, statuses, hub_organ_id=self.settings.hub_organ_id)))

    async def _mailbox_loop(self) -> None:
        """Run the mailbox consumer for as long as the facade runs, starting it again when it fails."""
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker is down or refused us: the facade keeps serving and tries again
                log.exception("vxp mailbox: the consumer stopped; starting it again in 5 s")
                await asyncio.sleep(5.0)

    async def _consume(self) -> None:
        """File every record of the served agencies' inbox and status topics; commit only what is written."""
        from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

        consumer = AIOKafkaConsumer(
            group_id=MAILBOX_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The broker answers a fetch when 64 KB wait or after 250 ms: a few fetches a second, not one a record.
            fetch_min_bytes=64 * 1024,
            fetch_max_wait_ms=250,
            **self._connection.options(),
        )
        await consumer.start()
        topics: frozenset[str] = frozenset()
        written: dict[Any, int] = {}  # partition → next offset, filed but not yet committed
        committed_at = 0.0
        try:
            while True:
                wanted = self._mailbox_topics()
                if wanted != topics:
                    topics = wanted
                    if topics:
                        consumer.subscribe(topics=sorted(topics))
                    else:
                        consumer.unsubscribe()
                if not topics:
                    await asyncio.sleep(1.0)
                    continue
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for partition, records in batches.items():
                    try:
                        await asyncio.gather(*(asyncio.to_thread(self._ingest, r) for r in records))
                        written[partition] = records[-1].offset + 1
                    except Exception:  # the store is down: read the batch again, later
                        log.exception("vxp mailbox: filing %s failed; retrying", partition)
                        consumer.seek(TopicPartition(partition.topic, partition.partition), records[0].offset)
                        await asyncio.sleep(1.0)
                # Offsets of what is filed, at most every _COMMIT_EVERY s: filing again after a crash changes nothing.
                now = asyncio.get_running_loop().time()
                if written and (now - committed_at >= _COMMIT_EVERY or not batches):
                    await consumer.commit(dict(written))
                    written.clear()
                    committed_at = now
        finally:
            await consumer.stop()

    def _mailbox_topics(self) -> frozenset[str]:
        organs = [s for s in self._secrets.current() if s != ADMIN_USER]
        topics = set()
        for organ in organs:
            with contextlib.suppress(ValueError):
                topics |= {inbox_topic(organ), status_topic(organ)}
        return frozenset(topics)

    def _ingest(self, record: Any) -> str:
        if not record.value:  # nothing to file (the hub never delivers an empty record)
            return ""
        topic: str = record.topic
        kind = "edoc" if topic.startswith("lienthong.inbox.") else "status"
        recipient = topic.split(".", 2)[2]
        return self.mailbox.ingest(recipient, kind, record.key, record.value or b"")

    # --- the directory ---------------------------------------------------------------------------------------

    async def _directory_state(self, *, fresh: bool = False) -> DirectoryState:
        loop = asyncio.get_running_loop()
        cached = self._directory
        if not fresh and cached is not None and loop.time() - cached[0] < _DIRECTORY_TTL:
            return cached[1]

        def read() -> DirectoryState:
            return current_directory(self.settings, read_directory_topic(self._connection))

        state = await asyncio.to_thread(read)
        self._directory = (loop.time(), state)
        return state

    async def _agencies(self, _call: _Call) -> web.StreamResponse:
        state = await self._directory_state()
        rows = [
            {"id": a.id, "pid": "", "code": a.id, "name": a.name, "mail": "", "oldCode": ""}
            for a in sorted(state.directory, key=lambda a: a.id)
        ]
        return _reply(ok(data=rows))

    async def _agencies_qd20(self, _call: _Call) -> web.StreamResponse:
        state = await self._directory_state()
        rows = [
            {"id": a.id, "code": a.id, "name": a.name, "mail": "", "code102": a.id}
            for a in sorted(state.directory, key=lambda a: a.id)
        ]
        return _reply(ok(data=rows))

    async def _synchronize_unit(self, _call: _Call) -> web.StreamResponse:
        state = await self._directory_state()
        rows = []
        for agency in sorted(state.directory, key=lambda a: a.id):
            changed = state.applied[agency.id].issued_at
            rows.append(
                {
                    "id": agency.id,
                    "pid": "",
                    "code": agency.id,
                    "name": agency.name,
                    "mail": "",
                    "version": str(int(changed.timestamp() * 1000)),
                    "centerCode": self.settings.hub_organ_id,
                    "deleted": False,
                    "modifyDate": changed.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "isAgency": agency.route is Route.LOCAL,
                }
            )
        return _reply(ok(data=rows))

    def _administrator(self, call: _Call) -> None:
        if call.system_id != ADMIN_USER:
            raise VxpError(VxpCode.FORBIDDEN, f"only the administrator's systemId ({ADMIN_USER}) may change agencies")

    async def _register_agency(self, call: _Call) -> web.StreamResponse:
        self._administrator(call)
        if (call.request.content_length or 0) > _SMALL_BODY:
            raise VxpError(VxpCode.TOO_LARGE, f"a registerAgency body is at most {_SMALL_BODY} bytes")
        agency = _agency_from_body(await call.request.read())
        state = await self._directory_state(fresh=True)
        if state.directory.get(agency.id) is not None:
            raise VxpError(VxpCode.BAD_PARAMETER, f"{agency.id} is already registered")
        await asyncio.to_thread(self._write_directory, state, agency.id, agency)
        self._directory = None
        return _reply(ok())

    async def _delete_agency(self, call: _Call) -> web.StreamResponse:
        self._administrator(call)
        code = call.caller.require("AgencyCode")
        state = await self._directory_state(fresh=True)
        if state.directory.get(code) is None:
            raise VxpError(VxpCode.NOT_FOUND, f"no agency {code!r} in the directory")
        await asyncio.to_thread(self._write_directory, state, code, None)
        self._directory = None
        return _reply(ok())

    def _write_directory(self, state: DirectoryState, organ_id: str, agency: Agency | None) -> None:
        """Sign and publish one directory record, as ``lienthong agency add|remove`` does."""
        issued_at = state.next_issued_at(organ_id)
        with admin_signing_key(self.settings) as key:
            value = sign_record(key, organ_id, agency, issued_at)
        if agency is not None:  # its topics and ACLs first, so that it can connect at once
            provision_agency(self.settings, agency)
        publish_records(self.settings.kafka, [(organ_id, value)])


@dataclass
class _Body:
    """A request body spooled to a temporary file: its size and SHA-256 (close it when done)."""

    file: BinaryIO
    size: int
    sha256: str

    def chunks(self) -> Iterator[bytes]:
        """The body from its start, in chunks (for a streaming parse)."""
        self.file.seek(0)
        left = self.size
        while left > 0 and (chunk := self.file.read(min(_CHUNK * 4, left))):
            left -= len(chunk)
            yield chunk

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.file.close()


def _agency_from_body(body: bytes) -> Agency:
    """The local agency a registerAgency body ``{id, pcode, code, name, mail, mobile, fax}`` describes."""
    try:
        fields = json.loads(body or b"{}")
    except ValueError as exc:
        raise VxpError(VxpCode.BAD_BODY, f"registerAgency takes a JSON object {{id, code, name}}: {exc}") from exc
    if not isinstance(fields, dict):
        raise VxpError(VxpCode.BAD_BODY, "registerAgency takes a JSON object {id, pcode, code, name, ...}")
    entry = {"id": str(fields.get("code") or ""), "name": str(fields.get("name") or ""), "route": "local"}
    try:
        return Agency.from_mapping(entry, "registerAgency")
    except DirectoryError as exc:
        raise VxpError(VxpCode.BAD_BODY, str(exc)) from exc


def _hash_file(sha256: str) -> str:
    """``adapters.vxp.hash_file`` of a body known by its SHA-256 (hex): each byte in hex without zero padding."""
    return "".join(f"{b:x}" for b in bytes.fromhex(sha256))


def _kind(messagetype: str) -> str:
    kind = messagetype.strip().lower()
    if kind not in {"edoc", "status"}:
        raise VxpError(VxpCode.BAD_PARAMETER, f"messagetype is 'edoc' or 'status', not {messagetype!r}")
    return kind


def _text(value: str) -> str:
    """A header value as text: aiohttp keeps undecodable bytes as surrogates, which the HMAC cannot encode."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_kafka_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("aiokafka", "kafka"))


def run_facade(settings: HubSettings, *, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Serve the facade until SIGINT/SIGTERM (``lienthong vxp-facade``; ``lienthong up`` runs one)."""
    try:
        store = settings.open_store(max_connections=16)  # the default thread pool's workers, one each
    except HubError as exc:
        raise HubError(f"the VXP facade cannot open the object store: {exc}") from exc
    facade = VxpFacade(settings, store, registry=_process_registry())
    web.run_app(
        facade.application(),
        host=host,
        port=port or settings.vxp_port,
        print=None,
        access_log=None,
        handle_signals=True,
    )


def _process_registry() -> CollectorRegistry | None:
    """The default registry: under ``lienthong up`` it writes to the multiprocess folder the dashboard reads."""
    from prometheus_client import REGISTRY  # noqa: PLC0415

    return REGISTRY
