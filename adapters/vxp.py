r"""The national axis's API (VXP), as ``../shared/VXP.md`` describes real SDK clients speaking it.

One module for the three parts that speak it: the facade (``adapters.vxp_facade``, a VXP server in front of the
hub), the axis connector (a VXP client with the hub's own systemId) and the axis simulator (``adapters.axis_sim``).
What lives here is the protocol itself, no I/O but the client's HTTP:

- ``sign_request`` / ``authenticate``: the per-call HMAC (``XroadVnpt-sign-header`` as sent, verified byte for byte,
  each signed value checked against the header actually sent, header names case-insensitive, a timestamp window);
- ``ok`` / ``fail`` / ``encode``: the JSON envelope every reply carries (``status``, ``ErrorCode``, ``ErrorDesc``),
  with the stable error codes of ``VxpCode``, ASCII-only (``\uXXXX``), never a JSON ``null``;
- ``VxpClient``: a small blocking client (``http.client``, one kept-alive connection) for every operation.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from schemas._checks import VIETNAM_TZ
from schemas.errors import HubError

__all__ = [
    "CRLF",
    "DEFAULT_TIMESTAMP_WINDOW",
    "DOC_ID_PATTERN",
    "HEADER_PREFIX",
    "OPERATIONS",
    "VERSION",
    "Authenticated",
    "VxpClient",
    "VxpCode",
    "VxpError",
    "authenticate",
    "encode",
    "fail",
    "format_timestamp",
    "hash_file",
    "ok",
    "parse_timestamp",
    "sign_request",
]

HEADER_PREFIX: Final = "XroadVnpt-"
VERSION: Final = "3.0.201608"
CRLF: Final = b"\r\n"
#: How old (or how far ahead) a request's timestamp may be: SDK clients fix it when the client object is made.
DEFAULT_TIMESTAMP_WINDOW: Final = timedelta(days=1)
#: A docId the SDK can use as a file name.
DOC_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
#: Every operation of VXP.md, by its path segment.
OPERATIONS: Final = (
    "sendEdoc",
    "getReceivedEdocList",
    "getEdoc",
    "downloadEdoc",
    "updateStatus",
    "getSentEdocList",
    "countReceiveEdoc",
    "countReceiveStatus",
    "getAgenciesList",
    "getAgenciesListQD20",
    "getSynchronizeUnit",
    "registerAgency",
    "deleteAgency",
)
_SIGN_HEADER = "sign-header"
_SIGN_HEADER_KEY = "sign-header-key"
_HASH_HEADER = "hash-header"
_TIMESTAMP_RE = re.compile(r"^(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{1,4})$")
_MAX_SIGN_HEADER = 16 * 1024  # a sign-header is a few hundred bytes; anything huge is not one


class VxpCode(StrEnum):
    """The stable ``ErrorCode`` of every reply (README, "VXP error codes"); ``OK`` is ``"0"``."""

    OK = "0"
    AUTH_MISSING = "1001"  # a header of the HMAC (systemid, timestamp, sign-header, hash-header) is missing
    UNKNOWN_SYSTEM = "1002"  # no secret for that systemId
    BAD_SIGNATURE = "1003"  # the hash-header is not the HMAC of the sign-header under that secret
    HEADER_MISMATCH = "1004"  # a signed value differs from the header sent, or the sign-header is not a JSON object
    STALE_TIMESTAMP = "1005"  # the timestamp is unreadable or outside the window
    MISSING_PARAMETER = "2001"  # a parameter the operation needs is not among the signed ones
    BAD_BODY = "2002"  # an empty, unreadable or mismatching (hash-file) body
    FROM_NOT_ALLOWED = "2003"  # sendEdoc's ``from`` is not the caller (nor an agency it may send for)
    TOO_LARGE = "2004"  # the body is over the hub's document limit
    BAD_PARAMETER = "2005"  # a parameter has a value the operation does not know
    NOT_FOUND = "3001"  # no such docId in the caller's own mailbox (others' are never revealed)
    FORBIDDEN = "4001"  # an operation for the administrator's systemId only
    UNKNOWN_OPERATION = "4002"  # no such operation
    UNAVAILABLE = "5001"  # the hub cannot reach its broker or object store now: try again later
    INTERNAL = "5002"  # the hub failed on its own (logged); try again later


class VxpError(HubError):
    """A call refused with a stable code and a plain description (becomes a ``FAIL`` envelope)."""

    def __init__(self, code: VxpCode, description: str) -> None:
        super().__init__(f"{code.name} ({code.value}): {description}")
        self.code = code
        self.description = description


# --- time stamps and hashes --------------------------------------------------------------------------------------


def format_timestamp(at: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time (the ``+`` is literal; SSSS: zero-padded milliseconds)."""
    local = at.astimezone(VIETNAM_TZ) if at.tzinfo else at
    return local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"


def parse_timestamp(text: str) -> datetime:
    """A VXP timestamp as an aware time (the client's local time, taken as Vietnam time). Raises ``ValueError``."""
    match = _TIMESTAMP_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not ddMMyyyy'T'HHmmss+SSSS")
    day, month, year, hour, minute, second, millis = (int(g) for g in match.groups())
    return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=VIETNAM_TZ)


def hash_file(body: bytes) -> str:
    """The ``hash-file`` of sendEdoc: SHA-256 of the body, each byte in hex without zero padding (as the SDK does)."""
    return "".join(f"{b:x}" for b in hashlib.sha256(body).digest())


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# --- signing and checking a request -------------------------------------------------------------------------------


def sign_request(
    system_id: str,
    secret: str,
    parameters: Sequence[tuple[str, str]] = (),
    *,
    content_type: str = "application/json",
    timestamp: str | None = None,
) -> dict[str, str]:
    """Every header of one call as the SDK sends it: parameters, systemid, timestamp, version and the HMAC."""
    stamp = timestamp or format_timestamp(datetime.now(UTC))
    signed: list[tuple[str, str]] = [("systemid", system_id), ("timestamp", stamp), ("Content-Type", content_type)]
    signed += list(parameters)
    sign_header = json.dumps({HEADER_PREFIX + k: v for k, v in signed}, separators=(",", ":"), ensure_ascii=False)
    headers = {HEADER_PREFIX + k: v for k, v in signed}
    headers |= {
        "Content-Type": content_type,
        f"{HEADER_PREFIX}version": VERSION,
        f"{HEADER_PREFIX}{_SIGN_HEADER}": sign_header,
        f"{HEADER_PREFIX}{_SIGN_HEADER_KEY}": ";".join(k for k, _ in signed),
        f"{HEADER_PREFIX}{_HASH_HEADER}": _hmac(secret, sign_header.encode("utf-8")),
    }
    return headers


@dataclass(frozen=True)
class Authenticated:
    """A request whose HMAC verified: the caller's systemId and its signed parameters (names lower-cased)."""

    system_id: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    timestamp: datetime | None = None

    def get(self, name: str, default: str = "") -> str:
        """A signed parameter by name, case-insensitively (``docId`` and ``docid`` are one)."""
        return self.parameters.get(name.lower(), default)

    def require(self, name: str) -> str:
        """A signed parameter that must be there (else MISSING_PARAMETER)."""
        value = self.get(name).strip()
        if not value:
            raise VxpError(VxpCode.MISSING_PARAMETER, f"the signed parameter {HEADER_PREFIX}{name} is missing")
        return value


def _header_values(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value)
    return values


def authenticate(  # noqa: C901 - one check after another, in the order VXP.md gives them
    headers: Iterable[tuple[str, str]],
    secrets: Mapping[str, str],
    *,
    now: datetime,
    window: timedelta = DEFAULT_TIMESTAMP_WINDOW,
) -> Authenticated:
    """Check one request's HMAC as VXP.md says; raises ``VxpError`` with the reason, or returns what was signed.

    The hash-header must be the HMAC-SHA256 of the sign-header's bytes as received (never re-serialised) under the
    secret of the systemId it names; every signed value must be among the values sent under that header name
    (names compared case-insensitively, since clients vary and earlier calls' headers linger unsigned); only signed
    values are returned. The timestamp may be up to ``window`` old or ahead (clients fix it once, in local time).
    """
    sent = _header_values(headers)
    prefix = HEADER_PREFIX.lower()

    def one(name: str) -> str:
        found = sent.get(prefix + name.lower())
        if not found:
            raise VxpError(VxpCode.AUTH_MISSING, f"the header {HEADER_PREFIX}{name} is missing")
        return found[-1]

    sign_header = one(_SIGN_HEADER)
    hash_header = one(_HASH_HEADER).strip().lower()
    if len(sign_header) > _MAX_SIGN_HEADER:
        raise VxpError(VxpCode.HEADER_MISMATCH, f"{HEADER_PREFIX}{_SIGN_HEADER} is over {_MAX_SIGN_HEADER} bytes")
    try:
        signed_raw = json.loads(sign_header)
    except ValueError as exc:
        raise VxpError(VxpCode.HEADER_MISMATCH, f"{HEADER_PREFIX}{_SIGN_HEADER} is not JSON: {exc}") from exc
    if not isinstance(signed_raw, dict) or not all(isinstance(v, str) for v in signed_raw.values()):
        raise VxpError(VxpCode.HEADER_MISMATCH, f"{HEADER_PREFIX}{_SIGN_HEADER} is not a JSON object of strings")
    signed = {str(k).lower(): str(v) for k, v in signed_raw.items()}
    system_id = signed.get(prefix + "systemid", "")
    if not system_id:
        raise VxpError(VxpCode.AUTH_MISSING, f"{HEADER_PREFIX}systemid is not among the signed headers")
    secret = secrets.get(system_id)
    if secret is None:
        raise VxpError(VxpCode.UNKNOWN_SYSTEM, f"no system {system_id!r} is registered here")
    expected = _hmac(secret, sign_header.encode("utf-8"))
    if not hmac.compare_digest(expected, hash_header):
        raise VxpError(VxpCode.BAD_SIGNATURE, f"{HEADER_PREFIX}{_HASH_HEADER} is not the HMAC of the signed headers")
    for name, value in signed.items():
        if value not in sent.get(name, ()):
            raise VxpError(VxpCode.HEADER_MISMATCH, f"the signed value of {name} differs from the header sent")
    stamp_text = signed.get(prefix + "timestamp", "")
    try:
        stamp = parse_timestamp(stamp_text)
    except ValueError as exc:
        raise VxpError(VxpCode.STALE_TIMESTAMP, str(exc)) from exc
    if abs(now - stamp) > window:
        raise VxpError(
            VxpCode.STALE_TIMESTAMP, f"the timestamp {stamp_text} is more than {window} away from the server's time"
        )
    parameters = {name[len(prefix) :]: value for name, value in signed.items() if name.startswith(prefix)}
    return Authenticated(system_id, parameters, stamp)


# --- replies -----------------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Drop every ``None`` (clients crash on JSON ``null``): a field without a value is left out."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value if v is not None]
    return value


def ok(**fields: Any) -> dict[str, Any]:
    """A successful reply's object (``status`` OK, ``ErrorCode`` "0") with ``fields``."""
    return {"status": "OK", "ErrorCode": VxpCode.OK.value, "ErrorDesc": "", **_clean(fields)}


def fail(error: VxpError, **fields: Any) -> dict[str, Any]:
    """A ``FAIL`` reply's object: the error's stable code and its plain description."""
    return {"status": "FAIL", "ErrorCode": error.code.value, "ErrorDesc": error.description, **_clean(fields)}


def encode(reply: Mapping[str, Any]) -> bytes:
    r"""A reply as JSON in plain ASCII (non-ASCII as ``\uXXXX``: the SDK decodes sendEdoc's reply as US-ASCII)."""
    return json.dumps(reply, ensure_ascii=True, separators=(",", ":")).encode("ascii")


# --- a client ----------------------------------------------------------------------------------------------------


class VxpClientError(HubError):
    """The server could not be reached, or answered something that is not a VXP reply."""


class VxpClient:
    """A blocking VXP client with one systemId and secret (the axis connector's, and the tests' and bench's)."""

    def __init__(self, endpoint: str, system_id: str, secret: str, *, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(endpoint.rstrip("/"))
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"a VXP endpoint is http(s)://HOST[:PORT]/PATH, not {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.system_id = system_id
        self._secret = secret
        self._timeout = timeout
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = parsed.path
        self._connection: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"VxpClient({self.endpoint!r}, system_id={self.system_id!r})"

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self._timeout)
        return self._connection

    def call_raw(
        self,
        operation: str,
        parameters: Sequence[tuple[str, str]] = (),
        *,
        body: bytes = b"",
        content_type: str = "application/json",
        method: str = "POST",
    ) -> tuple[int, bytes]:
        """One signed request; the HTTP status and the body (one retry on a kept-alive connection that closed)."""
        headers = sign_request(self.system_id, self._secret, parameters, content_type=content_type)
        for retry in (False, True):
            connection = self._connect()
            try:
                connection.request(method, f"{self._path}/{operation}", body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                if retry or not isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError):
                    raise VxpClientError(f"{self.endpoint}/{operation}: {exc}") from exc
        raise AssertionError  # the loop returns or raises

    def call(self, operation: str, parameters: Sequence[tuple[str, str]] = (), **kwargs: Any) -> dict[str, Any]:
        """One signed request whose reply is the JSON envelope (``status`` OK or FAIL); never raises on FAIL."""
        status, data = self.call_raw(operation, parameters, **kwargs)
        try:
            reply = json.loads(data)
        except ValueError as exc:
            raise VxpClientError(f"{operation}: HTTP {status}, not a JSON reply: {data[:200]!r}") from exc
        if not isinstance(reply, dict) or "status" not in reply:
            raise VxpClientError(f"{operation}: HTTP {status}, not a VXP envelope: {data[:200]!r}")
        return reply

    def send_edoc(
        self, data: bytes, *, sender: str, messagetype: str = "edoc", to: Sequence[str] = ()
    ) -> dict[str, Any]:
        """sendEdoc: ``data`` (edXML) from ``sender`` (to ``to`` only, when given); the reply carries ``DocId``."""
        parameters = [("from", sender), ("servicetype", "eDoc"), ("messagetype", messagetype)]
        if to:
            parameters.append(("to", json.dumps([{"OrganId": t} for t in to], separators=(",", ":"))))
        parameters.append(("hash-file", hash_file(data)))
        return self.call("sendEdoc", parameters, body=data + CRLF, content_type="application/octet-stream")

    def received(self, messagetype: str = "edoc") -> dict[str, Any]:
        """The getReceivedEdocList call for ``messagetype`` (``edoc`` or ``status``)."""
        return self.call("getReceivedEdocList", [("servicetype", "eDoc"), ("messagetype", messagetype)])

    def get_edoc(self, doc_id: str) -> dict[str, Any]:
        """getEdoc: ``data`` is the document in base64."""
        return self.call("getEdoc", [("docId", doc_id), ("filePath", doc_id)], body=b"{}")

    def download_edoc(self, doc_id: str) -> tuple[int, bytes]:
        """downloadEdoc: the HTTP status and the raw bytes."""
        return self.call_raw("downloadEdoc", [("docId", doc_id), ("filePath", doc_id)], method="GET")

    def update_status(self, doc_id: str, status: str, *, description: str = "") -> dict[str, Any]:
        """The updateStatus call: ``done``, ``fail`` or ``processing`` (a ``fail`` may say why, in ASCII)."""
        parameters = [("docId", doc_id), ("status", status)]
        if description:
            parameters.append(("description", description))
        return self.call("updateStatus", parameters, body=b"{}")

    def sent(self, messagetype: str = "edoc", doc_id: str = "") -> dict[str, Any]:
        """The getSentEdocList call (optionally of one docId)."""
        parameters = [("servicetype", "eDoc"), ("messagetype", messagetype)]
        if doc_id:
            parameters.append(("docId", doc_id))
        return self.call("getSentEdocList", parameters)
