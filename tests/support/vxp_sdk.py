"""A VXP client written from ``../shared/VXP.md`` alone, sloppy the way the national axis's SDK is (not adapters.vxp).

It speaks HTTP/1.1 over a raw socket so that the tests control every byte the SDK would send:

- every call parameter is a header ``XroadVnpt-<name>``; the client keeps one header map for its whole life, so
  headers of earlier calls linger (unsigned) in later ones, and a parameter may be spelt ``docId`` one call and
  ``docid`` the next (both are then sent);
- the timestamp is fixed when the client is made, and may be hours old (``age``);
- ``XroadVnpt-sign-header`` is compact JSON in the client's own order (systemid, the first parameter, timestamp,
  Content-Type, the other parameters), ``XroadVnpt-hash-header`` its HMAC-SHA256 in lowercase hex;
- calls whose body is ``{}`` send ``Expect: 100-continue`` and wait for the ``100 Continue`` before the body;
- sendEdoc sends the edXML + CRLF with a ``hash-file`` of unpadded hex bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = ["SdkClient", "SdkReply"]

_VIETNAM = timezone(timedelta(hours=7))
_PREFIX = "XroadVnpt-"


@dataclass
class SdkReply:
    """One HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes
    continued: bool = False  # the server answered ``Expect: 100-continue`` with ``100 Continue``

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (fails the test if it is not one)."""
        value = json.loads(self.body)
        assert isinstance(value, dict), self.body[:200]
        return value


def sdk_timestamp(at: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in local (Vietnam) time; the ``+`` is literal."""
    local = at.astimezone(_VIETNAM)
    return local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"


def sdk_hash_file(data: bytes) -> str:
    """SHA-256 of ``data``, each byte as hex without zero padding (the SDK's Integer.toHexString)."""
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


@dataclass
class SdkClient:
    """One SDK client object: endpoint, systemId, secret, a timestamp fixed now minus ``age``."""

    endpoint: str
    system_id: str
    secret: str
    age: timedelta = timedelta(hours=3)
    headers: dict[str, str] = field(default_factory=dict)  # kept across calls, as the SDK's map is

    def __post_init__(self) -> None:
        self.timestamp = sdk_timestamp(datetime.now(UTC) - self.age)
        parsed = urllib.parse.urlsplit(self.endpoint)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._path = parsed.path.rstrip("/")

    # --- one call ---------------------------------------------------------------------------------------------

    def signed_headers(self, parameters: list[tuple[str, str]], content_type: str) -> dict[str, str]:
        """The headers of one call: the lingering ones, this call's parameters, and the signature over them."""
        order: list[tuple[str, str]] = [("systemid", self.system_id)]
        order += parameters[:1]
        order += [("timestamp", self.timestamp), ("Content-Type", content_type)]
        order += parameters[1:]
        sign_header = json.dumps({_PREFIX + k: v for k, v in order}, separators=(",", ":"), ensure_ascii=False)
        for name, value in order:
            self.headers[_PREFIX + name] = value
        self.headers |= {
            "Content-Type": content_type,
            f"{_PREFIX}version": "3.0.201608",
            f"{_PREFIX}sign-header": sign_header,
            f"{_PREFIX}sign-header-key": ";".join(k for k, _ in order),
            f"{_PREFIX}hash-header": hmac.new(
                self.secret.encode(), sign_header.encode("utf-8"), hashlib.sha256
            ).hexdigest(),
        }
        return dict(self.headers)

    def call(
        self,
        operation: str,
        parameters: list[tuple[str, str]] | None = None,
        *,
        body: bytes = b"",
        content_type: str = "application/json",
        method: str = "POST",
        expect: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> SdkReply:
        """Send one call as the SDK does; ``headers`` replace signed ones after signing (a tampering proxy)."""
        sent = self.signed_headers(list(parameters or []), content_type) | (headers or {})
        return self.raw(operation, sent, body=body, method=method, expect=body == b"{}" if expect is None else expect)

    def raw(self, operation: str, headers: dict[str, str], *, body: bytes, method: str, expect: bool) -> SdkReply:
        """One HTTP/1.1 request with exactly ``headers`` (UTF-8 values), on a fresh connection."""
        lines = [f"{method} {self._path}/{operation} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        lines += ["User-Agent: JAVASDKAgent/1.0.0 XRoad/VPCP", "Connection: close", f"Content-Length: {len(body)}"]
        if expect:
            lines.append("Expect: 100-continue")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        with socket.create_connection((self._host, self._port), timeout=60) as sock:
            sock.sendall(head)
            stream = sock.makefile("rb")
            if expect:
                interim = stream.readline()
                if b" 100 " not in interim:  # the server answered at once (a refusal): that is the reply
                    return _read_reply(interim, stream)
                while stream.readline() not in {b"\r\n", b""}:
                    pass
            sock.sendall(body)
            reply = _read_reply(stream.readline(), stream)
            reply.continued = expect
            return reply

    # --- the operations, as the SDK's methods call them -------------------------------------------------------

    def send_edoc(self, data: bytes, *, sender: str | None = None, messagetype: str = "edoc") -> SdkReply:
        """sendEdoc: the edXML + CRLF, octet-stream, with hash-file."""
        parameters = [
            ("from", sender or self.system_id),
            ("servicetype", "eDoc"),
            ("messagetype", messagetype),
            ("hash-file", sdk_hash_file(data)),
        ]
        return self.call("sendEdoc", parameters, body=data + b"\r\n", content_type="application/octet-stream")

    def received(self, messagetype: str = "edoc", **dates: str) -> SdkReply:
        """The getReceivedEdocList call (empty body), optionally with fromDate/toDate."""
        parameters = [("servicetype", "eDoc"), ("messagetype", messagetype), *dates.items()]
        return self.call("getReceivedEdocList", parameters)

    def get_edoc(self, doc_id: str, *, spelling: str = "docId") -> SdkReply:
        """getEdoc: body ``{}``, Expect: 100-continue."""
        return self.call("getEdoc", [(spelling, doc_id), ("filePath", f"C:\\dms\\inbox\\{doc_id}.edxml")], body=b"{}")

    def get_edoc_bytes(self, doc_id: str) -> bytes:
        """GetEdoc's base64, decoded."""
        reply = self.get_edoc(doc_id).json()
        assert reply["status"] == "OK", reply
        return base64.b64decode(reply["data"])

    def download_edoc(self, doc_id: str) -> SdkReply:
        """downloadEdoc: a GET answered with the raw bytes."""
        return self.call("downloadEdoc", [("docId", doc_id), ("filePath", f"C:\\dms\\inbox\\{doc_id}")], method="GET")

    def update_status(self, doc_id: str, status: str, *, spelling: str = "docid") -> SdkReply:
        """updateStatus: body ``{}``; spelt ``docid`` by default, so that it lingers beside an earlier ``docId``."""
        return self.call("updateStatus", [(spelling, doc_id), ("status", status)], body=b"{}")

    def sent(self, messagetype: str = "edoc", doc_id: str = "") -> SdkReply:
        """The getSentEdocList call (empty body), optionally one docId."""
        parameters = [("servicetype", "eDoc"), ("messagetype", messagetype)]
        if doc_id:
            parameters.append(("docId", doc_id))
        return self.call("getSentEdocList", parameters)

    def count(self, kind: str = "Edoc") -> SdkReply:
        """The countReceiveEdoc / countReceiveStatus call: body ``{}``."""
        return self.call(f"countReceive{kind}", [("servicetype", "eDoc"), ("messagetype", kind.lower())], body=b"{}")


def _read_reply(status_line: bytes, stream: Any) -> SdkReply:
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ConnectionError(f"not an HTTP reply (is another server on that port?): {status_line[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in {b"\r\n", b""}:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while (size := int(stream.readline().strip() or b"0", 16)) > 0:
            body += stream.read(size)
            stream.readline()
    elif "content-length" in headers:
        body = stream.read(int(headers["content-length"]))
    else:
        body = stream.read()
    return SdkReply(status, headers, body)
