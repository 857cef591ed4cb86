"""HTTP clients for revocation and time: an OCSP fetcher for ``TrustPolicy.ocsp`` and an RFC 3161 client.

The I/O half of ``signer.path`` and ``signer.timestamp``: those modules build and check the bytes, these
functions only move them over HTTP (stdlib ``urllib``, no proxies from the environment, ``http``/``https``
only).
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from schemas.errors import HubError
from signer.timestamp import DEFAULT_TIMESTAMP_HASH, TimestampToken, build_request, verify_response

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from cryptography import x509

    from signer.policy import OcspFetcher

__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "HttpClientError",
    "ocsp_fetcher",
    "post",
    "request_timestamp",
]

#: Seconds per request; a responder slower than this is down as far as a document's validation goes.
DEFAULT_HTTP_TIMEOUT = 5.0
#: OCSP responses and time-stamp replies are a few KB; anything far larger is not one.
MAX_RESPONSE_BYTES = 1 << 20

# Proxies are not taken from the environment: where revocation data comes from is configuration, not ambient.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HttpClientError(HubError):
    """An OCSP responder or TSA could not be reached or answered with an HTTP error (the message says which)."""


def post(url: str, body: bytes, *, content_type: str, accept: str, timeout: float) -> bytes:
    """POST ``body`` to ``url`` and return the response body; raise HttpClientError on any failure.

    The response's Content-Type is not enforced (TSAs disagree on it); the caller parses and checks the bytes.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise HttpClientError(f"refusing to contact {url!r}: only http:// and https:// URLs are allowed")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, method="POST", headers={"Content-Type": content_type, "Accept": accept}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            data = bytes(response.read(MAX_RESPONSE_BYTES + 1))
    except urllib.error.HTTPError as exc:
        raise HttpClientError(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise HttpClientError(f"cannot reach {url}: {reason}") from exc
    if len(data) > MAX_RESPONSE_BYTES:
        raise HttpClientError(f"{url} sent more than {MAX_RESPONSE_BYTES} bytes")
    return data


def ocsp_fetcher(timeout: float = DEFAULT_HTTP_TIMEOUT) -> OcspFetcher:
    """Return a ``fetch(url, der_request) -> der_response`` that POSTs OCSP requests (RFC 6960, appendix A)."""

    def fetch(url: str, request_der: bytes) -> bytes:
        return post(
            url,
            request_der,
            content_type="application/ocsp-request",
            accept="application/ocsp-response",
            timeout=timeout,
        )

    return fetch


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
