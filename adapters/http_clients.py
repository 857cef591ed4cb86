"""HTTP clients for revocation and time: an OCSP client for ``TrustPolicy.ocsp``, CRL downloads, an RFC 3161 client.

The I/O half of ``signer.path`` and ``signer.timestamp``: those modules build and check the bytes, these
functions only move them over HTTP (stdlib ``urllib``, no proxies from the environment, ``http``/``https``
only, redirects only to ``http``/``https``), each request bounded in size and in total time.

``OcspClient`` adds a fresh nonce (RFC 8954) to every request it sends and refuses a response that carries a
different one (a replayed or misdirected answer; the nonce lies inside what the responder signs, which
``signer.path`` verifies). It keeps each successful response for its CertID until the response's nextUpdate (a
short while when it has none), so validators rebuilt after a trust change do not ask the responder again.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from schemas.errors import HubError
from signer.timestamp import DEFAULT_TIMESTAMP_HASH, TimestampToken, build_request, verify_response

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "DEFAULT_OCSP_CACHE_ENTRIES",
    "DEFAULT_OCSP_MAX_TTL",
    "DEFAULT_OCSP_TTL",
    "MAX_RESPONSE_BYTES",
    "HttpClientError",
    "OcspClient",
    "ResponseTooLarge",
    "get",
    "ocsp_fetcher",
    "post",
    "request_timestamp",
]

#: Seconds per request; a responder slower than this is down as far as a document's validation goes.
DEFAULT_HTTP_TIMEOUT = 5.0
#: OCSP responses and time-stamp replies are a few KB; anything far larger is not one.
MAX_RESPONSE_BYTES = 1 << 20
#: An OCSP response without nextUpdate (``openssl ocsp`` without ``-ndays``) is reused this long: short, since
#: the responder made no promise, yet long enough that a burst of documents from one signer asks once.
DEFAULT_OCSP_TTL = timedelta(minutes=5)
#: Even a response valid for days is asked for again after this, so a revocation shows within the hour.
DEFAULT_OCSP_MAX_TTL = timedelta(hours=1)
#: Responses kept (one per certificate); bounded so that a flood of distinct signers cannot exhaust memory.
DEFAULT_OCSP_CACHE_ENTRIES = 10_000

_NONCE_BYTES = 16  # RFC 8954: at least 1, at most 32 octets; 128 bits cannot be guessed
_READ_CHUNK = 64 * 1024


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to ``http``/``https`` only (urllib would also follow one to ``ftp://``)."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("http://", "https://")):
            raise HttpClientError(f"{req.full_url} redirects to {newurl!r}: only http:// and https:// are allowed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


# Proxies are not taken from the environment: where revocation data comes from is configuration, not ambient.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _SafeRedirects())


class HttpClientError(HubError):
    """A server (OCSP responder, CRL distribution point, TSA) could not be reached or gave an unusable answer."""


class ResponseTooLarge(HttpClientError):
    """The answer was larger than the caller's limit (and was not read past it)."""


def post(url: str, body: bytes, *, content_type: str, accept: str, timeout: float) -> bytes:
    """POST ``body`` to ``url`` and return the response body; raise HttpClientError on any failure.

    The response's Content-Type is not enforced (TSAs disagree on it); the caller parses and checks the bytes.
    """
    headers = {"Content-Type": content_type, "Accept": accept}
    return _exchange(url, body, headers, timeout=timeout, max_bytes=MAX_RESPONSE_BYTES)


def get(url: str, *, accept: str, timeout: float, max_bytes: int) -> bytes:
    """GET ``url`` and return the body; HttpClientError on any failure, ResponseTooLarge above ``max_bytes``.

    ``timeout`` bounds the whole exchange (connecting, waiting and reading), not each socket operation, so a
    server that drips its answer cannot hold the caller longer.
    """
    return _exchange(url, None, {"Accept": accept}, timeout=timeout, max_bytes=max_bytes)


def _exchange(url: str, body: bytes | None, headers: dict[str, str], *, timeout: float, max_bytes: int) -> bytes:
    if not url.lower().startswith(("http://", "https://")):
        raise HttpClientError(f"refusing to contact {url!r}: only http:// and https:// URLs are allowed")
    method = "GET" if body is None else "POST"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - scheme checked
    deadline = time.monotonic() + timeout
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ResponseTooLarge(f"{url} announced {int(declared)} bytes, more than the limit of {max_bytes}")
            return _read_bounded(response, url, max_bytes=max_bytes, deadline=deadline, timeout=timeout)
    except HttpClientError:
        raise
    except urllib.error.HTTPError as exc:
        raise HttpClientError(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise HttpClientError(f"cannot reach {url}: {reason}") from exc


def _read_bounded(response: Any, url: str, *, max_bytes: int, deadline: float, timeout: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(min(_READ_CHUNK, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"{url} sent more than the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise HttpClientError(f"{url} took longer than {timeout:g} s to answer")
    return b"".join(chunks)


def _utc_now() -> datetime:
    return datetime.now(UTC)


# (responder URL, hash algorithm, issuer name hash, issuer key hash, serial): one certificate at one responder
_CertKey = tuple[str, str, bytes, bytes, int]


class OcspClient:
    """A ``TrustPolicy.ocsp`` fetcher (RFC 6960, appendix A) with a nonce in each request and a response cache.

    Call it as ``client(url, der_request) -> der_response``. The request's CertID is kept and a fresh nonce
    added (a nonce already in the request is kept). A response carrying another nonce raises HttpClientError;
    one without a nonce is accepted (many responders pre-produce their answers). Successful responses are
    reused for the same certificate and URL until their nextUpdate, at most ``max_ttl``, or ``ttl`` when they
    have none. Thread-safe; share one client between the validators a worker builds.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        ttl: timedelta = DEFAULT_OCSP_TTL,
        max_ttl: timedelta = DEFAULT_OCSP_MAX_TTL,
        max_entries: int = DEFAULT_OCSP_CACHE_ENTRIES,
        clock: Callable[[], datetime] = _utc_now,
        nonce: Callable[[], bytes] = lambda: secrets.token_bytes(_NONCE_BYTES),
    ) -> None:
        self._timeout = timeout
        self._ttl = ttl
        self._max_ttl = max_ttl
        self._max_entries = max_entries
        self._clock = clock
        self._nonce = nonce
        self._cache: dict[_CertKey, tuple[datetime, bytes]] = {}
        self._lock = threading.Lock()
        #: Requests sent and answers served from the cache (for tests and measurements).
        self.requests = 0
        self.cache_hits = 0

    def __call__(self, url: str, request_der: bytes) -> bytes:
        """Return the responder's DER answer for the one certificate ``request_der`` asks about."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
        except ValueError as exc:
            raise HttpClientError(f"not a DER OCSP request ({exc})") from exc
        key: _CertKey = (
            url,
            request.hash_algorithm.name,
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
        )
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now < hit[0]:
                self.cache_hits += 1
                return hit[1]
        nonce = _request_nonce(request)
        if nonce is None:
            nonce = self._nonce()
            request_der = (
                ocsp.OCSPRequestBuilder()
                .add_certificate_by_hash(key[2], key[3], key[4], request.hash_algorithm)
                .add_extension(x509.OCSPNonce(nonce), critical=False)
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
        with self._lock:
            self.requests += 1
        response_der = post(
            url,
            request_der,
            content_type="application/ocsp-request",
            accept="application/ocsp-response",
            timeout=self._timeout,
        )
        expires = self._check(url, response_der, nonce, now)
        if expires is not None:
            with self._lock:
                self._cache.pop(key, None)
                while len(self._cache) >= self._max_entries:
                    del self._cache[next(iter(self._cache))]
                self._cache[key] = (expires, response_der)
        return response_der

    def _check(self, url: str, der: bytes, nonce: bytes, now: datetime) -> datetime | None:
        """Refuse a response with another nonce; return how long a successful one may be reused."""
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError:
            return None  # not OCSP at all: signer.path says so; nothing to keep
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        except ValueError:
            echoed = b""  # an unreadable nonce extension is no match
        if echoed is not None and echoed != nonce:
            raise HttpClientError(f"{url} answered with another request's nonce (a replayed or misdirected response)")
        next_updates = [single.next_update_utc for single in response.responses]
        if not next_updates or any(n is None for n in next_updates):
            return now + self._ttl
        earliest = min(n for n in next_updates if n is not None)
        return min(earliest, now + self._max_ttl)


def _request_nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def ocsp_fetcher(timeout: float = DEFAULT_HTTP_TIMEOUT) -> OcspClient:
    """Return an ``OcspClient``: a ``fetch(url, der_request) -> der_response`` with nonce and cache."""
    return OcspClient(timeout=timeout)


def request_timestamp(
    url: str,
    data: bytes,
    *,
    anchors: Sequence[x509.Certificate],
    timeout: float = DEFAULT_HTTP_TIMEOUT,
    hash: str = DEFAULT_TIMESTAMP_HASH,  # noqa: A002 - the RFC's word
    at: datetime | None = None,
) -> TimestampToken:
    """Time-stamp ``data`` at the TSA at ``url`` and return the verified token.

    A fresh 64-bit nonce ties the answer to this request; the reply is checked by
    ``signer.timestamp.verify_response`` against ``anchors`` (TimestampError if it is not acceptable).
    The raw token is ``TimestampToken.token_der``.
    """
    nonce = secrets.randbits(64)
    request = build_request(data, hash=hash, nonce=nonce, cert_req=True)
    reply = post(
        url,
        request,
        content_type="application/timestamp-query",
        accept="application/timestamp-reply",
        timeout=timeout,
    )
    digest = hashlib.new(hash, data).digest()
    return verify_response(reply, digest=digest, anchors=anchors, nonce=nonce, at=at, hash=hash)
