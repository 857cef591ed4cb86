"""Revocation data that stays fresh: CRLs fetched from their distribution points, cached, refreshed, handed over.

A ``RevocationService`` learns CRL distribution point URLs (``http``/``https`` only) from the configured CA
certificates and from every certificate it is shown (``observe``) that a known CA signed, downloads each CRL with
a size and a time limit, and keeps it only if it is signed by the issuer the URL is for (a known CA, with a key
that may sign CRLs and a hash no weaker than SHA-256) and is not older than the one it holds (CRL number, then
thisUpdate). Every CRL kept is also written to the object store under
``revocation/crl/<sha256 of the URL>/<thisUpdate>-<sha256 of the CRL>.der``: the store is create-only (and the
archive bucket is under object lock), so each version is its own object, and the newest sorts last. A restarted
worker, or another one, starts from there without the network (and checks each cached CRL's signature again).

Each CRL is fetched again before its nextUpdate: after half its remaining validity or ``refresh_seconds``,
whichever is sooner; a failed fetch is retried after ``retry_seconds``, doubling up to ``refresh_seconds``.
CRL files from the settings (``crls``) are part of the set too, read again when they change on disk.

The verifier takes ``current_crls()`` (or the whole ``snapshot``: the CRLs, a ``version`` that changes only when
they do, and the earliest nextUpdate); reading it is one attribute read. A CRL past its nextUpdate stays in the
set: ``signer.path`` then finds no current answer for a good certificate (INDETERMINATE/TRY_LATER, the hub's
problem to retry), while a revocation it lists stays proven (a revocation is final).

Every refusal is logged with its reason and the URL, and counted by reason (``refusals()``, ``on_refusal``).
The service runs on its own thread (``start``/``stop``); ``refresh_due`` is one pass of it, for tests and tools.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Self

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

from adapters.http_clients import DEFAULT_HTTP_TIMEOUT, HttpClientError, ResponseTooLarge, get
from hub.trust import load_certificates, load_crl
from schemas.errors import HubError
from storage.objectstore import ObjectExists, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from hub.settings import HubSettings
    from storage.objectstore import ObjectStore

__all__ = [
    "CACHE_PREFIX",
    "DEFAULT_FETCH_TIMEOUT",
    "DEFAULT_MAX_CRL_BYTES",
    "DEFAULT_REFRESH_SECONDS",
    "DEFAULT_RETRY_SECONDS",
    "CrlFetcher",
    "CrlRefusal",
    "CrlRefused",
    "CrlSource",
    "RevocationService",
    "RevocationSnapshot",
    "cache_key",
    "distribution_points",
]

log = logging.getLogger("lienthong.revocation")

#: Every distribution point is asked at least hourly, whatever nextUpdate says: CAs publish emergency CRLs.
DEFAULT_REFRESH_SECONDS = 3600.0
#: The largest national CAs' CRLs are a few MB; 20 MB leaves room and still bounds memory.
DEFAULT_MAX_CRL_BYTES = 20 * 1024 * 1024
#: Seconds for one whole download; a CRL of 20 MB takes a fraction of that on any working link.
DEFAULT_FETCH_TIMEOUT = 3 * DEFAULT_HTTP_TIMEOUT
#: The first retry after a failed fetch; it doubles up to the refresh interval (a CA down for hours is not hammered).
DEFAULT_RETRY_SECONDS = 30.0
#: How often CRL files named in the settings are checked for a change on disk.
DEFAULT_FILE_CHECK_SECONDS = 60.0
#: Where CRLs are cached in the object store.
CACHE_PREFIX = "revocation/crl/"

# A CRL dated further ahead than this is bogus (or the CA's clock is); the hub's clock is NTP-synchronised.
_CLOCK_SKEW = timedelta(minutes=5)
_ALLOWED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
# Partial and delta CRLs do not list every revocation of their issuer; signer.path refuses them too.
_SCOPING = frozenset({ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.DELTA_CRL_INDICATOR})
_SEEN_LIMIT = 100_000  # certificates remembered by ``observe``; then forgotten at once, and learnt again

#: ``fetch(url, max_bytes) -> body``: HttpClientError when unreachable, ResponseTooLarge above ``max_bytes``.
CrlFetcher = Callable[[str, int], bytes]


class CrlRefusal(enum.StrEnum):
    """Why a CRL (or a distribution point) was not used: the label of the refusal counter."""

    NOT_HTTP = "not-http"  # the URL is not http:// or https:// (ldap://, file://...)
    UNREACHABLE = "unreachable"  # no answer, an HTTP error, or too slow
    TOO_LARGE = "too-large"  # more than max_crl_bytes
    NOT_A_CRL = "not-a-crl"  # the bytes are no DER or PEM CRL
    UNKNOWN_ISSUER = "unknown-issuer"  # issued in the name of no configured CA
    WRONG_ISSUER = "wrong-issuer"  # a configured CA's CRL, but not the one this URL is for
    BAD_SIGNATURE = "bad-signature"  # the named CA's key does not verify it (or may not sign CRLs, or weak hash)
    SCOPED = "scoped"  # a partial or delta CRL
    FUTURE = "future"  # thisUpdate ahead of our clock
    OLDER = "older"  # older than the CRL held for this URL (a replay or a stale mirror)


class CrlRefused(HubError):
    """A CRL or a distribution point was not used; ``reason`` says why in one word, the message in full."""

    def __init__(self, reason: CrlRefusal, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class RevocationSnapshot:
    """What the verifier uses now: the CRLs, a version that changes only with them, and their earliest nextUpdate."""

    version: int
    crls: tuple[x509.CertificateRevocationList, ...]
    earliest_next_update: datetime | None


@dataclass(frozen=True, slots=True)
class CrlSource:
    """One distribution point as the service sees it (for operators: status pages, logs)."""

    url: str
    this_update: datetime | None
    next_update: datetime | None
    next_attempt: datetime
    failures: int
    last_error: str | None


@dataclass
class _Source:
    url: str
    issuers: set[x509.Name]  # the CRL must be issued by one of these; empty: any configured CA (a cached URL)
    due: datetime
    crl: x509.CertificateRevocationList | None = None
    der_sha256: bytes = b""
    failures: int = 0
    last_error: str | None = None
    uncached: bytes | None = None  # held but not yet written to the store (it was unavailable)


@dataclass
class _File:
    path: Path
    mtime_ns: int
    crl: x509.CertificateRevocationList


def cache_key(url: str, crl: x509.CertificateRevocationList, der: bytes) -> str:
    """The object-store key of one version of the CRL at ``url`` (the newest version sorts last)."""
    stamp = crl.last_update_utc.strftime("%Y%m%dT%H%M%SZ")
    return f"{CACHE_PREFIX}{_url_digest(url)}/{stamp}-{hashlib.sha256(der).hexdigest()[:16]}.der"


def distribution_points(cert: x509.Certificate) -> list[str]:
    """Every URI in the certificate's CRL distribution points (full names only), in order."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    except ValueError:
        return []  # a malformed extension: the path validator will say what is wrong with the certificate
    return [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    ]


def _url_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _http_fetcher(timeout: float) -> CrlFetcher:
    def fetch(url: str, max_bytes: int) -> bytes:
        return get(url, accept="application/pkix-crl", timeout=timeout, max_bytes=max_bytes)

    return fetch


class RevocationService:
    """CRLs from distribution points and files, kept fresh on a thread, cached in the object store.

    ``cas``: the configured CA certificates (anchors and intermediates); only CRLs they signed are used, and
    their own distribution points are fetched from the start. ``store``: the cache (``None``: no cache).
    ``crl_files``: CRL files from the settings, always in the set. ``fetch=False`` turns fetching (and the
    cache) off: the set is then the files only. ``fetcher`` replaces the HTTP GET (``fetch(url, max_bytes)``).
    ``clock`` gives the time CRLs are judged and scheduled by.
    """

    def __init__(
        self,
        cas: Iterable[x509.Certificate],
        *,
        store: ObjectStore | None = None,
        crl_files: Sequence[Path] = (),
        fetch: bool = True,
        fetcher: CrlFetcher | None = None,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        max_crl_bytes: int = DEFAULT_MAX_CRL_BYTES,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
        file_check_seconds: float = DEFAULT_FILE_CHECK_SECONDS,
        clock: Callable[[], datetime] = _utc_now,
        on_refusal: Callable[[CrlRefusal], None] | None = None,
    ) -> None:
        if refresh_seconds <= 0 or retry_seconds <= 0 or max_crl_bytes <= 0:
            raise ValueError("refresh_seconds, retry_seconds and max_crl_bytes must be positive")
        self._cas: dict[x509.Name, list[x509.Certificate]] = {}
        for ca in cas:
            self._cas.setdefault(ca.subject, []).append(ca)
        self._store = store if fetch else None
        self._fetching = fetch
        self._fetch = fetcher or _http_fetcher(timeout)
        self._refresh_every = timedelta(seconds=refresh_seconds)
        self._retry = timedelta(seconds=min(retry_seconds, refresh_seconds))
        self._max_bytes = max_crl_bytes
        self._file_check = timedelta(seconds=file_check_seconds)
        self._clock = clock
        self._on_refusal = on_refusal
        self._lock = threading.Lock()
        self._sources: dict[str, _Source] = {}
        self._refused_urls: set[str] = set()
        self._seen: set[x509.Certificate] = set()
        self._seen_der: set[bytes] = set()
        self._refusals: collections.Counter[str] = collections.Counter()
        self._files = [_File(p, _mtime_ns(p), load_crl(p)) for p in crl_files]
        self._files_checked = clock()
        self._snapshot = RevocationSnapshot(0, (), None)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        if fetch:
            for ca in (c for same in self._cas.values() for c in same):
                self._learn(ca)  # configuration: trusted as it is
        self._publish()

    @classmethod
    def from_settings(
        cls,
        settings: HubSettings,
        store: ObjectStore | None,
        *,
        on_refusal: Callable[[CrlRefusal], None] | None = None,
    ) -> RevocationService:
        """The service the settings describe: CAs from ``trust`` and ``intermediates``, files from ``crls``."""
        cas = [c for p in (*settings.trust, *settings.intermediates) for c in load_certificates(p)]
        return cls(
            cas,
            store=store,
            crl_files=settings.crls,
            fetch=settings.revocation_fetch,
            refresh_seconds=settings.revocation_refresh_seconds,
            max_crl_bytes=settings.revocation_max_crl_bytes,
            on_refusal=on_refusal,
        )

    # --- what the verifier reads (no lock: one attribute read) ------------------------------------------------

    @property
    def snapshot(self) -> RevocationSnapshot:
        """The CRLs now, their version and earliest nextUpdate, as one consistent value."""
        return self._snapshot

    @property
    def version(self) -> int:
        """A number that changes whenever the set of CRLs does (rebuild the trust policy when it has)."""
        return self._snapshot.version

    def current_crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        """Every CRL held: fetched (newest per distribution point) and from files."""
        return self._snapshot.crls

    @property
    def earliest_next_update(self) -> datetime | None:
        """The soonest nextUpdate among the CRLs held (``None`` when none has one): past means stale data."""
        return self._snapshot.earliest_next_update

    def refusals(self) -> dict[str, int]:
        """How many CRLs or distribution points were refused, by reason (``CrlRefusal`` values)."""
        with self._lock:
            return dict(self._refusals)

    def sources(self) -> tuple[CrlSource, ...]:
        """Each distribution point known: the CRL held, when it is asked next, and what went wrong last."""
        with self._lock:
            return tuple(
                CrlSource(
                    s.url,
                    s.crl.last_update_utc if s.crl else None,
                    s.crl.next_update_utc if s.crl else None,
                    s.due,
                    s.failures,
                    s.last_error,
                )
                for s in self._sources.values()
            )

    # --- what the worker feeds in -----------------------------------------------------------------------------

    def observe(self, cert: x509.Certificate, chain: Sequence[x509.Certificate] = ()) -> None:
        """Learn the distribution points of ``cert`` and of its ``chain`` (issuers nearest first).

        Only certificates signed by a known CA are listened to (a configured one, or a CA certificate learnt
        here because a known CA signed it), so a document cannot make the hub fetch URLs of its choosing. A CA
        certificate so learnt may sign CRLs too. A new distribution point is fetched at once. For every document
        prefer ``observe_der``: a certificate object seen before still costs its hash (microseconds).
        """
        if not self._fetching:
            return
        for each in (*reversed(chain), cert):  # issuers first: a CA learnt here vouches for the next one
            if each in self._seen or not self._vouched_for(each):
                continue
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen.clear()
            self._seen.add(each)
            self._learn(each)

    def observe_der(self, chain_der: Sequence[bytes]) -> None:
        """``observe`` for a chain in DER, leaf first (a ``VerificationReport.chain_der``): parsed only when new."""
        if not self._fetching:
            return
        for der in chain_der:
            if der not in self._seen_der:
                break
        else:
            return  # the usual case: a chain seen before costs a set look-up per certificate
        try:
            certs = [x509.load_der_x509_certificate(der) for der in chain_der]
        except ValueError:
            return  # the verifier has already said what is wrong with it
        if not certs:
            return
        self.observe(certs[0], certs[1:])
        if len(self._seen_der) >= _SEEN_LIMIT:
            self._seen_der.clear()
        self._seen_der.update(der for der, cert in zip(chain_der, certs, strict=True) if cert in self._seen)

    def _vouched_for(self, cert: x509.Certificate) -> bool:
        with self._lock:
            issuers = list(self._cas.get(cert.issuer, ()))
        for issuer in issuers:
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False

    def _learn(self, cert: x509.Certificate) -> None:
        if _is_ca(cert):
            with self._lock:
                known = self._cas.setdefault(cert.subject, [])
                if cert not in known:
                    known.append(cert)
        for url in distribution_points(cert):
            self._add_url(url, cert.issuer)

    def _add_url(self, url: str, issuer: x509.Name | None) -> _Source | None:
        if not url.lower().startswith(("http://", "https://")):
            with self._lock:
                first = url not in self._refused_urls
                self._refused_urls.add(url)
            if first:
                self._refuse(url, CrlRefused(CrlRefusal.NOT_HTTP, "only http:// and https:// CRLs are fetched"))
            return None
        with self._lock:
            source = self._sources.get(url)
            added = source is None
            if source is None:
                source = self._sources[url] = _Source(url, set(), due=self._clock())
            if issuer is not None:
                source.issuers.add(issuer)
        if added:
            log.info("CRL distribution point %s learnt", url)
            self._wake.set()
        return source

    # --- running ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the cached CRLs (blocking: the verifier has them for the first document), then refresh on a thread."""
        if self._thread is not None:
            return
        self.load_cache()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="lienthong-revocation", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread (a download under way is given up to its own time limit to end)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.refresh_due()
            except Exception:  # the thread must outlive a bug in one pass; the next pass tries again
                log.exception("revocation refresh pass failed")
            self._wake.wait(self._seconds_to_next())
            self._wake.clear()

    def _seconds_to_next(self) -> float:
        now = self._clock()
        with self._lock:
            dues = [s.due for s in self._sources.values()]
        soonest = min([*dues, self._files_checked + self._file_check])
        return max(0.0, (soonest - now).total_seconds())

    def refresh_due(self) -> bool:
        """One pass: fetch the CRLs due, re-read changed CRL files, retry cache writes; say if the set changed."""
        now = self._clock()
        changed = self._check_files(now)
        with self._lock:
            due = [s for s in self._sources.values() if s.due <= now]
            unwritten = [s for s in self._sources.values() if s.uncached is not None]
        for source in due:
            if self._stopping.is_set():
                break
            changed |= self._refresh(source)
        for source in unwritten:
            self._write_cache(source)
        if changed:
            self._publish()
        return changed

    def load_cache(self) -> int:
        """Take the newest cached CRL of each distribution point from the store; return how many were used."""
        if self._store is None:
            return 0
        try:
            newest: dict[str, str] = {}
            for key in self._store.list(CACHE_PREFIX):
                digest = key[len(CACHE_PREFIX) :].split("/", 1)[0]
                newest[digest] = max(newest.get(digest, ""), key)
            used = 0
            for digest, key in sorted(newest.items()):
                info = self._store.stat(key)
                url = info.metadata.get("url", "")
                if _url_digest(url) != digest:
                    log.warning("cached CRL %s ignored: its URL metadata does not match its key", key)
                    continue
                source = self._add_url(url, None)
                if source is not None and self._accept(source, self._store.get(key), cached=True):
                    used += 1
        except StoreUnavailable as exc:
            log.warning("cached CRLs not read (%s); they will be fetched", exc)
            return 0
        if used:
            log.info("%d CRLs taken from the object store's cache", used)
            self._publish()
        return used

    # --- one distribution point -------------------------------------------------------------------------------

    def _refresh(self, source: _Source) -> bool:
        try:
            data = self._fetch(source.url, self._max_bytes)
        except ResponseTooLarge as exc:
            return self._failed(source, CrlRefused(CrlRefusal.TOO_LARGE, str(exc)))
        except HttpClientError as exc:
            return self._failed(source, CrlRefused(CrlRefusal.UNREACHABLE, str(exc)))
        try:
            changed = self._accept(source, data, cached=False)
        except CrlRefused as exc:
            return self._failed(source, exc)
        now = self._clock()
        with self._lock:
            source.failures = 0
            source.last_error = None
            source.due = now + self._interval(source, now)
        return changed

    def _interval(self, source: _Source, now: datetime) -> timedelta:
        """Until the next fetch: half the remaining validity (at least ``retry``), at most ``refresh``."""
        next_update = source.crl.next_update_utc if source.crl is not None else None
        if next_update is None:
            return self._refresh_every
        remaining = next_update - now
        if remaining <= timedelta(0):
            return self._retry  # the CA is late: ask at the retry pace until it publishes
        return min(self._refresh_every, max(remaining / 2, self._retry))

    def _failed(self, source: _Source, refusal: CrlRefused) -> bool:
        self._refuse(source.url, refusal)
        with self._lock:
            source.failures += 1
            source.last_error = f"{refusal.reason}: {refusal}"
            backoff = self._retry * (2 ** min(source.failures - 1, 20))
            source.due = self._clock() + min(backoff, self._refresh_every)
        return False

    def _refuse(self, url: str, refusal: CrlRefused) -> None:
        log.warning("CRL from %s refused (%s): %s", url, refusal.reason, refusal)
        with self._lock:
            self._refusals[refusal.reason] += 1
        if self._on_refusal is not None:
            self._on_refusal(refusal.reason)

    def _accept(self, source: _Source, data: bytes, *, cached: bool) -> bool:
        """Check ``data`` as the CRL at ``source`` and hold it if newer; say if it changed what is held."""
        digest = hashlib.sha256(data).digest()
        if digest == source.der_sha256:
            return False  # the same bytes as held: nothing to parse or verify again
        if cached:
            try:
                return self._check_and_hold(source, data, digest, cached=True)
            except CrlRefused as exc:
                self._refuse(f"{source.url} (cached)", exc)
                return False
        return self._check_and_hold(source, data, digest, cached=False)

    def _check_and_hold(self, source: _Source, data: bytes, digest: bytes, *, cached: bool) -> bool:
        crl = _parse(data)
        scoping = [e.oid.dotted_string for e in crl.extensions if e.oid in _SCOPING]
        if scoping:
            raise CrlRefused(CrlRefusal.SCOPED, f"partial or delta CRLs are not used ({', '.join(scoping)})")
        self._verify_issuer(source, crl)
        this_update = crl.last_update_utc
        if this_update > self._clock() + _CLOCK_SKEW:
            raise CrlRefused(CrlRefusal.FUTURE, f"its thisUpdate {this_update.isoformat()} is in the future")
        der = crl.public_bytes(serialization.Encoding.DER) if data.lstrip().startswith(b"-----BEGIN") else data
        with self._lock:
            held = source.crl
            if held is not None:
                order = _compare(crl, held)
                if order < 0:
                    raise CrlRefused(
                        CrlRefusal.OLDER,
                        f"it is older than the CRL held (thisUpdate {this_update.isoformat()}, "
                        f"held {held.last_update_utc.isoformat()})",
                    )
                if order == 0:
                    source.der_sha256 = digest
                    return False
            source.crl = crl
            source.der_sha256 = digest
            source.uncached = None if cached else der
        next_update = crl.next_update_utc
        log.info(
            "CRL of %s from %s%s: thisUpdate %s, nextUpdate %s, %d entries",
            crl.issuer.rfc4514_string(),
            source.url,
            " (cached)" if cached else "",
            this_update.isoformat(),
            next_update.isoformat() if next_update else "none",
            len(crl),
        )
        if not cached:
            self._write_cache(source)
        return True

    def _verify_issuer(self, source: _Source, crl: x509.CertificateRevocationList) -> None:
        issuer = crl.issuer.rfc4514_string()
        if source.issuers and crl.issuer not in source.issuers:
            expected = ", ".join(sorted(n.rfc4514_string() for n in source.issuers))
            raise CrlRefused(CrlRefusal.WRONG_ISSUER, f"it is the CRL of {issuer}, not of {expected}")
        with self._lock:
            candidates = list(self._cas.get(crl.issuer, ()))
        if not candidates:
            raise CrlRefused(CrlRefusal.UNKNOWN_ISSUER, f"its issuer {issuer} is not a configured CA")
        if not any(_signed_by(crl, ca) for ca in candidates):
            raise CrlRefused(
                CrlRefusal.BAD_SIGNATURE,
                f"its signature does not verify with the key of {issuer} (or that key may not sign CRLs, or the "
                "hash is weaker than SHA-256)",
            )

    def _write_cache(self, source: _Source) -> None:
        with self._lock:
            der, crl = source.uncached, source.crl
        if self._store is None or der is None or crl is None:
            return
        key = cache_key(source.url, crl, der)
        try:
            self._store.put(key, der, metadata={"url": source.url})
        except ObjectExists:
            pass  # another worker cached the same CRL
        except StoreUnavailable as exc:
            log.warning("CRL from %s not cached yet (%s); retried on the next pass", source.url, exc)
            return
        with self._lock:
            if source.uncached is der:
                source.uncached = None

    # --- the set ----------------------------------------------------------------------------------------------

    def _check_files(self, now: datetime) -> bool:
        if not self._files or now < self._files_checked + self._file_check:
            return False
        self._files_checked = now
        changed = False
        for file in self._files:
            mtime = _mtime_ns(file.path)
            if mtime == file.mtime_ns:
                continue
            try:
                file.crl = load_crl(file.path)
            except HubError as exc:
                log.warning("CRL file %s not read again (%s); the previous one stays in use", file.path, exc)
                continue
            file.mtime_ns = mtime
            changed = True
            log.info("CRL file %s read again", file.path)
        return changed

    def _publish(self) -> None:
        with self._lock:
            crls = tuple(f.crl for f in self._files) + tuple(s.crl for s in self._sources.values() if s.crl is not None)
            next_updates = [c.next_update_utc for c in crls if c.next_update_utc is not None]
            self._snapshot = RevocationSnapshot(
                self._snapshot.version + 1, crls, min(next_updates) if next_updates else None
            )


# --- pure helpers -----------------------------------------------------------------------------------------------


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _parse(data: bytes) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CrlRefused(CrlRefusal.NOT_A_CRL, f"not a DER or PEM CRL ({exc})") from exc


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (x509.ExtensionNotFound, ValueError):
        return None


def _compare(new: x509.CertificateRevocationList, held: x509.CertificateRevocationList) -> int:
    """-1 if ``new`` is older than ``held``, 0 if the same issue, 1 if newer (CRL number first, then thisUpdate)."""
    new_number, held_number = _crl_number(new), _crl_number(held)
    if new_number is not None and held_number is not None and new_number != held_number:
        return 1 if new_number > held_number else -1
    if new.last_update_utc != held.last_update_utc:
        return 1 if new.last_update_utc > held.last_update_utc else -1
    return 0


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        return False


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    try:
        usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.crl_sign:
        return False
    if not isinstance(crl.signature_hash_algorithm, _ALLOWED_HASHES):
        return False
    return crl.is_signature_valid(key)
